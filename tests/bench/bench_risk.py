"""Pre-trade risk check latency with working-order exposure (no I/O in the measured part).

An :class:`ExecutionEngine` over the fake broker holds ``WORKING`` resting orders across
``SYMBOLS`` symbols (some partly filled, so positions exist too) and 50 positions. Each sample is
one order: ``engine.risk_context`` (positions, working buys and sells per symbol, worst-case
gross and net exposure) timed apart from ``RiskGate.check`` over that context, and the two
together (what ``submit`` spends before the journal).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import Asset, OrderRequest, Quote
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.orders.tables import ORDERS_SCHEMA
from services.risk.gate import RiskGate
from services.risk.limits import RiskLimits
from services.risk.trading_state import TradingStateMachine
from services.storage import Database
from tests.support.fake_broker import FakeBroker

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}" for i in range(49)] + ["AAPL"]
SHORTED = [f"T{i:02d}" for i in range(25)]  # symbols only sold short (working sells)
WORKING = 400
SAMPLES = 20_000


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class _Prices:
    def __init__(self) -> None:
        self.q = Quote("AAPL", Decimal("189.95"), Decimal("190.05"), Decimal(300), Decimal(200), NOW)

    def quote(self, symbol: str) -> Quote | None:
        return self.q

    def last_price(self, symbol: str) -> Decimal | None:
        return Decimal("190.00")

    def is_stale(self, symbol: str) -> bool:
        return False

    def prev_close(self, symbol: str) -> Decimal | None:
        return Decimal("188.10")


class _Hours:
    def is_open(self, ts: datetime) -> bool:
        return True

    def is_extended(self, ts: datetime) -> bool:
        return False


def _engine(db: Database, clock: _Clock) -> tuple[ExecutionEngine, FakeBroker]:
    bus = EventBus()
    journal = OrderJournal(db, clock)
    assets = [Asset(s, "us_equity", "NASDAQ", True, True, True, True) for s in SYMBOLS + SHORTED]
    broker = FakeBroker(clock, cash=Decimal(10**9), assets=assets)
    broker.sink = bus.publish
    broker.journal_check = journal.has_intent
    store = OrderStore(bus, db, clock, batch=journal.batch, keep_closed=500)
    trading = TradingStateMachine(bus, clock, journal)
    limits = RiskLimits(
        max_orders_per_minute=10**9,
        max_open_orders=10**6,
        duplicate_window_s=Decimal(0),
        max_order_notional=Decimal(10**7),
        max_gross_exposure=Decimal(10**9),
        max_net_exposure=Decimal(10**9),
        max_position_qty=Decimal(10**7),
        max_position_notional=Decimal(10**9),
    )
    engine = ExecutionEngine(
        broker, store, journal, RiskGate(limits), trading, bus, clock, prices=_Prices(), hours=_Hours()
    )
    return engine, broker


async def _setup(engine: ExecutionEngine, broker: FakeBroker, clock: _Clock) -> None:
    await engine.refresh_account()
    engine.trading.enable()
    for i in range(WORKING):
        clock.now += timedelta(milliseconds=5)
        side = OrderSide.BUY if i % 3 else OrderSide.SELL
        price = Decimal("185.00") if side is OrderSide.BUY else Decimal("195.00")
        # Sells work symbols Heron is not long in (short sales): a sell beyond a long position's
        # free shares is refused, as Alpaca refuses it ("insufficient qty available").
        symbol = SYMBOLS[i % len(SYMBOLS)] if side is OrderSide.BUY else SHORTED[i % len(SHORTED)]
        req = OrderRequest(
            symbol,
            side,
            OrderType.LIMIT,
            TimeInForce.DAY,
            qty=Decimal(20),
            limit_price=price,
        )
        res = await engine.submit(req, source="bench")
        if not res.accepted or res.client_order_id is None:
            raise RuntimeError(f"setup order refused: {res.message}")
        if i % 4 == 0:  # some partly filled: positions and leaves both exist
            broker.fill(broker.by_client[res.client_order_id], Decimal(5), price)
    engine.flush()


def _measure(engine: ExecutionEngine, clock: _Clock) -> tuple[list[float], list[float]]:
    gate = engine.risk
    asset = Asset("AAPL", "us_equity", "NASDAQ", True, True, True)
    ctx_us: list[float] = []
    check_us: list[float] = []
    for i in range(SAMPLES):
        clock.now += timedelta(milliseconds=1)
        req = OrderRequest(
            "AAPL",
            OrderSide.BUY if i % 2 else OrderSide.SELL,
            OrderType.LIMIT,
            TimeInForce.DAY,
            qty=Decimal(10 + i % 7),
            limit_price=Decimal("190.00"),
        )
        t0 = time.perf_counter_ns()
        ctx = engine.risk_context(req, asset)
        t1 = time.perf_counter_ns()
        report = gate.check(req, ctx)
        t2 = time.perf_counter_ns()
        ctx_us.append((t1 - t0) / 1000)
        check_us.append((t2 - t1) / 1000)
        if not report.passed:
            raise RuntimeError(f"benchmark order unexpectedly refused: {report.explain()}")
    return ctx_us, check_us


def run() -> dict[str, Any]:
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="heron-bench-risk-") as tmp:
        db = Database.open(None, Path(tmp), [ORDERS_SCHEMA])
        try:
            engine, broker = _engine(db, clock)
            asyncio.run(_setup(engine, broker, clock))
            probe = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1))
            ctx = engine.risk_context(probe, None)
            working = len(engine.store.open_orders())
            positions = sum(1 for p in ctx.positions.values() if p)
            ctx_us, check_us = _measure(engine, clock)
            engine.close()
        finally:
            db.dispose()
    warm = slice(2000, None)
    check = sorted(check_us[warm])
    both = sorted(a + b for a, b in zip(ctx_us[warm], check_us[warm], strict=True))
    return {
        "risk_check_median_us": {
            "value": round(statistics.median(check), 2),
            "unit": "µs",
            "goal": "≤ 50",
            "working_orders": working,
            "positions": positions,
        },
        "risk_check_p99_us": {"value": round(check[int(len(check) * 0.99)], 2), "unit": "µs"},
        "risk_context_median_us": {"value": round(statistics.median(sorted(ctx_us[warm])), 2), "unit": "µs"},
        "risk_precheck_total_median_us": {"value": round(statistics.median(both), 2), "unit": "µs"},
    }
