"""A wired engine over the fake broker and a real SQLite journal in a temp directory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from services.domain.bus import EventBus
from services.domain.events import Event, TradeUpdateEvent
from services.domain.models import Asset, Quote
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.orders.tables import ORDERS_SCHEMA
from services.risk.gate import RiskGate
from services.risk.trading_state import TradingStateMachine
from services.storage import Database
from tests.support.clock import ManualClock
from tests.support.fake_broker import FakeBroker
from tests.support.fakes import AlwaysOpen


class FakePrices:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.quotes: dict[str, Quote] = {}
        self.stale: set[str] = set()

    def set(self, symbol: str, bid: str, ask: str) -> None:
        self.quotes[symbol] = Quote(
            symbol, Decimal(bid), Decimal(ask), Decimal(100), Decimal(100), self.clock()
        )

    def quote(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)

    def last_price(self, symbol: str) -> Decimal | None:
        q = self.quotes.get(symbol)
        return q.mid if q else None

    def is_stale(self, symbol: str) -> bool:
        return symbol in self.stale

    def prev_close(self, symbol: str) -> Decimal | None:
        return None


ASSETS = [Asset(s, "us_equity", "NASDAQ", True, True, True) for s in ("AAPL", "MSFT", "TSLA")]


@dataclass
class Rig:
    clock: ManualClock
    bus: EventBus
    db: Database
    broker: FakeBroker
    journal: OrderJournal
    store: OrderStore
    trading: TradingStateMachine
    engine: ExecutionEngine
    prices: FakePrices
    events: list[Event]

    def restart(self) -> Rig:
        """A new process on the same database and broker: nothing carried over in memory."""
        self.engine.close()
        return build(self.db, self.clock, self.broker)


def build(
    db: Database, clock: ManualClock, broker: FakeBroker | None = None, *, shared_batch: bool = True
) -> Rig:
    """``shared_batch=False`` wires the store with its own write batch, as app/subsystems/orders.py does."""
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(Event, events.append)
    journal = OrderJournal(db, clock)
    if broker is None:
        broker = FakeBroker(clock, assets=ASSETS)
    broker.sink = bus.publish
    broker.journal_check = journal.has_intent
    prices = FakePrices(clock)
    prices.set("AAPL", "99.9", "100.1")
    prices.set("MSFT", "199.9", "200.1")
    store = OrderStore(bus, db, clock, marks=prices, batch=journal.batch if shared_batch else None)
    trading = TradingStateMachine(bus, clock, journal)
    risk = RiskGate(on_breach=lambda state, why: trading.escalate(state, why, source="risk"))
    engine = ExecutionEngine(
        broker, store, journal, risk, trading, bus, clock, prices=prices, hours=AlwaysOpen()
    )
    return Rig(clock, bus, db, broker, journal, store, trading, engine, prices, events)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    yield database  # type: ignore[misc]
    database.dispose()


@pytest.fixture
def rig(db: Database) -> Rig:
    r = build(db, ManualClock())
    asyncio.run(r.engine.refresh_account())
    r.trading.enable()
    return r


def updates(r: Rig) -> list[TradeUpdateEvent]:
    return [e for e in r.events if isinstance(e, TradeUpdateEvent)]
