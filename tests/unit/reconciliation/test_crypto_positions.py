"""A crypto position end to end: engine, reconciler and AlpacaBroker over Alpaca's own answers.

Alpaca lists crypto positions as ``BTCUSD`` while orders, fills, assets and data say ``BTC/USD``, and
``GET``/``DELETE /v2/positions/BTC/USD`` answer 404 (alpaca-py #179, #490, #537;
alpaca-trade-api-csharp #713; Alpaca-API #215). Before Heron normalised this at the broker boundary, one
crypto fill opened two false critical incidents (BTC/USD local 0.0283 vs broker 0, BTCUSD local 0 vs
broker 0.0283) and halted trading, "adopt" zeroed the position the account held, and the position
could not be closed. The wire below answers as Alpaca does; the bodies and their sources are in
tests/unit/broker/fakes.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import requests

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.budget import RequestBudget
from services.broker.trade_stream import trade_update_event
from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest
from services.orders.engine import ExecutionEngine
from services.orders.journal import OrderJournal
from services.orders.store import OrderStore
from services.reconciliation.reconciler import Reconciler
from services.risk.gate import RiskGate
from services.risk.trading_state import TradingStateMachine
from services.storage import Database
from tests.support.clock import FakeClock, ManualClock
from tests.support.fakes import AlwaysOpen
from tests.unit.broker.fakes import (
    ACCOUNT_JSON,
    CRYPTO_CLOSE_ORDER_JSON,
    CRYPTO_PAIR_ASSET_ID,
    CRYPTO_POSITION_JSON,
    POSITION_NOT_FOUND,
    response,
)
from tests.unit.orders.conftest import FakePrices

PAPER = "https://paper-api.alpaca.markets/v2"
BTC = "BTC/USD"

#: Alpaca's crypto asset example ("Crypto Trading" docs, alpaca.markets/docs/trading/crypto-trading/).
CRYPTO_ASSET_JSON: dict[str, Any] = {
    "id": CRYPTO_PAIR_ASSET_ID,
    "class": "crypto",
    "exchange": "FTXU",
    "symbol": "BTC/USD",
    "name": "BTC/USD pair",
    "status": "active",
    "tradable": True,
    "marginable": False,
    "shortable": False,
    "easy_to_borrow": False,
    "fractionable": True,
    "min_order_size": "0.0001",
    "min_trade_increment": "0.0001",
    "price_increment": "1",
}


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@dataclass
class AlpacaWire:
    """The trading API as Alpaca answers it, for one account that may hold BTC.

    The position is listed and found only as ``BTCUSD``; any other spelling under
    ``/v2/positions/`` is Alpaca's 404 "position does not exist"."""

    position: dict[str, Any] | None = None
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, method: str, url: str, **kw: Any) -> requests.Response:
        self.calls.append((method, url, kw))
        path = url.removeprefix(PAPER)
        if method == "GET" and path == "/account":
            return response(200, ACCOUNT_JSON)
        if method == "GET" and path.startswith("/assets/"):
            return response(200, CRYPTO_ASSET_JSON)
        if method == "POST" and path == "/orders":
            body = json.loads(kw["data"]) if "data" in kw else kw["json"]
            return response(200, self.accepted(body))
        if method == "GET" and path == "/orders":
            return response(200, [])
        if method == "GET" and path == "/account/activities/FILL":
            return response(200, [])
        if method == "GET" and path == "/positions":
            return response(200, [self.position] if self.position else [])
        if path == "/positions/BTCUSD" and self.position is not None:
            if method == "GET":
                return response(200, self.position)
            if method == "DELETE":
                return response(200, CRYPTO_CLOSE_ORDER_JSON)
        if path.startswith("/positions/"):
            return response(404, POSITION_NOT_FOUND)
        raise AssertionError(f"unexpected request {method} {url}")

    @staticmethod
    def accepted(body: dict[str, Any]) -> dict[str, Any]:
        """The crypto order Alpaca accepts (shape: the order in alpaca-py's close-all body)."""
        return {
            **CRYPTO_CLOSE_ORDER_JSON,
            "id": str(uuid.uuid4()),
            "client_order_id": body["client_order_id"],
            "symbol": body["symbol"],
            "side": body["side"],
            "qty": str(body["qty"]),
            "time_in_force": body["time_in_force"],
            "position_intent": None,
        }

    def posted(self) -> list[dict[str, Any]]:
        return [
            kw.get("json") or json.loads(kw["data"])
            for m, u, kw in self.calls
            if m == "POST" and u == f"{PAPER}/orders"
        ]


@dataclass
class Desk:
    clock: ManualClock
    wire: AlpacaWire
    broker: AlpacaBroker
    bus: EventBus
    store: OrderStore
    trading: TradingStateMachine
    engine: ExecutionEngine
    reconciler: Reconciler


def desk(db: Database, position: dict[str, Any] | None = None) -> Desk:
    clock = ManualClock()
    wire = AlpacaWire(position)
    fake = FakeClock()
    broker = AlpacaBroker(
        "PKTEST",
        "secret",
        environment="paper",
        transport=wire,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=3, rng=random.Random(3), sleep=fake.sleep),
        budget=RequestBudget(200, clock=fake, sleep=fake.sleep),
    )
    bus = EventBus()
    journal = OrderJournal(db, clock)
    prices = FakePrices(clock)
    prices.set(BTC, "24040", "24060")
    store = OrderStore(bus, db, clock, marks=prices, batch=journal.batch)
    trading = TradingStateMachine(bus, clock, journal)
    risk = RiskGate(on_breach=lambda state, why: trading.escalate(state, why, source="risk"))
    engine = ExecutionEngine(
        broker, store, journal, risk, trading, bus, clock, prices=prices, hours=AlwaysOpen()
    )

    async def waits(seconds: float) -> None:  # the closer's waits move the test's clock: no sleeping
        clock.advance(seconds)
        await asyncio.sleep(0)

    engine.closer.sleep = waits
    reconciler = Reconciler(broker, store, journal, trading, bus, clock, db)
    return Desk(clock, wire, broker, bus, store, trading, engine, reconciler)


def holding(qty: str, avg: str) -> dict[str, Any]:
    """Alpaca's crypto position body (fakes.CRYPTO_POSITION_JSON) at another quantity and price."""
    q, a = Decimal(qty), Decimal(avg)
    return {
        **CRYPTO_POSITION_JSON,
        "qty": qty,
        "qty_available": qty,
        "avg_entry_price": avg,
        "cost_basis": str(q * a),
        "market_value": str(q * Decimal(24050)),
    }


def buy_and_fill(d: Desk) -> None:
    """Heron buys 0.0283 BTC/USD; Alpaca fills it and from then on lists the position as BTCUSD."""
    run(d.engine.refresh_account())
    result = run(
        d.engine.submit(
            OrderRequest(BTC, OrderSide.BUY, OrderType.MARKET, TimeInForce.GTC, qty=Decimal("0.0283"))
        )
    )
    assert result.accepted, result.message
    [sent] = d.wire.posted()
    rec = d.store.find(client_order_id=result.client_order_id)
    assert rec is not None and rec.broker_order_id is not None
    filled = {
        **d.wire.accepted(sent),
        "id": rec.broker_order_id,
        "status": "filled",
        "filled_qty": "0.0283",
        "filled_avg_price": "23800",
        "filled_at": "2022-07-27T08:12:34.1Z",
        "updated_at": "2022-07-27T08:12:34.1Z",
    }
    d.bus.publish(
        trade_update_event(
            {
                "event": "fill",
                "execution_id": str(uuid.uuid4()),
                "price": "23800",
                "qty": "0.0283",
                "position_qty": "0.0283",
                "timestamp": "2022-07-27T08:12:34.1Z",
                "order": filled,
            },
            d.clock(),
        )
    )
    d.wire.position = holding("0.0283", "23800")
    d.clock.advance(30)  # past the reconciler's quiet period after a fill


def test_a_crypto_fill_reconciles_clean_and_trading_stays_active(db: Database) -> None:
    d = desk(db)
    assert run(d.reconciler.startup()).clean
    buy_and_fill(d)
    assert d.store.position_qty(BTC) == Decimal("0.0283")
    result = run(d.reconciler.run_cycle())
    assert result.clean and d.reconciler.open_incidents() == []
    assert d.trading.state is TradingState.ACTIVE
    assert d.reconciler.broker_positions == {BTC: Decimal("0.0283")}
    assert ("GET", f"{PAPER}/positions") in [(m, u) for m, u, _ in d.wire.calls]


def test_adopt_keeps_the_quantity_the_account_holds(db: Database) -> None:
    """Another app buys 0.0217 BTC more: one honest incident on BTC/USD, and adopting it books what
    Alpaca holds (``GET /v2/positions/BTCUSD``), not zero from the 404 of ``/positions/BTC/USD``."""
    d = desk(db)
    run(d.reconciler.startup())
    buy_and_fill(d)
    d.wire.position = holding("0.05", "23900")
    result = run(d.reconciler.run_cycle())
    [inc] = result.incidents
    assert (inc.kind, inc.subject, inc.local_value, inc.broker_value) == (
        "position_qty",
        BTC,
        "0.0283",
        "0.05",
    )
    assert d.trading.state is TradingState.HALTED
    run(d.reconciler.adopt_broker_state(inc.id, "alice"))
    assert d.store.position_qty(BTC) == Decimal("0.05")
    assert d.store.positions[BTC].avg_price == Decimal("23900")
    assert d.trading.state is TradingState.ACTIVE
    assert ("GET", f"{PAPER}/positions/BTCUSD") in [(m, u) for m, u, _ in d.wire.calls]
    assert run(d.reconciler.run_cycle()).clean


def test_a_crypto_position_held_at_start_up_is_adopted_under_its_pair(db: Database) -> None:
    """BTC bought while Heron was off: start-up names the incident BTC/USD, and adopting it books the
    position under the symbol Heron's orders and fills use."""
    d = desk(db, holding("0.0283", "23800"))
    result = run(d.reconciler.startup())
    [inc] = result.incidents
    assert (inc.subject, inc.local_value, inc.broker_value) == (BTC, "0", "0.0283")
    run(d.reconciler.adopt_broker_state(inc.id, "alice"))
    assert d.store.position_qty(BTC) == Decimal("0.0283") and "BTCUSD" not in d.store.positions
    assert d.trading.state is TradingState.ACTIVE


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker REST health degraded \-> preservation:",
    r"^services\.orders\.closing: close \S+ \(manual\): \S+ STILL OPEN",
    r"^services\.broker\.health: broker REST health healthy \-> degraded:",
)
def test_close_a_crypto_position(db: Database) -> None:
    """Close position finds the holding (``GET /v2/positions/BTCUSD``) and sells it as BTC/USD;
    the broker's own close goes to ``DELETE /v2/positions/BTCUSD`` (alpaca-py #537)."""
    d = desk(db)
    run(d.reconciler.startup())
    buy_and_fill(d)
    result = run(d.engine.close_position(BTC))
    assert result.symbol == BTC and result.attempts >= 1, result
    sell = d.wire.posted()[-1]
    assert (sell["symbol"], sell["side"], Decimal(str(sell["qty"]))) == (BTC, "sell", Decimal("0.0283"))
    order = run(d.broker.close_position(BTC))
    assert d.wire.calls[-1][:2] == ("DELETE", f"{PAPER}/positions/BTCUSD")
    assert order.symbol == BTC and order.qty == Decimal("0.0283")


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker REST health degraded \-> preservation:",
    r"^services\.orders\.closing: close \S+ \(manual\): \S+ STILL OPEN",
    r"^services\.broker\.health: broker REST health healthy \-> degraded:",
)
def test_flatten_all_sells_the_pair_with_a_crypto_time_in_force(db: Database) -> None:
    """Flatten reads ``GET /v2/positions`` (``BTCUSD``) and sends its closing order for ``BTC/USD``
    with gtc (crypto accepts gtc and ioc: Alpaca's "Crypto Orders" docs)."""
    d = desk(db)
    run(d.reconciler.startup())
    buy_and_fill(d)
    report = run(d.engine.flatten_all())
    assert [r.symbol for r in report.results] == [BTC] and report.results[0].attempts >= 1, report
    sell = d.wire.posted()[-1]
    assert (sell["symbol"], sell["side"], sell["time_in_force"]) == (BTC, "sell", "gtc")
