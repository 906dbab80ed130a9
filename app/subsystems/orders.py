"""Orders, risk and reconciliation: the journal, the order store, the trading state machine, the risk
gate (limits from the settings), the execution engine, the reconciler and the kill switch; the
shutdown's open-order policy and final reconciliation; ``--script``; and trading start-up
(:mod:`services.orders.startup`) once everything is built."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from app import crashpoints
from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, fail, now, spawn, startup_failed
from app.script import ScriptError, load_script, run_script
from app.subsystems.strategies import start_strategies
from services.broker.base import Broker
from services.domain.calendar import MarketCalendar
from services.domain.enums import Mode, TradingState
from services.marketdata.book import QuoteBook
from services.orders import startup
from services.orders.activity import ActivityLog
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.reconciliation.reconciler import Reconciler
from services.risk.gate import RiskGate
from services.risk.kill_switch import KillSwitch
from services.risk.limits import RiskLimits, RiskLimitsError
from services.risk.trading_state import TradingStateMachine

log = logging.getLogger("heron.app")


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


def _hours(ctx: AppContext) -> MarketCalendar:
    always = ctx.mode is Mode.LOCAL and ctx.settings.local_exchange.always_open
    return MarketCalendar(always_open=always)


def build_orders(ctx: AppContext, services: Services) -> None:
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
    journal = OrderJournal(db, now)
    store = OrderStore(bus, db, now, marks=prices)
    trading = TradingStateMachine(bus, now, journal)
    startup.halt_at_start(trading, getattr(ctx.args, "release_halt", None), ctx.notify)
    try:
        limits = risk_limits_from_settings(ctx.settings.risk)
    except RiskLimitsError as exc:
        fail(ctx, services, "risk", f"{exc}; the built-in limits are used")
        limits = RiskLimits()
    risk = RiskGate(limits, on_breach=lambda state, reason: trading.escalate(state, reason, source="risk"))
    # OrderGate exposes read-only properties; the risk layer's protocol spells them as attributes.
    gate: Any = services.streams.gate if services.streams is not None else None
    engine = ExecutionEngine(
        broker,
        store,
        journal,
        risk,
        trading,
        bus,
        now,
        prices=prices,
        hours=_hours(ctx),
        order_gate=gate,
        silent_after_s=10.0,
    )
    reconciler = Reconciler(broker, store, journal, trading, bus, now, db)
    engine.reduce_only_qty = reconciler.reduce_only_qty
    services.journal, services.orders, services.trading, services.risk = journal, store, trading, risk
    services.engine, services.reconciler = engine, reconciler
    services.kill_switch = KillSwitch(trading, engine, journal)
    ActivityLog(
        bus, store
    )  # orders, fills, rejections and trading states to the log; kept by its subscriptions
    if services.streams is not None and services.streams.trading is not None:
        services.streams.add_resync_hook(lambda _since: _refresh_open_orders(services))

    _register_shutdown(ctx, services, engine, reconciler, trading)
    script = getattr(ctx.args, "script", None)
    if script is not None:
        try:
            orders = ctx.script_orders or load_script(script)
        except ScriptError as exc:
            fail(ctx, services, "script", str(exc))
        else:
            spawn(services, "script", run_script(orders, engine, trading, kill_switch=services.kill_switch))


def _register_shutdown(
    ctx: AppContext,
    services: Services,
    engine: ExecutionEngine,
    reconciler: Reconciler,
    trading: TradingStateMachine,
) -> None:
    """The open-order policy (``--on-exit``), the final reconciliation, then closing the engine."""

    async def open_order_policy() -> None:
        await cancel_tasks(services, "script")
        if getattr(ctx.args, "on_exit", "leave") == "cancel-all":
            n = await engine.cancel_all(source="manual")
            log.info("open-order policy cancel-all: %d cancel request(s) sent", n)
        else:
            log.info("open-order policy: open orders are left working at the broker")

    async def final_reconciliation() -> None:
        await cancel_tasks(services, "startup", "poll", "reconcile", "account")
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


class FinalReconciliationNotRun(RuntimeError):
    """Said in words at shutdown (no traceback); the shutdown is not clean."""

    expected = True


async def _refresh_open_orders(services: Services) -> None:
    await startup.refresh_open_orders(services.engine, services.orders)


async def start_trading(ctx: AppContext, services: Services) -> None:
    """services/orders/startup.py's start-up, then the strategies (after the start-up reconciliation)."""
    engine, reconciler, trading = services.engine, services.reconciler, services.trading
    assert engine is not None and reconciler is not None and trading is not None
    started = await startup.startup_trading(
        engine, reconciler, trading, services.streams, services.book, notify=ctx.notify,
        spawn=lambda name, coro: spawn(services, name, coro), suspected_cause=services.journal_rollback,
        on_failed=lambda why: startup_failed(ctx, services, why),
    )  # fmt: skip
    if started:
        start_strategies(ctx, services)
