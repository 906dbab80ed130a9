"""Real services over generated data, for the ops panels' standalone previews only.

The reconciliation preview runs the real :class:`Reconciler`, order store, journal (SQLite in a
temporary folder) and trading state machine. The broker side is :class:`GeneratedBroker`: a fixed,
made-up broker state (positions and one open order) answering the four read-only calls the
reconciler makes. It is labelled as generated wherever it is shown and never used by the app.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Fill, Order, Position


class GeneratedBroker:
    """Read-only broker state for previews (positions, open orders, no fills)."""

    def __init__(self, positions: dict[str, tuple[str, str]], open_orders: list[Order]) -> None:
        self.positions = {s: Position(s, Decimal(q), Decimal(p)) for s, (q, p) in positions.items()}
        self.open_orders = open_orders

    async def get_positions(self) -> list[Position]:
        return list(self.positions.values())

    async def get_position(self, symbol: str) -> Position | None:
        return self.positions.get(symbol)

    async def list_orders(self, query: Any) -> list[Order]:
        return list(self.open_orders)

    async def get_fills(self, after: datetime | None = None, until: datetime | None = None) -> list[Fill]:
        return []


@dataclass
class ReconciliationRig:
    reconciler: Any
    store: Any
    trading: Any
    broker: GeneratedBroker
    bus: EventBus
    folder: Path


def reconciliation_rig(folder: Path | None = None) -> ReconciliationRig:
    """A reconciler that found one critical and one warning incident, one already acknowledged."""
    from services.orders.journal import OrderJournal
    from services.orders.store import OrderStore
    from services.orders.tables import ORDERS_SCHEMA
    from services.reconciliation.reconciler import Reconciler
    from services.risk.trading_state import TradingStateMachine
    from services.storage import Database

    where = folder or Path(tempfile.mkdtemp(prefix="heron-preview-"))
    now = datetime.now(UTC).replace(microsecond=0)

    def clock() -> datetime:
        return now

    bus = EventBus()
    db = Database.open(None, where, [ORDERS_SCHEMA])
    journal = OrderJournal(db, clock)
    store = OrderStore(bus, db, clock, batch=journal.batch)
    trading = TradingStateMachine(bus, clock, journal)
    store.book_adjustment("AAPL", Decimal(25), Decimal("189.40"), "preview-seed-1")
    store.book_adjustment("NVDA", Decimal(12), Decimal("118.20"), "preview-seed-2")
    store.book_adjustment("SPY", Decimal(-5), Decimal("512.10"), "preview-seed-3")
    unknown = Order(
        "b7f1-preview-0042", "manual-web-0042", "TSLA", OrderSide.SELL, OrderType.LIMIT, TimeInForce.DAY,
        OrderStatus.NEW, Decimal(3), Decimal(0), now - timedelta(minutes=4), now, now,
        limit_price=Decimal("251.00"),
    )  # fmt: skip
    broker = GeneratedBroker(
        {
            "AAPL": ("25", "189.40"),
            "NVDA": ("12", "118.95"),
            "SPY": ("-5", "512.10"),
            "MSFT": ("7", "412.30"),
        },
        [unknown],
    )
    rc = Reconciler(broker, store, journal, trading, bus, clock, db)  # type: ignore[arg-type]
    asyncio.run(rc.startup())
    price = next(i for i in rc.open_incidents() if i.kind == "position_price")
    rc.acknowledge(price.id, "preview", "known average-price rounding at the broker")
    return ReconciliationRig(rc, store, trading, broker, bus, where)
