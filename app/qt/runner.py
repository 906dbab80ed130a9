"""The windowed run: Qt application and theme, the main window shown before the services are built,
then the panels installed once they are, the status-bar loop, ``--quit-after`` and ``--screenshot``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, spawn
from app.headless import StartServices
from app.qt.live_confirm import ask_live_confirmation
from app.qt.messages import route_qt_messages
from app.qt.status import feed_status, wire_resume, wire_status
from app.runtime import GC_FALLBACK_S, attach_loop, finish, settle_gc
from services.domain.enums import Mode

if TYPE_CHECKING:
    from widgets.main_window import MainWindow

log = logging.getLogger("heron.app")


def take_screenshot(window: MainWindow, path: Path) -> str | None:
    """Render ``window`` to a PNG at ``path``; returns a problem description or None."""
    pixmap = window.grab()
    if pixmap.isNull():
        return "the window could not be rendered"
    if not pixmap.save(str(path), "PNG"):
        return f"could not write {path}"
    return None


def _quit_timer(ctx: AppContext, window: MainWindow, outcome: dict[str, int]) -> Callable[[], None]:
    """``--quit-after``: the screenshot (if asked for; a failure sets the exit code), then shutdown."""

    def on_quit_timer() -> None:
        if ctx.args.screenshot is not None:
            problem = take_screenshot(window, ctx.args.screenshot)
            if problem:
                outcome["rc"] = 1
                print(f"heron: screenshot failed: {problem}", file=sys.stderr)
            else:
                log.info("screenshot written to %s", ctx.args.screenshot)
        ctx.lifecycle.request_shutdown("--quit-after")

    return on_quit_timer


def run_gui(ctx: AppContext, start_services: StartServices) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from widgets.main_window import MainWindow
    from widgets.models.common import TIMES
    from widgets.shortcuts import bindings
    from widgets.theme import apply_theme

    route_qt_messages()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Heron")
    app.setQuitOnLastWindowClosed(False)  # keep the loop alive so async cleanup can run
    apply_theme(app, ctx.settings.ui.theme)
    TIMES.set(ctx.settings.ui.time_zone)
    outcome = {"rc": 0}

    async def main() -> int:
        loop = asyncio.get_running_loop()
        attach_loop(ctx, loop)
        window = MainWindow(ctx.mode, layout_file=ctx.paths.layout_file, profile=ctx.paths.profile,
                            log_hub=ctx.log_hub)  # fmt: skip
        window.apply_shortcuts(bindings(ctx.settings.ui.shortcuts))
        wire_status(ctx, window)
        ctx.confirm_live = lambda: ask_live_confirmation(window)
        window.show()
        started = ctx.launch.started_monotonic
        if started is not None:
            log.info("window shown %.0f ms after start", (time.monotonic() - started) * 1000)
        lanes = ctx.launch.import_lanes
        if lanes is not None:
            log.info("start-up imports: window modules %.2f s, service modules %.2f s (worker), both "
                     "done %.2f s after the lanes began", lanes[0], lanes[1] or 0.0, lanes[2])  # fmt: skip
        app.lastWindowClosed.connect(lambda: ctx.lifecycle.request_shutdown("window closed"))
        services = Services(mode=ctx.mode)
        if ctx.mode is Mode.LOCAL:
            window.heron_status.set_exchange("starting…", None)
        task = await start_services(ctx, services)

        def services_ready(_: object) -> None:
            if task.cancelled() or ctx.lifecycle.requested:
                return
            if ctx.mode is Mode.LOCAL:
                status = window.heron_status
                status.set_exchange(services.exchange_status, services.exchange_ok, services.exchange_detail)
            populate_window(ctx, window, services)
            wire_resume(window, services)
            install_quit_guard(ctx, window, services)
            if started is not None:
                elapsed_ms = (time.monotonic() - started) * 1000
                log.info("window usable: panels installed %.0f ms after start", elapsed_ms)
            settle_gc()
            spawn(services, "status", feed_status(ctx, window, services))
            ctx.lifecycle.add_step(
                stages.STOP_STRATEGIES, "status bar", lambda: cancel_tasks(services, "status")
            )

        task.add_done_callback(services_ready)
        loop.call_later(GC_FALLBACK_S, settle_gc)  # services that never finish starting
        if ctx.args.quit_after is not None:
            loop.call_later(ctx.args.quit_after, _quit_timer(ctx, window, outcome))
        await ctx.lifecycle.wait_requested()
        window.close_guard = None  # Heron is stopping (the trader chose, or a signal): no question now
        window.save_layout()
        await finish(ctx, task)
        window.close()
        return outcome["rc"]

    return int(qasync.run(main()))


def install_quit_guard(ctx: AppContext, window: MainWindow, services: Services) -> None:
    """The trader's close asks first when orders work or positions are open at the broker (as the
    last reconciliation read them, positions and orders opened outside Heron included); the answer
    sets the open-order policy the shutdown runs (``--on-exit``)."""
    from widgets.quit_guard import AtBroker, QuitGuard, at_broker_view

    store = services.orders
    if store is None:
        return

    def at_broker() -> AtBroker:
        return at_broker_view(store, services.reconciler)

    def on_exit(policy: str) -> None:
        ctx.args.on_exit = policy  # read by the open-order policy step at shutdown

    guard = QuitGuard(at_broker, on_exit, window)
    window.close_guard = guard.allow_quit


def populate_window(ctx: AppContext, window: MainWindow, services: Services) -> None:
    """Hand the services to the panels, then restore the saved layout. GUI thread, once."""
    from app.qt.panels import ops, trading

    if services.keys_needed is not None:  # no keys, nothing started: say what to do, not empty panels
        from app.qt.keys_needed import show_keys_needed

        show_keys_needed(window, ctx, services, services.keys_needed)
        return
    for module in (trading, ops):
        try:
            module.install(window, ctx, services, defer_plots=True)
        except Exception:
            log.exception("installing panels from %s failed; the rest of the window works", module.__name__)
            ctx.notify("error", "panels", f"panels of {module.__name__} could not be installed; see the log")
    window.capture_default_layout()
    window.restore_layout()
