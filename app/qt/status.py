"""The status bar: bus events wired to it, and the loop that feeds it connection, data, trading,
latency and the message rate (one derivation with the state report)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from app.context import AppContext, Services
from app.report import health_status
from services.domain.events import NotificationEvent

if TYPE_CHECKING:
    from widgets.main_window import MainWindow


def wire_status(ctx: AppContext, window: MainWindow) -> None:
    """Bus → status bar. Handlers run on the loop thread, which is the GUI thread under qasync."""
    from services.domain.events import ConnectionStateEvent, TradingStateEvent

    status = window.heron_status
    ctx.bus.subscribe(NotificationEvent, lambda e: status.notify(e.level, e.message))
    # Until the services run; from then on the status loop derives what is shown (show_health).
    ctx.bus.subscribe(ConnectionStateEvent, lambda e: status.set_connection(e.channel, e.state, e.reason))
    ctx.bus.subscribe(TradingStateEvent, lambda e: status.set_trading_state(e.state, e.reason))


def wire_resume(window: MainWindow, services: Services) -> Any:
    """The status bar's "Resume trading…" button and File → Resume trading… → the guarded resume
    (typed reason, journaled)."""
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu

    from services.orders.startup import operator
    from widgets.resume_trading import ResumeTrading

    if services.trading is None:
        return None
    resume = ResumeTrading(services.trading, operator(), window)
    status = window.heron_status
    status.resume_requested.connect(lambda: resume.run())  # the lambda keeps it alive
    # the same action in the File menu (first), enabled while the status bar offers it
    action = QAction("&Resume trading…", window)
    action.setObjectName("resumeTradingAction")
    action.setEnabled(status.resume_button.isVisibleTo(status))
    action.triggered.connect(lambda: resume.run())
    status.resumable_changed.connect(action.setEnabled)
    menus = [a.menu() for a in window.menuBar().actions()]
    file_menu = next((m for m in menus if isinstance(m, QMenu)), None)
    if file_menu is not None:
        first = file_menu.actions()[0] if file_menu.actions() else None
        file_menu.insertAction(first, action)  # type: ignore[arg-type]
    return resume


async def feed_status(ctx: AppContext, window: MainWindow, services: Services, interval: float = 1.0) -> None:
    """Connection, data, trading and latency (one derivation with the state report) and the message
    rate to the status bar, once a second and at once on a connection or trading change (GUI thread)."""
    from services.domain.events import ConnectionStateEvent, TradingStateEvent

    status = window.heron_status
    last: tuple[float, int] | None = None
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    ctx.bus.subscribe(ConnectionStateEvent, lambda _e: wake.set())
    ctx.bus.subscribe(TradingStateEvent, lambda _e: wake.set())
    woken = True
    while True:
        wake.clear()
        # The health watch derives every second on its own (headless too); a change is shown at once.
        watch = services.watch
        derived = health_status(ctx, services) if woken or watch is None else watch.latest
        if derived is not None:
            trading = services.trading
            status.show_health(derived, trading.halted_since() if trading is not None else None)
        if services.streams is not None:
            now, total = loop.time(), services.streams.messages_delivered
            if last is not None and now - last[0] >= interval / 2:
                status.set_message_rate(max(0, total - last[1]) / (now - last[0]))
                last = (now, total)
            elif last is None:
                last = (now, total)
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
            woken = True
