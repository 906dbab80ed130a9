"""Order submit latency over loopback: risk gate, journal (committed intent), POST, ack.

The real local exchange runs as a subprocess (tests/support/exchange.py) and is reached through
the real alpaca-py adapter (services/broker/alpaca.py). Orders are resting buy limits far below the
market, so nothing fills; each sample is one ``ExecutionEngine.submit`` from call to acknowledged.
``WORKING`` resting orders are placed first (not measured), so every measured submit's risk check
counts a book of several hundred working orders, as it does for a busy account.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.broker.alpaca import AlpacaBroker
from services.broker.budget import RequestBudget
from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest, Quote
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.orders.tables import ORDERS_SCHEMA
from services.orders.transitions import OrderState
from services.risk.gate import RiskGate
from services.risk.limits import RiskLimits
from services.risk.trading_state import TradingStateMachine
from services.storage import Database
from tests.support.exchange import ExchangeProcess

SYMBOL = "AAPL"
ORDERS = 150
WORKING = 300


class _StaticPrices:
    """A fixed NBBO near the exchange's price so the price band and notional checks run for real."""

    def __init__(self, mid: Decimal) -> None:
        self.q = Quote(
            SYMBOL,
            mid - Decimal("0.01"),
            mid + Decimal("0.01"),
            Decimal(100),
            Decimal(100),
            datetime.now(UTC),
        )

    def quote(self, symbol: str) -> Quote | None:
        return self.q

    def last_price(self, symbol: str) -> Decimal | None:
        return self.q.mid

    def is_stale(self, symbol: str) -> bool:
        return False

    def prev_close(self, symbol: str) -> Decimal | None:
        return None


class _Open:
    def is_open(self, ts: datetime) -> bool:
        return True

    def is_extended(self, ts: datetime) -> bool:
        return False


async def _measure(ex: ExchangeProcess, db: Database) -> list[float]:
    broker = AlpacaBroker(
        ex.key_id, ex.secret, environment="local", base_url=ex.url, budget=RequestBudget(per_minute=1_000_000)
    )
    try:
        bus = EventBus()
        journal = OrderJournal(db, lambda: datetime.now(UTC))
        store = OrderStore(bus, db, lambda: datetime.now(UTC), batch=journal.batch)
        trading = TradingStateMachine(bus, lambda: datetime.now(UTC), journal)
        limits = RiskLimits(
            max_orders_per_minute=10**6,
            max_open_orders=10**6,
            duplicate_window_s=Decimal(0),
            max_gross_exposure=Decimal(10**9),
            max_net_exposure=Decimal(10**9),
            max_position_qty=Decimal(10**9),
            max_position_notional=Decimal(10**9),
        )
        mid = Decimal(100)
        engine = ExecutionEngine(
            broker,
            store,
            journal,
            RiskGate(limits),
            trading,
            bus,
            lambda: datetime.now(UTC),
            prices=_StaticPrices(mid),
            hours=_Open(),
        )
        await engine.refresh_account()
        trading.enable()
        for i in range(WORKING):
            res = await engine.submit(
                OrderRequest(
                    SYMBOL,
                    OrderSide.BUY,
                    OrderType.LIMIT,
                    TimeInForce.DAY,
                    qty=Decimal(1),
                    limit_price=Decimal("0.50") + Decimal(i % 40) / 100,
                )
            )
            if res.state in (OrderState.DENIED, OrderState.REJECTED, OrderState.SUBMITTED):
                raise RuntimeError(f"working order not acknowledged: {res.state} {res.message}")
        samples: list[float] = []
        for i in range(ORDERS):
            # a low, resting limit inside the price band (buy limits below the ask always pass it)
            req = OrderRequest(
                SYMBOL,
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(1),
                limit_price=Decimal("1.00") + Decimal(i) / 100,
            )
            t0 = time.perf_counter()
            res = await engine.submit(req)
            samples.append((time.perf_counter() - t0) * 1000)
            if res.state in (OrderState.DENIED, OrderState.REJECTED, OrderState.SUBMITTED):
                raise RuntimeError(f"benchmark order not acknowledged: {res.state} {res.message}")
        await engine.cancel_all()
        engine.close()
        return samples
    finally:
        await broker.close()


def run() -> dict[str, Any]:
    with ExchangeProcess.start() as ex, tempfile.TemporaryDirectory(prefix="heron-bench-order-") as tmp:
        db = Database.open(None, Path(tmp), [ORDERS_SCHEMA])
        try:
            samples = asyncio.run(_measure(ex, db))
        finally:
            db.dispose()
    warm = sorted(samples[10:])
    return {
        "order_submit_p50_ms": {
            "value": round(statistics.median(warm), 3),
            "unit": "ms",
            "goal": "≤ 10",
            "working_orders": f"{WORKING}-{WORKING + ORDERS}",
        },
        "order_submit_p99_ms": {
            "value": round(warm[int(len(warm) * 0.99) - 1], 3),
            "unit": "ms",
            "goal": "≤ 30",
        },
    }
