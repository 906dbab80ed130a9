"""A real service stack for the trading-panel tests: ExecutionEngine, OrderStore, RiskGate,
TradingStateMachine and KillSwitch over the fake broker, a SQLite journal in a temp folder and a
real QuoteBook fed by hand. Plus ``qloop``: a qasync loop for running the engine's coroutines."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import qasync

from services.domain.bus import EventBus
from services.domain.enums import OrderType
from services.domain.models import Asset, Quote, Trade
from services.marketdata.book import QuoteBook
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.orders.tables import ORDERS_SCHEMA
from services.risk.gate import RiskGate
from services.risk.kill_switch import KillSwitch
from services.risk.limits import RiskLimits
from services.risk.trading_state import TradingStateMachine
from services.storage import Database
from tests.support.clock import ManualClock
from tests.support.fake_broker import FakeBroker
from tests.support.fakes import AlwaysOpen
from tests.support.polling import loop_pump, wait_for

ASSETS = [Asset(s, "us_equity", "NASDAQ", True, True, True) for s in ("AAPL", "MSFT", "TSLA")]


@dataclass
class Rig:
    clock: ManualClock
    bus: EventBus
    db: Database
    broker: FakeBroker
    book: QuoteBook
    journal: OrderJournal
    store: OrderStore
    trading: TradingStateMachine
    risk: RiskGate
    engine: ExecutionEngine
    kill_switch: KillSwitch

    def quote(self, symbol: str, bid: str, ask: str) -> None:
        self.book.on_quote(
            Quote(symbol, Decimal(bid), Decimal(ask), Decimal(100), Decimal(100), self.clock()),
            received=self.clock(),
        )

    def trade(self, symbol: str, price: str, size: str = "10") -> None:
        self.book.on_trade(Trade(symbol, Decimal(price), Decimal(size), self.clock()), received=self.clock())


def build_rig(tmp_path: Path, limits: RiskLimits | None = None) -> Rig:
    clock = ManualClock()
    bus = EventBus()
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    journal = OrderJournal(db, clock)
    broker = FakeBroker(clock, assets=ASSETS)
    broker.sink = bus.publish
    broker.journal_check = journal.has_intent
    book = QuoteBook(now=clock)
    store = OrderStore(bus, db, clock, marks=book)
    trading = TradingStateMachine(bus, clock, journal)
    risk = RiskGate(limits, on_breach=lambda state, why: trading.escalate(state, why, source="risk"))
    engine = ExecutionEngine(
        broker, store, journal, risk, trading, bus, clock, prices=book, hours=AlwaysOpen()
    )
    kill = KillSwitch(trading, engine, journal)

    async def market_sleep(seconds: float) -> None:
        # while a close / flatten waits, time passes on the manual clock and the market fills
        # the working market orders (the closing orders) at 100
        clock.advance(seconds)
        for o in list(broker.orders.values()):
            if o.type is OrderType.MARKET and not o.status.is_terminal and o.qty is not None:
                broker.fill(o.id, o.qty - o.filled_qty, Decimal(100))

    engine.closer.sleep = market_sleep
    rig = Rig(clock, bus, db, broker, book, journal, store, trading, risk, engine, kill)
    rig.quote("AAPL", "99.90", "100.10")
    rig.quote("MSFT", "199.90", "200.10")
    return rig


@pytest.fixture
def qloop(qapp: object) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    # as asyncio.run does: what is still pending (a panel timer's last refresh) is cancelled and
    # run to its end, so no coroutine is left un-awaited for the next test's garbage collection
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    asyncio.set_event_loop(None)
    del loop
    # the loop's Qt objects (its notifiers, timers and executor threads) are collected now, while
    # nothing else runs, not by a later test's collection while its own worker thread runs
    gc.collect()


@pytest.fixture
def rig(tmp_path: Path, qloop: qasync.QEventLoop) -> Iterator[Rig]:
    r = build_rig(tmp_path)
    qloop.run_until_complete(r.engine.refresh_account())
    r.trading.enable()
    yield r
    r.engine.close()
    r.db.dispose()


def settle_until(
    loop: qasync.QEventLoop, what: str, check: Callable[[], object], timeout: float = 10.0
) -> None:
    """Run the qasync loop (scheduled submits, cancels, …) until ``check()`` holds."""
    wait_for(what, check, timeout, pump=loop_pump(loop))


def run_until_idle(loop: qasync.QEventLoop, timeout: float = 10.0) -> None:
    """Run the qasync loop until no task is left on it: for asserting that nothing was sent."""
    wait_for("the loop's tasks to finish", lambda: not asyncio.all_tasks(loop), timeout, pump=loop_pump(loop))
