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
import contextlib
import errno
import getpass
import json
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from app import crashpoints, exchange_supervisor
from app import lifecycle as stages
from app.cli import LIVE_CONFIRMATION
from app.errors import ExceptionHooks, LoopNotifier
from app.fastbars import LOCAL_DEFAULT_SECONDS, IntervalBarBuilder
from app.lifecycle import Lifecycle, ShutdownReport
from app.local_exchange import (
    ExchangeDiedAtStart,
    ExchangeError,
    ExchangeSession,
    LocalExchangeLauncher,
    connect_external,
)
from app.logging_setup import LoggingHandle, LogHub, SecretRedactor, setup_logging
from app.paths import DataDirError, ProfilePaths, prepare, resolve_paths
from app.script import ScriptError, load_script, run_script
from app.secrets import SecretStore, SecretStoreError
from app.settings import (
    Settings,
    SettingsError,
    atomic_write_text,
    defaults_after_set_aside,
    load_or_defaults,
)
from app.strategy_sink import EngineOrderSink
from services.broker.alpaca import AlpacaBroker
from services.broker.base import AccountIdentity, Broker, BrokerAuthError, BrokerUnavailable
from services.broker.budget import RequestBudget
from services.broker.credentials import validate_credentials
from services.broker.health import HealthMonitor
from services.broker.latency import LatencyRecorder
from services.broker.status import HealthStatus, HealthWatch
from services.domain.bus import EventBus
from services.domain.enums import ConnectionState, Mode, Timeframe, TradingState
from services.domain.events import NotificationEvent, TradeUpdateEvent, TradingStateEvent
from services.domain.models import Bar
from services.exchange.sessions import MarketCalendar
from services.marketdata.book import QuoteBook
from services.marketdata.history import HistoryService
from services.marketdata.pipeline import MarketDataBatchEvent
from services.marketdata.streams import StreamManager
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.report import build_state_report
from services.orders.store import OrderStore
from services.orders.tables import ORDERS_SCHEMA
from services.reconciliation.reconciler import Reconciler
from services.risk.gate import RiskGate
from services.risk.kill_switch import KillSwitch
from services.risk.limits import RiskLimits, RiskLimitsError
from services.risk.trading_state import TradingStateMachine
from services.shadow.inference import InferenceEngine, SklearnPredictor
from services.shadow.registry import (
    SHADOW_MODELS_SCHEMA,
    DatabaseModelIndex,
    MemoryModelIndex,
    ModelRegistry,
    ModelRegistryError,
)
from services.shadow.report import shadow_report
from services.shadow.tracker import ShadowTracker
from services.shadow.training import TrainingDataError, train_models_async
from services.storage import Database, StorageError
from services.storage.candles import CANDLES_SCHEMA, CandleStore
from services.storage.errors import describe_db_error, describe_os_error
from services.storage.watermark import JournalMark, lost_database_problem
from services.strategies.api import ParamError
from services.strategies.builtin import builtin_registry
from services.strategies.report import strategies_report
from services.strategies.runner import OrderSinkBridge, StrategyRunner, StrategyRunnerError
from services.strategies.store import StrategyStateError, StrategyStateStore

if TYPE_CHECKING:
    from app.metrics import MetricsSample, MetricsServer
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
    #: GUI: asks the person to type LIVE before an alpaca-live connection (None in headless mode,
    #: where ``--confirm-live LIVE`` is required instead).
    confirm_live: Callable[[], Awaitable[bool]] | None = None

    def notify(self, level: str, source: str, message: str) -> None:
        """Show ``message`` to the person (status bar, log panel). Any thread."""
        self.notifier(NotificationEvent(ts=datetime.now(UTC), level=level, source=source, message=message))


@dataclass
class Services:
    """Every running service; ``None`` means that part is not running (see ``failures`` for why).

    Attribute names are the contract with the panels (``app/panels_trading.py``,
    ``app/panels_ops.py``), which read them from the object handed to ``install``:

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
    ``bars``              :class:`app.fastbars.IntervalBarBuilder` (bars for strategies and shadow)
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
    metrics: MetricsServer | None = None
    #: The connection section as it was just before the streams were closed at quit.
    connection_at_quit: dict[str, Any] | None = None
    #: part -> why it is not running (shown in the log and notifications).
    failures: dict[str, str] = field(default_factory=dict)
    #: Why start-up stopped (a damaged database...): nothing trades this session; headless exits 1.
    fatal: str | None = None
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


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(ctx: AppContext, services: Services, part: str, message: str, level: str = "error") -> None:
    """Report honestly that ``part`` is not running; the rest keeps going where safe."""
    services.failures[part] = message
    log.log(logging.ERROR if level == "error" else logging.WARNING, "%s: %s", part, message)
    ctx.notify(level, part, message)


def _startup_failed(ctx: AppContext, services: Services, message: str) -> None:
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


def _spawn(services: Services, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    services.tasks[name] = task

    def done(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("background task %s failed", name, exc_info=t.exception())

    task.add_done_callback(done)
    return task


async def _cancel_tasks(services: Services, *names: str) -> None:
    tasks = [services.tasks.pop(n) for n in names if n in services.tasks]
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def _bar_seconds(ctx: AppContext) -> float:
    chosen = getattr(ctx.args, "bar_seconds", None)
    if chosen is not None:
        return float(chosen)
    return LOCAL_DEFAULT_SECONDS if ctx.mode is Mode.LOCAL else 60.0


# Settings keys (app/settings.py) → RiskLimits field names (services/risk/limits.py).
_RISK_KEYS = {
    "max_order_qty": "max_order_qty",
    "max_order_notional": "max_order_notional",
    "price_band_pct": "price_band_pct",
    "max_position_qty": "max_position_qty",
    "max_gross_exposure": "max_gross_exposure",
    "max_net_exposure": "max_net_exposure",
    "daily_loss_limit": "max_daily_loss",
    "max_drawdown_pct": "max_drawdown_pct",
    "max_open_orders": "max_open_orders",
    "max_orders_per_minute": "max_orders_per_minute",
    "symbol_allow": "allow_symbols",
    "symbol_deny": "deny_symbols",
}


def risk_limits_from_settings(risk: dict[str, Any]) -> RiskLimits:
    """``settings.risk`` → :class:`RiskLimits`. A limit switched off (null) is effectively unlimited,
    except the max notional per order, which always exists (the risk layer's rule)."""
    values: dict[str, str] = {}
    for key, field_name in _RISK_KEYS.items():
        value = risk.get(key)
        if value is None or value == []:
            if field_name in ("allow_symbols", "deny_symbols"):
                continue
            if field_name == "max_order_notional":
                continue  # keep the risk layer's default: there is no "unlimited"
            value = "1000000000000"
        if isinstance(value, list):
            values[field_name] = ",".join(value)
        else:
            values[field_name] = str(value)
    return RiskLimits.from_strings(values)


# ------------------------------------------------------------------------------------------------
# Services


async def build_services(ctx: AppContext, services: Services) -> Services:
    """Construct and start every service on the running loop, registering each one's shutdown step.

    ``services`` is filled in place so a shutdown that interrupts this coroutine still finds
    (and stops) whatever was already started. Order: storage → credentials (checked with
    GET /v2/account before any stream) → broker → market data → orders/risk/reconciliation →
    strategies and shadow → metrics; trading is enabled only by a clean start-up reconciliation
    with market data flowing.
    """
    _open_storage(ctx, services)
    if services.fatal is not None:
        return services
    if ctx.mode is Mode.LOCAL:
        await _connect_local_exchange(ctx, services)
        if services.exchange is None:
            _fail(ctx, services, "broker", "no exchange: trading stays DISABLED")
            _register_report(ctx, services)
            return services
        keys = services.exchange.keys
        creds: tuple[str, str, str, str | None] | None = (
            keys.key_id, keys.secret, "local", services.exchange.url
        )
    else:
        creds = await _alpaca_credentials(ctx, services)
    _register_report(ctx, services)
    if creds is None:
        return services
    connected = await _connect_broker(ctx, services, *creds)
    if not connected and not await _restart_dead_exchange(ctx, services, creds):
        return services
    await _start_market_data(ctx, services, *creds)
    if services.db is not None:
        try:
            _build_orders(ctx, services)
        except StorageError as exc:
            _startup_failed(ctx, services, str(exc))
            return services
        _build_strategies(ctx, services)
    _build_shadow(ctx, services)
    _start_metrics(ctx, services)
    if services.engine is not None:
        _spawn(services, "startup", _startup_trading(ctx, services))
    exchange_supervisor.supervise(ctx, services)  # a dead local exchange: said, restarted, reconciled
    return services


def _open_storage(ctx: AppContext, services: Services) -> None:
    # Migrations are quick (a few CREATE TABLEs at most); opening synchronously keeps the journal's
    # durability guarantees simple (the same engine on the loop thread).
    db_file = _sqlite_file(ctx.args.db, ctx.paths.profile_dir)
    existed = db_file is not None and db_file.exists()
    lost = lost_database_problem(db_file) if db_file is not None else None
    if lost is not None and getattr(ctx.args, "accept_journal_rollback", None) is None:
        _startup_failed(ctx, services, lost)  # a new, empty database would hide what was lost
        return
    try:
        services.db = Database.open(
            ctx.args.db, ctx.paths.profile_dir, (ORDERS_SCHEMA, CANDLES_SCHEMA, SHADOW_MODELS_SCHEMA)
        )
    except StorageError as exc:
        _startup_failed(ctx, services, f"the database could not be opened: {exc}")
        return
    services.candles = CandleStore(services.db)
    db = services.db
    if db_file is not None:
        _check_journal_mark(ctx, services, JournalMark(db_file), fresh=not existed and lost is None)
    ctx.lifecycle.add_step(stages.FLUSH_STORAGE, "database", db.dispose)


def _sqlite_file(url: str | None, profile_dir: Path) -> Path | None:
    """The SQLite file of the database URL (None for other databases and in-memory SQLite)."""
    if url is None:
        return profile_dir / "heron.db"
    from sqlalchemy import make_url

    try:
        sa_url = make_url(url)
    except Exception:
        return None
    if sa_url.get_backend_name() != "sqlite" or sa_url.database in (None, "", ":memory:"):
        return None
    return Path(sa_url.database or "")


def _journal_seq(db: Database) -> int:
    from sqlalchemy import func, select

    from services.orders.tables import journal_table

    with db.connect() as conn:
        return int(conn.execute(select(func.max(journal_table.c.seq))).scalar_one_or_none() or 0)


def _check_journal_mark(ctx: AppContext, services: Services, mark: JournalMark, *, fresh: bool) -> None:
    """A journal behind its high-water mark was rolled back (a lost write-ahead log): say so now, and
    name it as the cause of the drift reconciliation will find. Then keep the mark up to date."""
    db = services.db
    assert db is not None
    if fresh:
        mark.forget()
    try:
        current = _journal_seq(db)
    except Exception as exc:
        log.warning("journal mark: the journal's last sequence cannot be read (%s)", exc)
        return
    try:
        problem = mark.check(current)
    except OSError as exc:
        log.warning("the journal mark %s could not be written: %s", mark.path, exc)
        problem = None
    if problem is not None:
        services.journal_rollback = f"database {db.display_url}: {problem}"
        reason = getattr(ctx.args, "accept_journal_rollback", None)
        if reason is None:
            log.error("%s", services.journal_rollback)
            ctx.notify("error", "storage", services.journal_rollback)
        else:
            _accept_rollback(ctx, services, mark, reason)
    elif getattr(ctx.args, "accept_journal_rollback", None) is not None:
        log.info("--accept-journal-rollback: no journal rollback is recorded; nothing accepted")
    services.journal_mark = mark
    _write_mark(services)

    async def keep() -> None:
        while True:
            await asyncio.sleep(JOURNAL_MARK_EVERY_S)
            await asyncio.to_thread(_write_mark, services)

    _spawn(services, "journal mark", keep())

    async def last() -> None:
        await _cancel_tasks(services, "journal mark")
        _write_mark(services)

    ctx.lifecycle.add_step(stages.FLUSH_STORAGE, "journal mark", last)


def _accept_rollback(ctx: AppContext, services: Services, mark: JournalMark, reason: str) -> None:
    """``--accept-journal-rollback REASON``: the operator accepts the journal as it is. Journaled
    (``journal_rollback_accepted``, with the operator and the reason) and said; the mark moves to the
    journal's end. Reconciliation still names the rollback as the cause of the drift it finds now."""
    from services.orders.journal import OrderJournal

    db, rollback = services.db, mark.rollback
    assert db is not None and rollback is not None
    operator = _operator()
    journal = OrderJournal(db, _now)
    journal.append("journal_rollback_accepted", None, "manual", operator=operator, reason=reason,
                   missing=rollback.missing, marked=rollback.marked, found=rollback.found)  # fmt: skip
    journal.flush()
    mark.accept(_journal_seq(db))
    line = (f"journal rolled back by {rollback.missing} record(s) (database {db.display_url}): accepted by "
            f"{operator}: {reason}")
    log.warning("%s", line)
    ctx.notify("warning", "storage", line)


#: How often the journal's high-water mark is brought up to date (and at quit).
JOURNAL_MARK_EVERY_S = 1.0


def _write_mark(services: Services) -> None:
    mark, db = services.journal_mark, services.db
    if mark is None or db is None:
        return
    try:
        mark.write(_journal_seq(db))
    except Exception as exc:  # a failed mark never stops trading
        log.warning("the journal mark %s could not be written: %s", mark.path, exc)


async def _adopt_early_exchange(ctx: AppContext) -> LocalExchangeLauncher | None:
    """The exchange child main.py started before the imports, if it fits this run (same exchange
    folder and settings); the shutdown sequence then stops it like one started here."""
    early = getattr(ctx.args, "early_exchange", None)
    if not isinstance(early, LocalExchangeLauncher) or early.process is None:
        return None
    if early.exchange_dir != ctx.paths.exchange_dir or early.settings != ctx.settings.local_exchange:
        log.warning("the early-started local exchange does not match this run's settings; restarting it")
        await early.stop()
        return None
    early.listen_for_secret(ctx.redactor.register)
    return early


async def _connect_local_exchange(ctx: AppContext, services: Services) -> None:
    args = ctx.args
    try:
        if args.exchange_url is not None:
            services.exchange = await connect_external(args.exchange_url, args.exchange_keys)
            ctx.redactor.register(services.exchange.keys.secret)
        else:
            launcher = await _adopt_early_exchange(ctx)
            if launcher is None:
                launcher = LocalExchangeLauncher(
                    ctx.paths.exchange_dir, ctx.settings.local_exchange, on_secret=ctx.redactor.register
                )
            services.launcher = launcher
            ctx.lifecycle.add_step(stages.STOP_LOCAL_EXCHANGE, "local exchange", launcher.stop, timeout=15)
            services.exchange = await _start_local_exchange(ctx, launcher)
    except ExchangeError as exc:
        services.exchange_status, services.exchange_ok = "unavailable", False
        services.exchange_detail = str(exc)
        log.error("local exchange: %s", exc)
        ctx.notify("error", "exchange", f"The local exchange could not start: {exc}")
        return
    services.exchange_status, services.exchange_ok = services.exchange.describe, True
    ctx.notify("info", "exchange", f"Local exchange at {services.exchange.describe}")


#: How long start-up waits for disk space to start the local exchange (its session file needs it).
EXCHANGE_DISK_WAIT_S = 120.0
#: A child that dies before it reports its address (killed, or its port lost to a race) is started
#: again this many times, after a short pause each.
EXCHANGE_START_RETRIES = 3
EXCHANGE_RETRY_PAUSE_S = 1.0


async def _start_local_exchange(ctx: AppContext, launcher: LocalExchangeLauncher) -> ExchangeSession:
    """``launcher.start()``, waiting (said once, retried every second) while the disk is full: a start
    on a full disk goes on when space returns instead of staying DISABLED for the whole session. A
    child that dies during its start is started again (each time said), up to
    ``EXCHANGE_START_RETRIES`` times."""
    deadline = time.monotonic() + EXCHANGE_DISK_WAIT_S
    said = False
    deaths = 0
    while True:
        try:
            return await launcher.start()
        except ExchangeDiedAtStart as exc:
            deaths += 1
            if deaths > EXCHANGE_START_RETRIES or ctx.lifecycle.requested:
                raise
            message = (f"{exc}; starting it again in {EXCHANGE_RETRY_PAUSE_S:g} s (attempt {deaths + 1} of "
                       f"{EXCHANGE_START_RETRIES + 1})")  # fmt: skip
            log.error("%s", message)
            ctx.notify("error", "exchange", message)
            await asyncio.sleep(EXCHANGE_RETRY_PAUSE_S)
            continue
        except ExchangeError as exc:
            cause = exc.__cause__
            full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
            if not full or time.monotonic() >= deadline or ctx.lifecycle.requested:
                raise
            if not said:
                said = True
                message = f"the local exchange cannot start yet: {exc}; trying again every second"
                log.error("%s", message)
                ctx.notify("error", "exchange", message)
        await asyncio.sleep(1.0)


def _key_environment(key_id: str) -> str | None:
    """Alpaca key ids start with PK (paper) or AK (live)."""
    return {"PK": "paper", "AK": "live"}.get(key_id[:2].upper())


async def _alpaca_credentials(ctx: AppContext, services: Services) -> tuple[str, str, str, str | None] | None:
    store = SecretStore(on_secret=ctx.redactor.register)
    services.secret_store = store
    environment = "live" if ctx.mode is Mode.LIVE else "paper"
    try:
        keys = await asyncio.to_thread(store.load, ctx.paths.profile, ctx.mode)
    except SecretStoreError as exc:
        _fail(ctx, services, "keyring", f"{exc}. Local mode works without keys (--mode local).")
        return None
    if keys is None:
        _fail(ctx, services, "keyring", f"No API keys are stored for profile {ctx.paths.profile!r} in "
              f"{ctx.mode.value} mode; trading stays DISABLED.", level="warning")
        return None
    log.info("API keys for %s found in the keyring (%s)", ctx.mode.value, store.describe())
    hinted = _key_environment(keys.key_id)
    if hinted is not None and hinted != environment:
        _fail(ctx, services, "broker", f"the keys stored for {ctx.mode.value} are {hinted} keys; paper "
              "and live keys are never mixed: store the right keys for this mode")
        return None
    if ctx.mode is Mode.LIVE:
        confirm = ctx.confirm_live
        ok = await confirm() if confirm is not None else ctx.args.confirm_live == LIVE_CONFIRMATION
        if not ok:
            _fail(ctx, services, "broker", "live trading was not confirmed (type LIVE); not connected")
            return None
        log.warning("LIVE trading confirmed by the user")
    return keys.key_id, keys.secret, environment, None


async def _restart_dead_exchange(
    ctx: AppContext, services: Services, creds: tuple[str, str, str, str | None]
) -> bool:
    """The account check failed because the local exchange died after it reported its address (its
    supervisor starts only once start-up is through): say so, start it again on the same address
    with the same keys (up to 3 times) and connect. False when it was not that or did not help."""
    launcher = services.launcher
    for attempt in range(1, EXCHANGE_START_RETRIES + 1):
        proc = launcher.process if launcher is not None else None
        code = proc.poll() if proc is not None else None
        if launcher is None or proc is None or code is None or ctx.lifecycle.requested:
            return False
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        message = (f"the local exchange (pid {proc.pid}) {how} during start-up; starting it again "
                   f"(attempt {attempt + 1} of {EXCHANGE_START_RETRIES + 1})")  # fmt: skip
        log.error("%s", message)
        ctx.notify("error", "exchange", message)
        try:
            services.exchange = await launcher.restart()
        except ExchangeError as exc:
            log.error("the local exchange could not be started again: %s", exc)
            continue
        services.failures.pop("broker", None)
        if await _connect_broker(ctx, services, *creds):
            return True
    return False


async def _connect_broker(
    ctx: AppContext, services: Services, key_id: str, secret: str, environment: str, base_url: str | None
) -> bool:
    try:
        services.identity = await validate_credentials(
            key_id, secret, environment=environment, base_url=base_url
        )
    except (BrokerAuthError, BrokerUnavailable) as exc:
        _fail(ctx, services, "broker", f"the account check failed: {exc.message}; nothing was connected")
        return False
    services.health = HealthMonitor(ctx.bus)
    services.latency = LatencyRecorder()
    services.budget = RequestBudget()
    broker = AlpacaBroker(key_id, secret, environment=environment, base_url=base_url, budget=services.budget,
                          health=services.health, latency=services.latency)
    services.broker = broker
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "broker", broker.close)
    ctx.notify("info", "broker", f"{ctx.mode.badge}: account {services.identity.account_number} "
               f"({services.identity.status})")
    feeds = ctx.settings.market_data
    services.history = HistoryService(key_id, secret, base_url=base_url, store=services.candles,
                                      feed=feeds.live_feed, history_feed=feeds.history_feed)
    history = services.history
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "history", history.close)
    return True


async def _start_market_data(
    ctx: AppContext, services: Services, key_id: str, secret: str, environment: str, base_url: str | None
) -> None:
    streams = StreamManager(key_id=key_id, secret=secret, bus=ctx.bus, environment=environment,
                            base_url=base_url, broker=services.broker,
                            feed=ctx.settings.market_data.live_feed)
    services.streams = streams
    services.book = streams.book
    _start_health_watch(ctx, services, streams)

    async def close_streams() -> None:
        # The report describes the connection as it was while running, not after closing it.
        services.connection_at_quit = health_sections(ctx, services)
        await streams.stop()

    ctx.lifecycle.add_step(stages.CLOSE_STREAMS, "streams", close_streams, timeout=20)
    try:
        await streams.start()
        await streams.subscribe(ctx.settings.watchlist, trades=True, quotes=True)
    except Exception as exc:
        _fail(ctx, services, "market data", f"the streams could not start ({type(exc).__name__}: {exc}); "
              "trading stays DISABLED")


def _start_health_watch(ctx: AppContext, services: Services, streams: StreamManager) -> None:
    """Probe the broker and the trading stream when they are quiet: the status bar and the state
    report say "live" only while the broker answers."""
    assert services.latency is not None and services.broker is not None
    runner = streams.trading
    watch = HealthWatch(services.latency, services.health, services.broker.get_clock, streams,
                        ping=runner.ping if runner is not None else None)
    watch.watched = lambda: ctx.settings.watchlist
    watch.trading = lambda: services.trading
    services.watch = watch
    ctx.bus.subscribe(TradeUpdateEvent, lambda _e: watch.trade_update())
    _spawn(services, "health watch", watch.run())
    ctx.lifecycle.add_step(stages.CLOSE_STREAMS, "health watch",
                           lambda: _cancel_tasks(services, "health watch"))


def health_status(ctx: AppContext, services: Services) -> HealthStatus | None:
    """Connection, data and trading as the status bar and the state report show them."""
    if services.watch is None:
        return None
    return services.watch.assess()


def _hours(ctx: AppContext) -> MarketCalendar:
    always = ctx.mode is Mode.LOCAL and ctx.settings.local_exchange.always_open
    return MarketCalendar(always_open=always)


def _build_orders(ctx: AppContext, services: Services) -> None:
    assert services.db is not None and services.broker is not None
    bus, db = ctx.bus, services.db
    broker: Broker = services.broker
    crash = crashpoints.from_env()
    if crash is not None:
        log.warning("TEST-ONLY crash point armed: %s", crash.point)
        broker = crashpoints.CrashingBroker(broker, crash)
        crashpoints.watch_bus(bus, crash)
    book = services.book
    prices: Any = book if book is not None else QuoteBook()
    journal = OrderJournal(db, _now)
    store = OrderStore(bus, db, _now, marks=prices)
    trading = TradingStateMachine(bus, _now, journal)
    _halt_at_start(ctx, trading)
    try:
        limits = risk_limits_from_settings(ctx.settings.risk)
    except RiskLimitsError as exc:
        _fail(ctx, services, "risk", f"{exc}; the built-in limits are used")
        limits = RiskLimits()
    risk = RiskGate(limits, on_breach=lambda state, reason: trading.escalate(state, reason, source="risk"))
    # OrderGate exposes read-only properties; the risk layer's protocol spells them as attributes.
    gate: Any = services.streams.gate if services.streams is not None else None
    engine = ExecutionEngine(broker, store, journal, risk, trading, bus, _now, prices=prices,
                             hours=_hours(ctx), order_gate=gate, silent_after_s=10.0)
    reconciler = Reconciler(broker, store, journal, trading, bus, _now, db)
    engine.reduce_only_qty = reconciler.reduce_only_qty
    services.journal, services.orders, services.trading, services.risk = journal, store, trading, risk
    services.engine, services.reconciler = engine, reconciler
    services.kill_switch = KillSwitch(trading, engine, journal)
    if services.streams is not None and services.streams.trading is not None:
        services.streams.add_resync_hook(lambda _since: _refresh_open_orders(services))

    async def open_order_policy() -> None:
        await _cancel_tasks(services, "script")
        if getattr(ctx.args, "on_exit", "leave") == "cancel-all":
            n = await engine.cancel_all(source="manual")
            log.info("open-order policy cancel-all: %d cancel request(s) sent", n)
        else:
            log.info("open-order policy: open orders are left working at the broker")

    async def final_reconciliation() -> None:
        await _cancel_tasks(services, "startup", "poll", "reconcile", "account")
        await _refresh_open_orders(services)
        if reconciler.last_run is not None or trading.state is not TradingState.DISABLED:
            reconciler.quiet = timedelta(0)  # the last word: compare positions even right after a fill
            await reconciler.run_cycle()
            if reconciler.last_skipped is not None:  # the broker (or the exchange) did not answer
                last = reconciler.last_run.isoformat() if reconciler.last_run else "never"
                raise FinalReconciliationNotRun(
                    f"the final reconciliation could not run ({reconciler.last_skipped}); the state "
                    f"report shows the last one that did (at {last})"
                )

    ctx.lifecycle.add_step(stages.OPEN_ORDER_POLICY, "open orders", open_order_policy, timeout=20)
    ctx.lifecycle.add_step(stages.FINAL_RECONCILIATION, "reconciliation", final_reconciliation, timeout=20)
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "execution engine", engine.close)
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "order records", engine.flush_at_exit)
    script = getattr(ctx.args, "script", None)
    if script is not None:
        try:
            orders = getattr(ctx.args, "script_orders", None) or load_script(script)
        except ScriptError as exc:
            _fail(ctx, services, "script", str(exc))
        else:
            _spawn(services, "script", run_script(orders, engine, trading, kill_switch=services.kill_switch))


class FinalReconciliationNotRun(RuntimeError):
    """Said in words at shutdown (no traceback); the shutdown is not clean."""

    expected = True


def _halt_at_start(ctx: AppContext, trading: TradingStateMachine) -> None:
    """A kill-switch HALT from an earlier run stays in force; ``--release-halt REASON`` releases it."""
    reason = getattr(ctx.args, "release_halt", None)
    if reason is not None:
        operator = _operator()
        if trading.release_halt(operator, reason):
            log.warning("kill-switch HALT released by %s: %s", operator, reason)
            ctx.notify("warning", "trading", f"kill-switch HALT released by {operator}: {reason}")
        else:
            log.info("--release-halt: no kill-switch HALT is in force; nothing released")
    if trading.halt_latch is not None:
        why = trading.halt_latch.describe()
        log.warning("%s (release: main.py --release-halt REASON)", why)
        ctx.notify("warning", "trading", f"{why} (release: main.py --release-halt REASON)")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


async def _refresh_open_orders(services: Services) -> None:
    """After a (re)connect and at quit: re-read every open order Heron knows from the broker.

    Alpaca does not replay trade updates missed while the stream was down; the engine's own
    polling covers silent orders only after a delay, so this asks at once.
    """
    engine, store = services.engine, services.orders
    if engine is None or store is None:
        return
    for rec in list(store.open_orders()):
        if rec.broker_order_id is not None:
            await engine.refresh_order(rec)
        else:
            await engine.resolve_intent(rec.client_order_id)


async def _wait_market_data(services: Services, timeout: float) -> str | None:
    """None once the trading stream is live and prices arrive; otherwise why not (after ``timeout``)."""
    streams, book = services.streams, services.book
    if streams is None or book is None:
        return "market data is not running"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        gate_ok = streams.gate.allowed
        priced = bool(book.symbols())
        if gate_ok and priced:
            return None
        if loop.time() >= deadline:
            if not priced:
                return "no market data received yet"
            return f"the trading stream is not live ({streams.gate.reason})"
        await asyncio.sleep(0.1)


async def _startup_trading(ctx: AppContext, services: Services) -> None:
    """Recover → wait for streams → start-up reconciliation (enables trading when clean) → loops."""
    engine, reconciler, trading = services.engine, services.reconciler, services.trading
    assert engine is not None and reconciler is not None and trading is not None
    try:
        unresolved = await engine.recover()
    except StorageError as exc:
        _startup_failed(ctx, services, str(exc))
        return
    if unresolved:
        log.warning("%d in-flight intent(s) not yet resolved: %s", len(unresolved), ", ".join(unresolved))
    _spawn(services, "poll", _every(2.0, engine.poll_once))
    _spawn(services, "account", _every(15.0, engine.refresh_account))
    trading.set(TradingState.DISABLED, "waiting for the trading stream and market data", source="startup")
    problem = await _wait_market_data(services, 20.0)
    while problem is not None:
        trading.set(TradingState.DISABLED, f"{problem}; trading stays DISABLED until it is", source="startup")
        ctx.notify("warning", "trading", f"trading DISABLED: {problem}")
        problem = await _wait_market_data(services, 10.0)
    reconciler.suspected_cause = services.journal_rollback
    try:
        result = await reconciler.startup()
    finally:
        reconciler.suspected_cause = None
    log.info("start-up reconciliation: %s (%d incident(s))", "clean" if result.clean else "NOT clean",
             len(reconciler.open_incidents()))
    _spawn(services, "reconcile", _every(10.0, reconciler.run_cycle))
    _start_strategies(ctx, services)


async def _every(seconds: float, fn: Callable[[], Awaitable[Any]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic task %s failed; it runs again", getattr(fn, "__qualname__", fn))


# -- strategies -------------------------------------------------------------------------------------


def _build_strategies(ctx: AppContext, services: Services) -> None:
    engine = services.engine
    if engine is None:
        return
    services.strategy_registry = dict(builtin_registry())
    folder = ctx.paths.profile_dir / "strategies"
    sink = EngineOrderSink(engine, folder / "order_ids.json")
    bridge = OrderSinkBridge(sink)
    runner = StrategyRunner(bridge, store=StrategyStateStore(folder / "state.json"), clock=_now)
    sink.attach(ctx.bus, runner)
    services.runner, services.strategy_sink = runner, sink
    bars = _bar_builder(ctx, services)
    def feed(new: list[Bar]) -> None:
        for bar in new:
            runner.on_bar(bar)

    bars.sinks.append(feed)

    async def stop_strategies() -> None:
        runner.stop_all()
        await bridge.stop()  # hands over what the strategies already decided, then ends
        sink.detach()
        runner.save()

    ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "strategies", stop_strategies, timeout=20)
    bridge.start()


def _bar_builder(ctx: AppContext, services: Services) -> IntervalBarBuilder:
    if services.bars is None:
        bars = IntervalBarBuilder(_bar_seconds(ctx))
        services.bars = bars
        sub = ctx.bus.subscribe(MarketDataBatchEvent, bars.on_batch)
        bars.start()

        async def stop() -> None:
            sub.cancel()
            await bars.stop()

        ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "interval bars", stop)
        log.info("strategies and shadow models use %s bars built from live trades", bars.timeframe)
    return services.bars


def _start_strategies(ctx: AppContext, services: Services) -> None:
    """Restore saved strategies, then start the ``--start-strategy`` ones (after start-up recon)."""
    runner = services.runner
    if runner is None:
        return
    registry = services.strategy_registry
    try:
        restored = runner.restore(registry)
    except StrategyStateError as exc:
        _fail(ctx, services, "strategies", str(exc), level="warning")
        restored = []
    if restored:
        log.info("restored strategies: %s", ", ".join(restored))
    for spec in getattr(ctx.args, "start_strategy", []) or []:
        try:
            name = _start_one(runner, registry, spec.name, spec.params)
        except (ParamError, StrategyRunnerError, ValueError) as exc:
            _fail(ctx, services, f"strategy:{spec.name}", f"cannot start {spec.name}: {exc}")
            continue
        log.info("strategy %s started (%s)", name, runner.info(name).params)


def _start_one(runner: StrategyRunner, registry: dict[str, Any], name: str, params: dict[str, str]) -> str:
    cls = registry.get(name)
    if cls is None:
        raise StrategyRunnerError(f"unknown strategy {name!r}; built-in: {', '.join(sorted(registry))}")
    if name in runner.names():
        current = runner.info(name).params
        wanted = cls(params).params_as_text()
        if current == wanted:
            runner.start(name)
            return name
        runner.stop(name)
        runner.remove(name)
    runner.add(cls(params), name)
    runner.start(name)
    return name


def check_strategy_specs(specs: list[Any]) -> str | None:
    """A one-line problem with a ``--start-strategy`` spec (unknown name, bad parameter), or None."""
    if not specs:
        return None
    registry = builtin_registry()
    for spec in specs:
        cls = registry.get(spec.name)
        if cls is None:
            known = ", ".join(sorted(registry))
            return f"--start-strategy: unknown strategy {spec.name!r}; built-in: {known}"
        try:
            cls(spec.params)
        except (ParamError, ValueError) as exc:
            return f"--start-strategy {spec.name}: {exc}"
    return None


# -- shadow -----------------------------------------------------------------------------------------

SHADOW_HORIZON = 5  # bars of the strategy/shadow interval
SHADOW_TRAIN_SYMBOLS = 3
#: Seconds after the services are built before the shadow warm-up fetches history.
SHADOW_WARMUP_DELAY_S = 3.0
#: Seconds after the warm-up before trained models are loaded (or trained on first launch).
SHADOW_MODELS_DELAY_S = 15.0


def _build_shadow(ctx: AppContext, services: Services) -> None:
    tracker = ShadowTracker([InferenceEngine(None)], horizon=SHADOW_HORIZON)
    services.shadow = tracker
    # The models' hashes are kept in Heron's database, never beside the model files (whoever can
    # write that folder must not be able to vouch for a pickle); without a database, this session's.
    index = DatabaseModelIndex(services.db) if services.db is not None else MemoryModelIndex()
    services.models = ModelRegistry(ctx.paths.profile_dir / "models", index)
    ready = {"warm": False}

    def feed(bars: list[Bar]) -> None:
        if ready["warm"]:
            tracker.on_bars(bars)

    _bar_builder(ctx, services).sinks.append(feed)
    _spawn(services, "shadow", _prepare_shadow(ctx, services, tracker, ready))
    ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "shadow models", lambda: _cancel_tasks(services, "shadow"))


async def _prepare_shadow(ctx: AppContext, services: Services, tracker: ShadowTracker,
                          ready: dict[str, bool]) -> None:
    """Warm the feature engines up on recent one-minute history, then load or train models.

    Until a trained model exists the tracker runs the momentum rule model, under its own name.
    """
    history, registry = services.history, services.models
    assert registry is not None
    symbols = list(ctx.settings.watchlist)
    # Off the way to a usable window: the panels and the first history come first (headless runs
    # have no window to wait for).
    windowed = not getattr(ctx.args, "headless", False)
    if windowed:
        await asyncio.sleep(SHADOW_WARMUP_DELAY_S)
    end = _now().replace(second=0, microsecond=0)
    if history is not None:
        for symbol in symbols:
            try:
                bars = await history.bars(symbol, Timeframe.MIN_1, end - timedelta(minutes=90), end)
            except Exception as exc:
                log.info("shadow warm-up: no history for %s (%s)", symbol, exc)
                continue
            tracker.warm_up(bars)
    ready["warm"] = True
    log.info("shadow tracker warmed up; rule model %s active", tracker.engines[0].key)
    # Loading or training a model imports scikit-learn (seconds of work holding the GIL, which the
    # GUI thread needs): wait until start-up is well over. The rule model covers the meantime.
    if windowed:
        await asyncio.sleep(SHADOW_MODELS_DELAY_S)
    loaded = await asyncio.to_thread(_load_models, registry)
    if not loaded and history is not None:
        bars_all: list[Bar] = []
        for symbol in symbols[:SHADOW_TRAIN_SYMBOLS]:
            with contextlib.suppress(Exception):
                bars_all += await history.bars(symbol, Timeframe.MIN_1, end - timedelta(days=2), end)
        try:
            reports = await train_models_async(bars_all, registry, horizon=SHADOW_HORIZON)
        except TrainingDataError as exc:
            log.info("shadow models not trained: %s", exc)
            return
        except (OSError, sqlite3.Error, ModelRegistryError) as exc:
            # a full disk or an unwritable model folder: the rule model keeps running
            if isinstance(exc, OSError):
                what = describe_os_error(exc, registry.root)
            else:
                what = describe_db_error(exc)
            log.error("shadow models not trained (rule model %s stays active): %s",
                      tracker.engines[0].key, what)
            return
        log.info("shadow models trained: %s", ", ".join(
            f"{r.model.name} {r.model.version} (test accuracy {r.test_accuracy:.3f})" for r in reports))
        loaded = await asyncio.to_thread(_load_models, registry)
    for predictor in loaded:
        tracker.engines.append(InferenceEngine(predictor))
        log.info("shadow model %s %s added", predictor.name, predictor.version)


def _load_models(registry: ModelRegistry) -> list[SklearnPredictor]:
    out: list[SklearnPredictor] = []
    try:
        names = registry.names()
    except ModelRegistryError as exc:
        log.error("model registry: %s", exc)
        return out
    for name in names:
        try:
            out.append(SklearnPredictor(registry.load(name)))
        except (ModelRegistryError, ValueError) as exc:
            log.error("shadow model %s not loaded: %s", name, exc)
    return out


# -- metrics ----------------------------------------------------------------------------------------


def _start_metrics(ctx: AppContext, services: Services) -> None:
    port = getattr(ctx.args, "metrics_port", None)
    if port is None:
        return
    from app.metrics import MetricsServer  # prometheus_client: only with --metrics-port

    server = MetricsServer(port, lambda: metrics_sample(services))
    try:
        server.start()
    except OSError as exc:
        _fail(ctx, services, "metrics", f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}")
        return
    services.metrics = server
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "metrics", server.stop)


def metrics_sample(services: Services) -> MetricsSample:
    from app.metrics import MetricsSample

    s = MetricsSample()
    if services.streams is not None:
        s.messages_total = services.streams.messages_delivered
        s.streams = dict(services.streams.states)
    if services.latency is not None:
        s.rest_latency = {ep: st.last for ep, st in services.latency.all_stats().items()}
    if services.health is not None:
        s.rest_health = services.health.state.value
    if services.orders is not None:
        s.orders_by_status = services.orders.counts_by_status()
    if services.trading is not None:
        s.trading_state = services.trading.state
    if services.reconciler is not None:
        s.open_incidents = len(services.reconciler.open_incidents())
    if services.runner is not None:
        s.strategy_pnl = {i.name: float(i.pnl) for i in services.runner.infos()}
    if services.shadow is not None:
        s.shadow_predictions, s.shadow_scored = services.shadow.predictions, services.shadow.scored
    return s


# -- state report -----------------------------------------------------------------------------------


def _register_report(ctx: AppContext, services: Services) -> None:
    if services.state_sections:
        return
    services.state_sections.append(lambda: service_sections(ctx, services))


def connection_section(services: Services) -> dict[str, Any] | None:
    if services.health is None:
        return None
    streams: dict[str, str] = {}
    if services.streams is not None:
        for channel in ("stock", "crypto", "trading"):
            state = services.streams.states.get(channel)
            streams[channel] = state.value if state is not None else ConnectionState.CONNECTING.value
    return {"rest": services.health.state.value, "streams": streams}


def health_sections(ctx: AppContext, services: Services) -> dict[str, Any] | None:
    """The report's ``connection``, ``data`` and ``trading`` sections: the status bar's derivation."""
    legacy = connection_section(services)
    status = health_status(ctx, services)
    if status is None:
        return None if legacy is None else {"connection": legacy}
    sections = status.report()
    if legacy is not None:  # every stream is listed, those not running yet as connecting
        connection = sections["connection"]
        connection["rest"] = legacy["rest"]
        connection["streams"] = {**legacy["streams"], **connection.get("streams", {})}
    return sections


def service_sections(ctx: AppContext, services: Services) -> dict[str, Any]:
    """docs/state-report.md sections of the parts that run; a part that does not run has no section."""
    trading = services.trading
    report = build_state_report(
        mode=ctx.mode,
        trading_state=trading.state if trading is not None else TradingState.DISABLED,
        store=services.orders,
        health=services.connection_at_quit or health_sections(ctx, services),
        reconciler=cast(Any, services.reconciler),  # structurally a ReconcilerLike
        closing=services.engine.closer if services.engine is not None else None,
    )
    report.pop("version", None)
    report.pop("mode", None)
    account = services.engine.account if services.engine is not None else None
    if account is not None:  # the broker's account as last read (cash moves only with fills)
        report["account"] = {"cash": str(account.cash), "equity": str(account.equity)}
    if services.runner is not None:
        report["strategies"] = strategies_report(services.runner)
    if services.shadow is not None:
        report["shadow"] = shadow_report(services.shadow)
    return report


def state_report(ctx: AppContext, services: Services, *, final: bool = True) -> dict[str, Any]:
    """docs/state-report.md: sections a part does not have are omitted, never invented. ``final``: written at
    quit (false: a copy written while the terminal runs)."""
    report: dict[str, Any] = {"version": STATE_REPORT_VERSION, "mode": ctx.mode.value, "final": final,
                              "written_at": _now().isoformat()}
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


def _fatal(message: str, *, logged: bool = True) -> int:
    """A start-up failure before the services: one line, an ERROR in the log (and so on stderr);
    printed instead when there is no log yet (``logged=False``)."""
    message = " ".join(message.split())
    if logged:
        log.error("startup failed: %s", message)
    else:
        print(f"heron: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Start Heron; returns the exit code. Every startup failure is one clear line, never a traceback."""
    try:
        paths = prepare(resolve_paths(args.profile, args.data_dir))
    except DataDirError as exc:
        return _fatal(str(exc), logged=False)
    redactor, hub = SecretRedactor(), LogHub()
    early = getattr(args, "early_exchange", None)
    if isinstance(early, LocalExchangeLauncher):
        early.listen_for_secret(redactor.register)  # before the first log line
    try:
        logging_handle = setup_logging(redactor=redactor, hub=hub, log_dir=paths.log_dir)
    except OSError as exc:
        return _fatal(f"cannot open the log file in {paths.log_dir}: {exc.strerror or exc}", logged=False)
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
        settings, settings_problem = load_or_defaults(paths.settings_file)
    except SettingsError as exc:
        return _fatal(str(exc))
    if settings_problem is not None:
        log.warning("%s", settings_problem)
    mode = Mode(args.mode) if args.mode else settings.mode
    set_aside = defaults_after_set_aside(paths.settings_file) if mode is Mode.LIVE else None
    if mode is Mode.LIVE and (settings_problem is not None or set_aside is not None):
        # the defaults' risk limits may be looser than the trader's own: never for real money, not
        # on this start nor on the next ones, until the settings are fixed or saved on purpose
        why = settings_problem or (
            f"the settings file {paths.settings_file} holds the defaults written when an unusable one "
            f"was moved aside to {set_aside.name if set_aside else '?'}"
        )
        return _fatal(
            f"alpaca-live refused: {why}. Heron does not trade real money on default risk limits; fix "
            "the moved file and move it back, or review and save the settings in paper or local mode "
            "first; nothing was connected"
        )
    if mode is Mode.LIVE and args.headless and getattr(args, "confirm_live", None) != LIVE_CONFIRMATION:
        return _fatal(
            "alpaca-live trades real money: a headless live run needs the typed confirmation "
            f"--confirm-live {LIVE_CONFIRMATION}; nothing was connected"
        )
    problem = check_strategy_specs(getattr(args, "start_strategy", None) or [])
    if problem:
        return _fatal(problem)
    if getattr(args, "script", None) is not None:
        try:  # every entry checked before anything connects: a bad script runs no order at all
            args.script_orders = load_script(args.script)
        except ScriptError as exc:
            return _fatal(f"--script refused, no order was sent: {exc}")
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
    if settings_problem is not None:
        ctx.notify("warning", "settings", settings_problem)
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
            try:
                write_state_report(path, state_report(ctx, services))
            except Exception as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                services.report_error = f"the state report could not be written to {path}: {reason}"
                log.error("%s", services.report_error)

        ctx.lifecycle.add_step(stages.WRITE_REPORTS, "state report", write)
        _spawn(services, "state report", _report_while_running(ctx, services, path))
        # The running copies stop first: the report written at quit is the last one.
        ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "state report while running",
                               lambda: _cancel_tasks(services, "state report"))
    return asyncio.ensure_future(build_services(ctx, services))


#: While the terminal runs the state report is rewritten (atomically) when it changed, at most this
#: often, so an operator or a monitor reads what is true now, not only what was true at quit.
REPORT_EVERY_S = 2.0


async def _report_while_running(
    ctx: AppContext, services: Services, path: Path, every: float = REPORT_EVERY_S
) -> None:
    last: str | None = None
    said: str | None = None
    while True:
        await asyncio.sleep(every)
        if not services.state_sections:
            continue  # not built yet: nothing to say beyond "starting"
        report = state_report(ctx, services, final=False)
        text = json.dumps(report, indent=2) + "\n"
        same = {k: v for k, v in report.items() if k != "written_at"}
        key = json.dumps(same, sort_keys=True, default=str)
        if key == last:
            continue
        write = asyncio.ensure_future(asyncio.to_thread(atomic_write_text, path, text))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:  # a write under way ends before the one at quit begins
            with contextlib.suppress(Exception):
                await write
            raise
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problem = f"the state report could not be written to {path}: {reason}"
            if problem != said:  # once per distinct problem; the write at quit decides the exit code
                log.warning("%s", problem)
                said = problem
            continue
        if said is not None:
            log.info("the state report is written to %s again", path)
            said = None
        last = key


async def _finish(ctx: AppContext, task: asyncio.Task[Services]) -> tuple[str | None, ShutdownReport]:
    """Stop everything; returns why building the services failed, if it raised, and how shutdown went."""
    failed: str | None = None
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        log.info("startup of services was interrupted by shutdown")
    except Exception as exc:
        log.exception("building services failed")
        failed = f"building the services failed: {type(exc).__name__}: {exc}"
    report = await ctx.lifecycle.shutdown("quit")
    ctx.lifecycle.remove_signal_handlers()
    for step in report.steps:
        if not step.ok:
            log.warning("shutdown step %s/%s: %s", step.stage, step.name, step.error)
    return failed, report


def headless_exit_reasons(
    services: Services, build_failure: str | None, shutdown: ShutdownReport | None = None
) -> list[str]:
    """Why a headless run must exit non-zero (empty: exit 0), one line each: start-up failed,
    trading was never enabled, the state report could not be written, a shutdown step failed or
    timed out (the run did not end cleanly: e.g. orders not cancelled or the broker not answering)."""
    reasons: list[str] = []
    if services.fatal is not None:
        reasons.append(f"start-up failed: {services.fatal}")
    elif build_failure is not None:
        reasons.append(f"start-up failed: {' '.join(build_failure.split())}")
    else:
        trading = services.trading
        if trading is not None and trading.state is TradingState.ACTIVE:
            services.trading_was_active = True
        if not services.trading_was_active:
            if trading is not None:
                why = f"trading stayed {trading.state.value}: {trading.reason}"
            else:
                why = "; ".join(f"{part}: {msg}" for part, msg in services.failures.items()) or (
                    "the trading services never started"
                )
            reasons.append(f"trading was never enabled ({why})")
    if services.report_error is not None:
        reasons.append(services.report_error)
    if shutdown is not None and not shutdown.ok:
        failed = "; ".join(f"{s.stage}/{s.name}: {s.error}" for s in shutdown.steps if not s.ok)
        reasons.append(f"shutdown finished with errors ({failed})")
    return reasons


#: main.py turns the cyclic garbage collector off for start-up; at the latest this long after the
#: loop starts it is back on, even if the services never finish starting.
GC_FALLBACK_S = 15.0


def settle_gc() -> None:
    """After the start-up loads (modules, the blotter's orders, history): move every object alive
    now into the permanent generation, out of every future collection (a gen-2 pass over them cost
    tens to hundreds of ms), and turn the collector back on. Idempotent once on."""
    import gc

    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()
    log.debug("garbage collector on; %d start-up objects frozen", gc.get_freeze_count())


def _run_headless(ctx: AppContext) -> int:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        _attach_loop(ctx, loop)
        services = Services(mode=ctx.mode)

        def on_trading(event: TradingStateEvent) -> None:
            if event.state is TradingState.ACTIVE:
                services.trading_was_active = True

        ctx.bus.subscribe(TradingStateEvent, on_trading)
        task = await _start_services(ctx, services)
        task.add_done_callback(lambda _: settle_gc())
        loop.call_later(GC_FALLBACK_S, settle_gc)
        if ctx.args.quit_after is not None:
            loop.call_later(ctx.args.quit_after, ctx.lifecycle.request_shutdown, "--quit-after")
        log.info("running headless in %s mode", ctx.mode.value)
        await ctx.lifecycle.wait_requested()
        build_failure, shutdown = await _finish(ctx, task)
        reasons = headless_exit_reasons(services, build_failure, shutdown)
        for reason in reasons:
            if services.fatal is None and reason != services.report_error:  # those are said already
                log.error("headless run failed: %s", reason)
        return 1 if reasons else 0

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
        ctx.confirm_live = lambda: _ask_live_confirmation(window)
        window.show()
        started = getattr(ctx.args, "started_monotonic", None)
        if started is not None:
            log.info("window shown %.0f ms after start", (time.monotonic() - started) * 1000)
        lanes = getattr(ctx.args, "import_lanes", None)
        if lanes is not None:
            log.info("start-up imports: window modules %.2f s, service modules %.2f s (worker), both "
                     "done %.2f s after the lanes began", lanes[0], lanes[1] or 0.0, lanes[2])  # fmt: skip
        app.lastWindowClosed.connect(lambda: ctx.lifecycle.request_shutdown("window closed"))
        services = Services(mode=ctx.mode)
        if ctx.mode is Mode.LOCAL:
            window.heron_status.set_exchange("starting…", None)
        task = await _start_services(ctx, services)

        def services_ready(_: object) -> None:
            if task.cancelled() or ctx.lifecycle.requested:
                return
            if ctx.mode is Mode.LOCAL:
                status = window.heron_status
                status.set_exchange(services.exchange_status, services.exchange_ok, services.exchange_detail)
            _populate_window(ctx, window, services)
            if started is not None:
                elapsed_ms = (time.monotonic() - started) * 1000
                log.info("window usable: panels installed %.0f ms after start", elapsed_ms)
            settle_gc()
            _spawn(services, "status", _feed_status(ctx, window, services))
            ctx.lifecycle.add_step(
                stages.STOP_STRATEGIES, "status bar", lambda: _cancel_tasks(services, "status")
            )

        task.add_done_callback(services_ready)
        loop.call_later(GC_FALLBACK_S, settle_gc)  # services that never finish starting
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
    # Known-harmless warning of the offscreen platform plugin.
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
    # Until the services run; from then on the status loop derives what is shown (show_health).
    ctx.bus.subscribe(ConnectionStateEvent, lambda e: status.set_connection(e.channel, e.state, e.reason))
    ctx.bus.subscribe(TradingStateEvent, lambda e: status.set_trading_state(e.state, e.reason))


def _populate_window(ctx: AppContext, window: MainWindow, services: Services) -> None:
    """Hand the services to the panels, then restore the saved layout. GUI thread, once."""
    from app import panels_ops, panels_trading

    for module in (panels_trading, panels_ops):
        try:
            if module is panels_trading:
                panels_trading.install(window, ctx, services, defer_plots=True)
            else:
                panels_ops.install(window, ctx, services, defer_plots=True)
        except Exception:
            log.exception("installing panels from %s failed; the rest of the window works", module.__name__)
            ctx.notify("error", "panels", f"panels of {module.__name__} could not be installed; see the log")
    window.capture_default_layout()
    window.restore_layout()


async def _feed_status(
    ctx: AppContext, window: MainWindow, services: Services, interval: float = 1.0
) -> None:
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
            status.show_health(derived)
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


async def _ask_live_confirmation(window: MainWindow) -> bool:
    """A non-blocking dialog: the person must type LIVE to connect to alpaca-live."""
    from PySide6.QtWidgets import QInputDialog, QLineEdit

    dialog = QInputDialog(window)
    dialog.setObjectName("liveConfirmDialog")
    dialog.setWindowTitle("Connect to LIVE trading")
    dialog.setLabelText(
        "You are connecting to Alpaca LIVE: orders use real money.\n"
        f"Type {LIVE_CONFIRMATION} to connect."
    )
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not future.done():
            future.set_result(bool(result) and dialog.textValue().strip() == LIVE_CONFIRMATION)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await future
    finally:
        dialog.deleteLater()
