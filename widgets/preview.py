"""Previews of the trading panels: ``python -m widgets.<panel> [--seconds N] [--screenshot FILE]``.

A preview runs Heron's real composition root (:func:`app.bootstrap.build_services`) in local
mode with a throw-away data directory: the local exchange starts as a child process and the
panel shows its live numbers — nothing is invented. ``--screenshot FILE`` saves a PNG after
``--seconds`` (default 8) and exits.

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
from typing import Any

PANELS = {
    "watchlist": ("watchlist", "Watchlist"),
    "order_ticket": ("order_ticket", "Order ticket"),
    "blotter": ("blotter", "Blotter"),
    "positions": ("positions", "Positions"),
    "account": ("account", "Account"),
}


async def start_local_services(data_dir: Path, extra_args: Sequence[str] = ()) -> tuple[Any, Any]:
    """Build every service in local mode (``extra_args`` as on main.py's command line)."""
    from app import bootstrap
    from app.cli import parse_args
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
    ctx = bootstrap.AppContext(
        args=args, paths=paths, settings=settings, mode=Mode.LOCAL, redactor=redactor, log_hub=LogHub(),
        bus=bus, lifecycle=Lifecycle(), notifier=notifier, hooks=ExceptionHooks(notify=notifier),
    )  # fmt: skip
    notifier.attach_loop(asyncio.get_running_loop())
    services = bootstrap.Services(mode=ctx.mode)
    await bootstrap.build_services(ctx, services)
    return ctx, services


async def stop_services(ctx: Any) -> None:
    await ctx.lifecycle.shutdown("preview finished")


def run_panel_preview(name: str, argv: list[str] | None = None) -> int:
    """Entry point of ``python -m widgets.<name>``."""
    module, title = PANELS[name]
    parser = argparse.ArgumentParser(prog=f"python -m widgets.{module}", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds before --screenshot")
    parser.add_argument("--screenshot", metavar="FILE", type=Path, help="save a PNG after --seconds and exit")
    parser.add_argument("--data-dir", type=Path, help="keep the preview's data here (default: a temp dir)")
    args = parser.parse_args(argv)

    import qasync
    from PySide6.QtWidgets import QApplication

    from app.qt.panels.trading import build_panel
    from widgets.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    apply_theme(app)
    tmp = tempfile.TemporaryDirectory(prefix="heron-preview-")
    data_dir = args.data_dir or Path(tmp.name)
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
        if args.screenshot is not None:
            await asyncio.sleep(args.seconds)
            if not panel.grab().save(str(args.screenshot), "PNG"):
                print(f"preview: could not write {args.screenshot}", file=sys.stderr)
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
