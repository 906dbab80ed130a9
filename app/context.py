"""What the composition root builds and hands around: :class:`AppContext` (the command line and the
process-wide plumbing, before any service) and :class:`Services` (every running service, ``None``
where a part does not run), plus the small helpers every subsystem uses to report a failure and
own background tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.errors import ExceptionHooks, LoopNotifier
from app.exchange_process import ExchangeSession
from app.keys_needed import KeysNeeded
from app.launch import Launch
from app.lifecycle import Lifecycle
from app.local_exchange import LocalExchangeLauncher
from app.logging_setup import LogHub, SecretRedactor
from app.paths import ProfilePaths
from app.script import ScriptedOrder
from app.secrets import SecretStore
from app.settings import Settings
from app.strategy_sink import EngineOrderSink
from services.broker.alpaca import AlpacaBroker
from services.broker.base import AccountIdentity
from services.broker.budget import RequestBudget
from services.broker.health import HealthMonitor
from services.broker.latency import LatencyRecorder
from services.broker.status import HealthWatch
from services.domain.bus import EventBus
from services.domain.enums import Mode, TradingState
from services.domain.events import NotificationEvent
from services.marketdata.book import QuoteBook
from services.marketdata.history import HistoryService
from services.marketdata.intervals import IntervalBarBuilder
from services.marketdata.streams import StreamManager
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.reconciliation.reconciler import Reconciler
from services.risk.gate import RiskGate
from services.risk.kill_switch import KillSwitch
from services.risk.trading_state import TradingStateMachine
from services.shadow.registry import ModelRegistry
from services.shadow.tracker import ShadowTracker
from services.storage import Database
from services.storage.candles import CandleStore
from services.storage.watermark import JournalMark
from services.strategies.runner import StrategyRunner

if TYPE_CHECKING:
    from app.metrics import MetricsServer

log = logging.getLogger("heron.app")


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
    #: GUI: asks the person to type LIVE before an alpaca-live connection (None in headless mode,
    #: where ``--confirm-live LIVE`` is required instead).
    confirm_live: Callable[[], Awaitable[bool]] | None = None
    launch: Launch = field(default_factory=Launch)
    #: ``--script``: the orders, every entry checked before anything connects.
    script_orders: list[ScriptedOrder] | None = None

    def notify(self, level: str, source: str, message: str) -> None:
        """Show ``message`` to the person (status bar, log panel). Any thread."""
        self.notifier(NotificationEvent(ts=datetime.now(UTC), level=level, source=source, message=message))


@dataclass
class Services:
    """Every running service; ``None`` means that part is not running (see ``failures`` for why).

    The panels (``app/qt/panels``) are handed the typed services they need from here:

    ====================  =========================================================================
    ``db``                :class:`services.storage.Database`
    ``candles``           :class:`services.storage.candles.CandleStore` (history cache)
    ``broker``            :class:`services.broker.alpaca.AlpacaBroker` (every call a coroutine)
    ``identity``          :class:`services.broker.base.AccountIdentity` from the credential check
    ``health``            :class:`services.broker.health.HealthMonitor` (REST health)
    ``latency``           :class:`services.broker.latency.LatencyRecorder`
    ``budget``            :class:`services.broker.budget.RequestBudget`
    ``streams``           :class:`services.marketdata.streams.StreamManager` (``.gate`` = OrderGate)
    ``book``              :class:`services.marketdata.book.QuoteBook` (NBBO, staleness)
    ``history``           :class:`services.marketdata.history.HistoryService`
    ``orders``            :class:`services.orders.store.OrderStore` (orders, fills, positions)
    ``journal``           :class:`services.orders.journal.OrderJournal`
    ``risk``              :class:`services.risk.gate.RiskGate`
    ``trading``           :class:`services.risk.trading_state.TradingStateMachine`
    ``engine``            :class:`services.orders.engine.ExecutionEngine` (submit/cancel/replace)
    ``reconciler``        :class:`services.reconciliation.reconciler.Reconciler`
    ``kill_switch``       :class:`services.risk.kill_switch.KillSwitch`
    ``runner``            :class:`services.strategies.runner.StrategyRunner`
    ``strategy_registry`` ``{key: Strategy class}`` of the built-in strategies
    ``bars``              :class:`services.marketdata.intervals.IntervalBarBuilder` (strategy bars)
    ``shadow``            :class:`services.shadow.tracker.ShadowTracker`
    ``models``            :class:`services.shadow.registry.ModelRegistry`
    ``metrics``           :class:`app.metrics.MetricsServer`
    ====================  =========================================================================

    Every service publishes on ``ctx.bus`` (the same EventBus for everything).
    """

    mode: Mode
    exchange: ExchangeSession | None = None
    exchange_status: str = "—"
    exchange_ok: bool | None = None
    exchange_detail: str = ""
    launcher: LocalExchangeLauncher | None = None
    secret_store: SecretStore | None = None
    db: Database | None = None
    candles: CandleStore | None = None
    broker: AlpacaBroker | None = None
    identity: AccountIdentity | None = None
    health: HealthMonitor | None = None
    latency: LatencyRecorder | None = None
    #: Connection, data and trading as the status bar and the state report tell them.
    watch: HealthWatch | None = None
    budget: RequestBudget | None = None
    streams: StreamManager | None = None
    book: QuoteBook | None = None
    history: HistoryService | None = None
    orders: OrderStore | None = None
    journal: OrderJournal | None = None
    risk: RiskGate | None = None
    trading: TradingStateMachine | None = None
    engine: ExecutionEngine | None = None
    reconciler: Reconciler | None = None
    kill_switch: KillSwitch | None = None
    runner: StrategyRunner | None = None
    strategy_sink: EngineOrderSink | None = None
    strategy_registry: dict[str, Any] = field(default_factory=dict)
    bars: IntervalBarBuilder | None = None
    shadow: ShadowTracker | None = None
    models: ModelRegistry | None = None
    #: Set when the trained shadow models are wanted: with a window, when the Shadow models panel is
    #: first on screen (loading them imports scikit-learn, some 90 MB); headless, at once.
    shadow_models_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: MetricsServer | None = None
    #: The connection section as it was just before the streams were closed at quit.
    connection_at_quit: dict[str, Any] | None = None
    #: part -> why it is not running (shown in the log and notifications).
    failures: dict[str, str] = field(default_factory=dict)
    #: Why start-up stopped (a damaged database...): nothing trades this session; headless exits 1.
    fatal: str | None = None
    #: Paper or live mode without usable API keys: the window explains what to do instead of panels.
    keys_needed: KeysNeeded | None = None
    #: The journal's high-water mark (SQLite files only) and, if the journal is behind it, why.
    journal_mark: JournalMark | None = None
    journal_rollback: str | None = None
    #: Why the state report (``--state-report``) could not be written, if it could not.
    report_error: str | None = None
    #: Trading was ACTIVE at some moment of this session.
    trading_was_active: bool = False
    #: Background tasks; each is cancelled by the shutdown step of the stage that owns it.
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    #: Providers of state-report sections (docs/state-report.md); each returns a dict merged into the report.
    state_sections: list[Callable[[], dict[str, Any]]] = field(default_factory=list)


def now() -> datetime:
    """The wall clock every service is given (UTC-aware)."""
    return datetime.now(UTC)


def fail(ctx: AppContext, services: Services, part: str, message: str, level: str = "error") -> None:
    """Report honestly that ``part`` is not running; the rest keeps going where safe."""
    services.failures[part] = message
    log.log(logging.ERROR if level == "error" else logging.WARNING, "%s: %s", part, message)
    ctx.notify(level, part, message)


def startup_failed(ctx: AppContext, services: Services, message: str) -> None:
    """Start-up cannot go on safely: one clear line, trading stays DISABLED, and a headless run ends
    (non-zero). The window stays up to show why."""
    if services.fatal is not None:
        return
    message = " ".join(message.split())  # one line, whatever the cause's text held
    services.fatal = message
    services.failures["start-up"] = message
    log.error("start-up stopped: %s", message)
    ctx.notify("error", "start-up", f"Start-up stopped: {message}")
    if services.trading is not None:
        services.trading.set(TradingState.DISABLED, f"start-up stopped: {message}", source="startup")
    if getattr(ctx.args, "headless", False):
        ctx.lifecycle.request_shutdown("start-up failed")


def spawn(services: Services, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A named background task, logged if it fails; its owner cancels it with :func:`cancel_tasks`."""
    task = asyncio.ensure_future(coro)
    services.tasks[name] = task

    def done(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("background task %s failed", name, exc_info=t.exception())

    task.add_done_callback(done)
    return task


async def cancel_tasks(services: Services, *names: str) -> None:
    tasks = [services.tasks.pop(n) for n in names if n in services.tasks]
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
