"""The composition root: the one place that builds every service, wires them and owns startup
and shutdown. Later parts plug in here: construct the service in :func:`build_services`, keep it
on :class:`Services`, register its shutdown step with the lifecycle, and hand it to widgets in
:func:`_populate_window`.

Startup: data paths → logging (redacted) → settings → exception hooks → event loop (qasync with a
window, or plain asyncio with ``--headless``: no Qt import at all) → window shown → services built
in the background, so the window is usable before the exchange answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import lifecycle as stages
from app.errors import ExceptionHooks, LoopNotifier
from app.lifecycle import Lifecycle
from app.local_exchange import ExchangeError, ExchangeSession, LocalExchangeLauncher, connect_external
from app.logging_setup import LoggingHandle, LogHub, SecretRedactor, setup_logging
from app.paths import DataDirError, ProfilePaths, prepare, resolve_paths
from app.secrets import SecretStore, SecretStoreError
from app.settings import Settings, SettingsError, atomic_write_text, load
from services.domain.bus import EventBus
from services.domain.enums import Mode
from services.domain.events import NotificationEvent

if TYPE_CHECKING:
    from widgets.main_window import MainWindow

log = logging.getLogger("heron.app")

STATE_REPORT_VERSION = 1


@dataclass
class AppContext:
    """What exists before any service: the parsed command line and the process-wide plumbing."""

    args: argparse.Namespace
    paths: ProfilePaths
    settings: Settings
    mode: Mode
    redactor: SecretRedactor
    log_hub: LogHub
    bus: EventBus
    lifecycle: Lifecycle
    notifier: LoopNotifier
    hooks: ExceptionHooks

    def notify(self, level: str, source: str, message: str) -> None:
        """Show ``message`` to the person (status bar, log panel). Any thread."""
        self.notifier(NotificationEvent(ts=datetime.now(UTC), level=level, source=source, message=message))


@dataclass
class Services:
    """Every running service. Fields are added as parts of Heron land."""

    mode: Mode
    exchange: ExchangeSession | None = None
    exchange_status: str = "—"
    exchange_ok: bool | None = None
    exchange_detail: str = ""
    launcher: LocalExchangeLauncher | None = None
    secret_store: SecretStore | None = None
    #: Providers of state-report sections (DESIGN §8); each returns a dict merged into the report.
    state_sections: list[Callable[[], dict[str, Any]]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Services


async def build_services(ctx: AppContext, services: Services) -> Services:
    """Construct and start services on the running loop, registering each one's shutdown step.

    ``services`` is filled in place so a shutdown that interrupts this coroutine still finds
    (and stops) whatever was already started.
    """
    if ctx.mode is Mode.LOCAL:
        await _connect_local_exchange(ctx, services)
    else:
        await _check_keyring(ctx, services)
    return services


async def _connect_local_exchange(ctx: AppContext, services: Services) -> None:
    args = ctx.args
    try:
        if args.exchange_url is not None:
            services.exchange = await connect_external(args.exchange_url, args.exchange_keys)
            ctx.redactor.register(services.exchange.keys.secret)
        else:
            launcher = LocalExchangeLauncher(
                ctx.paths.exchange_dir, ctx.settings.local_exchange, on_secret=ctx.redactor.register
            )
            services.launcher = launcher
            ctx.lifecycle.add_step(stages.STOP_LOCAL_EXCHANGE, "local exchange", launcher.stop, timeout=15)
            services.exchange = await launcher.start()
    except ExchangeError as exc:
        services.exchange_status, services.exchange_ok = "unavailable", False
        services.exchange_detail = str(exc)
        log.error("local exchange: %s", exc)
        ctx.notify("error", "exchange", f"The local exchange could not start: {exc}")
        return
    services.exchange_status, services.exchange_ok = services.exchange.describe, True
    ctx.notify("info", "exchange", f"Local exchange at {services.exchange.describe}")


async def _check_keyring(ctx: AppContext, services: Services) -> None:
    store = SecretStore(on_secret=ctx.redactor.register)
    services.secret_store = store
    try:
        keys = await asyncio.to_thread(store.load, ctx.paths.profile, ctx.mode)
    except SecretStoreError as exc:
        log.error("keyring: %s", exc)
        ctx.notify("error", "keyring", str(exc))
        return
    if keys is None:
        ctx.notify(
            "warning",
            "keyring",
            f"No API keys are stored for profile {ctx.paths.profile!r} in {ctx.mode.value} mode.",
        )
    else:
        log.info("API keys for %s found in the keyring (%s)", ctx.mode.value, store.describe())
    # The Alpaca broker adapter is wired here when it lands; until then nothing is connected.
    ctx.notify("warning", "broker", f"{ctx.mode.badge}: the Alpaca connection is not wired in this build yet")


def state_report(ctx: AppContext, services: Services) -> dict[str, Any]:
    """DESIGN §8: sections a part does not have yet are omitted, never invented."""
    report: dict[str, Any] = {"version": STATE_REPORT_VERSION, "mode": ctx.mode.value}
    for provider in services.state_sections:
        try:
            report.update(provider())
        except Exception:
            log.exception("a state-report section failed; it is left out")
    return report


def write_state_report(path: Path, report: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    log.info("state report written to %s", path)


# ------------------------------------------------------------------------------------------------
# Startup


def _fatal(message: str) -> int:
    print(f"heron: {message}", file=sys.stderr)
    log.info("startup failed: %s", message)
    return 1


def run(args: argparse.Namespace) -> int:
    """Start Heron; returns the exit code. Every startup failure is one clear line, never a traceback."""
    try:
        paths = prepare(resolve_paths(args.profile, args.data_dir))
    except DataDirError as exc:
        return _fatal(str(exc))
    redactor, hub = SecretRedactor(), LogHub()
    try:
        logging_handle = setup_logging(redactor=redactor, hub=hub, log_dir=paths.log_dir)
    except OSError as exc:
        return _fatal(f"cannot open the log file in {paths.log_dir}: {exc.strerror or exc}")
    try:
        return _run_with_logging(args, paths, redactor, hub, logging_handle)
    finally:
        logging_handle.close()


def _run_with_logging(
    args: argparse.Namespace,
    paths: ProfilePaths,
    redactor: SecretRedactor,
    hub: LogHub,
    logging_handle: LoggingHandle,
) -> int:
    log.info("Heron starting: profile %s, data in %s", paths.profile, paths.profile_dir)
    try:
        settings = load(paths.settings_file)
    except SettingsError as exc:
        return _fatal(str(exc))
    mode = Mode(args.mode) if args.mode else settings.mode
    bus = EventBus()
    notifier = LoopNotifier(bus, redact=redactor.redact)
    hooks = ExceptionHooks(notify=notifier)
    ctx = AppContext(
        args=args,
        paths=paths,
        settings=settings,
        mode=mode,
        redactor=redactor,
        log_hub=hub,
        bus=bus,
        lifecycle=Lifecycle(),
        notifier=notifier,
        hooks=hooks,
    )
    hooks.install()
    try:
        return _run_headless(ctx) if args.headless else _run_gui(ctx)
    finally:
        hooks.uninstall()


def _attach_loop(ctx: AppContext, loop: asyncio.AbstractEventLoop) -> None:
    ctx.notifier.attach_loop(loop)
    ctx.hooks.install_loop_handler(loop)
    ctx.lifecycle.install_signal_handlers(loop)


async def _start_services(ctx: AppContext, services: Services) -> asyncio.Task[Services]:
    if ctx.args.state_report is not None:
        path = ctx.args.state_report

        def write() -> None:
            write_state_report(path, state_report(ctx, services))

        ctx.lifecycle.add_step(stages.WRITE_REPORTS, "state report", write)
    return asyncio.ensure_future(build_services(ctx, services))


async def _finish(ctx: AppContext, task: asyncio.Task[Services]) -> None:
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        log.info("startup of services was interrupted by shutdown")
    except Exception:
        log.exception("building services failed")
    report = await ctx.lifecycle.shutdown("quit")
    ctx.lifecycle.remove_signal_handlers()
    for step in report.steps:
        if not step.ok:
            log.warning("shutdown step %s/%s: %s", step.stage, step.name, step.error)


def _run_headless(ctx: AppContext) -> int:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        _attach_loop(ctx, loop)
        services = Services(mode=ctx.mode)
        task = await _start_services(ctx, services)
        if ctx.args.quit_after is not None:
            loop.call_later(ctx.args.quit_after, ctx.lifecycle.request_shutdown, "--quit-after")
        log.info("running headless in %s mode", ctx.mode.value)
        await ctx.lifecycle.wait_requested()
        await _finish(ctx, task)
        return 0

    return asyncio.run(main())


def take_screenshot(window: MainWindow, path: Path) -> str | None:
    """Render ``window`` to a PNG at ``path``; returns a problem description or None."""
    pixmap = window.grab()
    if pixmap.isNull():
        return "the window could not be rendered"
    if not pixmap.save(str(path), "PNG"):
        return f"could not write {path}"
    return None


def _run_gui(ctx: AppContext) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from widgets.main_window import MainWindow
    from widgets.theme import apply_theme

    _route_qt_messages()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Heron")
    app.setQuitOnLastWindowClosed(False)  # keep the loop alive so async cleanup can run
    apply_theme(app, ctx.settings.ui.theme)
    outcome = {"rc": 0}

    async def main() -> int:
        loop = asyncio.get_running_loop()
        _attach_loop(ctx, loop)
        window = MainWindow(ctx.mode, layout_file=ctx.paths.layout_file, profile=ctx.paths.profile,
                            log_hub=ctx.log_hub)  # fmt: skip
        _wire_status(ctx, window)
        _populate_window(ctx, window)
        window.show()
        started = getattr(ctx.args, "started_monotonic", None)
        if started is not None:
            log.info("window shown %.0f ms after start", (time.monotonic() - started) * 1000)
        app.lastWindowClosed.connect(lambda: ctx.lifecycle.request_shutdown("window closed"))
        services = Services(mode=ctx.mode)
        if ctx.mode is Mode.LOCAL:
            window.heron_status.set_exchange("starting…", None)
        task = await _start_services(ctx, services)

        def services_ready(_: object) -> None:
            if ctx.mode is Mode.LOCAL and not task.cancelled():
                status = window.heron_status
                status.set_exchange(services.exchange_status, services.exchange_ok, services.exchange_detail)

        task.add_done_callback(services_ready)
        if ctx.args.quit_after is not None:

            def on_quit_timer() -> None:
                if ctx.args.screenshot is not None:
                    problem = take_screenshot(window, ctx.args.screenshot)
                    if problem:
                        outcome["rc"] = 1
                        print(f"heron: screenshot failed: {problem}", file=sys.stderr)
                    else:
                        log.info("screenshot written to %s", ctx.args.screenshot)
                ctx.lifecycle.request_shutdown("--quit-after")

            loop.call_later(ctx.args.quit_after, on_quit_timer)
        await ctx.lifecycle.wait_requested()
        window.save_layout()
        await _finish(ctx, task)
        window.close()
        return outcome["rc"]

    return int(qasync.run(main()))


def _route_qt_messages() -> None:
    """Send Qt's own warnings to the log instead of raw stderr lines."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("heron.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }
    # Known-harmless warning of the offscreen platform plugin (environment.md §1.3).
    harmless = ("This plugin does not support propagateSizeHints()",)

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        level = logging.DEBUG if message in harmless else levels.get(kind, logging.WARNING)
        qt_log.log(level, "%s", message)

    qInstallMessageHandler(handler)


def _wire_status(ctx: AppContext, window: MainWindow) -> None:
    """Bus → status bar. Handlers run on the loop thread, which is the GUI thread under qasync."""
    from services.domain.events import ConnectionStateEvent, TradingStateEvent

    status = window.heron_status
    ctx.bus.subscribe(NotificationEvent, lambda e: status.notify(e.level, e.message))
    ctx.bus.subscribe(ConnectionStateEvent, lambda e: status.set_connection(e.channel, e.state, e.reason))
    ctx.bus.subscribe(TradingStateEvent, lambda e: status.set_trading_state(e.state, e.reason))


def _populate_window(ctx: AppContext, window: MainWindow) -> None:
    """Add the panels (none are built yet by this part), then restore the saved layout."""
    window.capture_default_layout()
    window.restore_layout()
