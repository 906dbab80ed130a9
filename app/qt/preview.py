"""Previews of single panels: ``python -m app.qt.preview PANEL [--seconds N] [--screenshot FILE]``.

A trading-panel preview (watchlist, order_ticket, blotter, positions, account) runs Heron's real
composition root (:func:`app.bootstrap.build_services`) in local mode with a throw-away data
directory: the local exchange starts as a child process and the panel shows its live numbers —
nothing is invented. ``settings`` shows the settings dialog on a temporary profile (no keyring);
``log`` the log panel fed by a real :class:`app.logging_setup.LogHub`. ``--screenshot FILE``
saves a PNG after ``--seconds`` (default 8 for trading panels, 1.5 otherwise) and exits.

:func:`start_local_services` / :func:`stop_services` are also what the end-to-end test and the UI
benchmark use. The event loop is a plain ``qasync.QEventLoop`` set with ``set_event_loop`` (not
``qasync.run``, whose loop policy would also hand a Qt loop to the market-data thread).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.context import AppContext, Services

#: Trading panel → its title.
PANELS = {
    "watchlist": "Watchlist",
    "order_ticket": "Order ticket",
    "blotter": "Blotter",
    "positions": "Positions",
    "account": "Account",
}


async def start_local_services(data_dir: Path, extra_args: Sequence[str] = ()) -> tuple[AppContext, Services]:
    """Build every service in local mode (``extra_args`` as on main.py's command line)."""
    from app import bootstrap
    from app.cli import parse_args
    from app.context import AppContext, Services
    from app.errors import ExceptionHooks, LoopNotifier
    from app.lifecycle import Lifecycle
    from app.logging_setup import LogHub, SecretRedactor
    from app.paths import prepare, resolve_paths
    from app.settings import load
    from services.domain.bus import EventBus
    from services.domain.enums import Mode

    args = parse_args(["--mode", "local", "--data-dir", str(data_dir), *extra_args])
    paths = prepare(resolve_paths(args.profile, args.data_dir))
    settings = load(paths.settings_file)
    bus = EventBus()
    redactor = SecretRedactor()
    notifier = LoopNotifier(bus, redact=redactor.redact)
    ctx = AppContext(
        args=args,
        paths=paths,
        settings=settings,
        mode=Mode.LOCAL,
        redactor=redactor,
        log_hub=LogHub(),
        bus=bus,
        lifecycle=Lifecycle(),
        notifier=notifier,
        hooks=ExceptionHooks(notify=notifier),
    )
    notifier.attach_loop(asyncio.get_running_loop())
    services = Services(mode=ctx.mode)
    await bootstrap.build_services(ctx, services)
    return ctx, services


async def stop_services(ctx: AppContext) -> None:
    await ctx.lifecycle.shutdown("preview finished")


def run_panel_preview(
    name: str, seconds: float = 8.0, screenshot: Path | None = None, data_dir: Path | None = None
) -> int:
    """A trading panel on the real services of a local-mode session."""
    title = PANELS[name]
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.qt.panels.trading import build_panel
    from widgets.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app)
    tmp = tempfile.TemporaryDirectory(prefix="heron-preview-")
    data_dir = data_dir or Path(tmp.name)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    rc = {"code": 0}

    async def main() -> None:
        ctx, services = await start_local_services(data_dir)
        try:
            panel = build_panel(name, ctx, services)
        except LookupError as exc:
            print(f"preview: {exc}", file=sys.stderr)
            rc["code"] = 1
            await stop_services(ctx)
            return
        panel.setWindowTitle(f"Heron — {title} preview (local exchange)")
        panel.resize(900 if name in ("blotter", "account") else 420, 560)
        panel.show()
        if name == "order_ticket":
            panel.set_symbol(ctx.settings.watchlist[0])  # type: ignore[attr-defined]
            panel.amount_edit.setText("10")  # type: ignore[attr-defined]
        closed = asyncio.Event()
        app.lastWindowClosed.connect(closed.set)
        if screenshot is not None:
            await asyncio.sleep(seconds)
            if not panel.grab().save(str(screenshot), "PNG"):
                print(f"preview: could not write {screenshot}", file=sys.stderr)
                rc["code"] = 1
        else:
            await closed.wait()
        panel.close()
        await stop_services(ctx)

    try:
        with loop:
            loop.run_until_complete(main())
    finally:
        tmp.cleanup()
    return rc["code"]


def run_settings_preview(args: argparse.Namespace) -> int:
    """The settings dialog on a temporary profile (no keyring)."""
    from app.qt.settings_access import SettingsFiles
    from app.settings import load
    from widgets.settings_dialog import SettingsDialog
    from widgets.standalone import make_app, show_preview

    app = make_app()
    root = Path(tempfile.mkdtemp(prefix="heron-settings-preview-"))
    (root / "profiles" / "default").mkdir(parents=True)
    (root / "profiles" / "swing").mkdir(parents=True)
    path = root / "profiles" / "default" / "settings.json"
    dialog = SettingsDialog(load(path), path, profile="default", data_root=root, backend=SettingsFiles())
    tab = 2 if args.screenshot and "risk" in str(args.screenshot) else 0
    dialog.tabs.setCurrentIndex(tab)
    dialog.risk_fields["price_band_pct"][0].setText("150")
    return show_preview(app, dialog, args)


def run_log_preview(args: argparse.Namespace) -> int:
    """The log panel fed by a real LogHub with a burst of made-up records, and one toast."""
    import logging
    import random

    from PySide6.QtCore import QTimer

    from app.logging_setup import LogHub, LogHubHandler
    from widgets.log_panel import LogPanel, ToastArea
    from widgets.standalone import make_app, show_preview

    app = make_app()
    hub = LogHub(capacity=10_000)
    root = logging.getLogger("heron.preview")
    root.setLevel(logging.DEBUG)
    root.addHandler(LogHubHandler(hub, logging.DEBUG))
    root.propagate = False
    panel = LogPanel()
    panel.resize(1100, 420)
    panel.attach(hub)
    rng = random.Random(7)
    sources = [
        "heron.preview.orders",
        "heron.preview.marketdata",
        "heron.preview.risk",
        "heron.preview.reconciliation",
        "heron.preview.strategies",
    ]

    def burst() -> None:
        for _ in range(rng.randint(1, 40)):
            lg = logging.getLogger(rng.choice(sources))
            roll = rng.random()
            if roll < 0.05:
                lg.error(
                    "order AAPL-%d rejected by the broker: insufficient buying power", rng.randint(1, 999)
                )
            elif roll < 0.2:
                lg.warning(
                    "quote for %s is stale (%.1f s old)",
                    rng.choice(["AAPL", "MSFT", "BTC/USD"]),
                    rng.random() * 5,
                )
            else:
                lg.info(
                    "bar closed %s O=%.2f C=%.2f",
                    rng.choice(["AAPL", "NVDA", "SPY"]),
                    100 + rng.random(),
                    100 + rng.random(),
                )

    timer = QTimer()
    timer.timeout.connect(burst)
    timer.start(30)
    toasts = ToastArea(panel)
    toasts.show_toast("warning", "risk", "order refused: max_order_qty 1000 < requested 2500 (AAPL buy)")
    return show_preview(app, panel, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m app.qt.preview``."""
    parser = argparse.ArgumentParser(
        prog="python -m app.qt.preview",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("panel", choices=[*PANELS, "settings", "log"])
    parser.add_argument("--seconds", type=float, help="seconds before --screenshot")
    parser.add_argument("--screenshot", metavar="FILE", type=Path, help="save a PNG after --seconds and exit")
    parser.add_argument("--data-dir", type=Path, help="keep the preview's data here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.panel in PANELS:
        return run_panel_preview(args.panel, args.seconds or 8.0, args.screenshot, args.data_dir)
    args.after = args.seconds if args.seconds is not None else 1.5
    return run_settings_preview(args) if args.panel == "settings" else run_log_preview(args)


if __name__ == "__main__":
    sys.exit(main())
