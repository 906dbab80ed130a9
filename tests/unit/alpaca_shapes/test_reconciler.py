"""Alpaca's position, order and FILL-activity bodies against Heron's local fills, in the reconciler.

The broker side is ``AlpacaBroker`` answering from ``tests/fixtures/alpaca/`` (positions from
alpaca-py's tests, the trading spec and Alpaca's crypto-pairs docs; FILL activities from the spec).
The local side is Heron's own books: orders placed through the engine and filled.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import pytest
import requests

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.budget import RequestBudget
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Asset, OrderRequest
from services.reconciliation.reconciler import Reconciler
from services.storage import Database
from tests.support import alpaca_fixtures as fx
from tests.support.clock import FakeClock, ManualClock
from tests.unit.orders.conftest import Rig, build


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def alpaca(positions: list[dict[str, Any]], fills: list[dict[str, Any]] | None = None) -> AlpacaBroker:
    """An AlpacaBroker whose HTTP answers are Alpaca's bodies: positions, no open orders, FILLs."""

    def transport(method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.split("?", 1)[0]
        if method == "GET" and path.endswith("/v2/positions"):
            return fx.http_response(200, positions)
        if method == "GET" and "/v2/positions/" in path:  # Alpaca-API #215: unknown symbol → 404
            tail = path.split("/v2/positions/", 1)[1]
            match = [p for p in positions if p["symbol"] == tail]
            if not match:
                return fx.response("errors", "position_not_found_404")
            return fx.http_response(200, match[0])
        if method == "GET" and path.endswith("/v2/orders"):
            return fx.http_response(200, [])
        if method == "GET" and path.endswith("/v2/account/activities/FILL"):
            return fx.http_response(200, fills or [])
        raise AssertionError(f"the reconciler asked for {method} {url}")

    clock = FakeClock()
    return AlpacaBroker(
        "PKFIXTURE",
        "secret",
        environment="paper",
        transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=1, rng=random.Random(2), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
    )


@pytest.fixture
def rig(db: Database) -> Rig:
    r = build(db, ManualClock())
    r.broker._assets["BTC/USD"] = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True)
    r.prices.set("AAPL", "174.7", "174.8")
    r.prices.set("TSLA", "200.0", "200.2")
    r.prices.set("BTC/USD", "22577", "22578")
    run(r.engine.refresh_account())
    r.trading.enable()
    return r


def fill_locally(rig: Rig, symbol: str, side: OrderSide, qty: str, price: str, tif: TimeInForce) -> None:
    res = run(
        rig.engine.submit(
            OrderRequest(symbol, side, OrderType.LIMIT, tif, qty=Decimal(qty), limit_price=Decimal(price))
        )
    )
    assert res.accepted, res.message
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(qty), Decimal(price))


def reconciler(rig: Rig, broker: AlpacaBroker) -> Reconciler:
    return Reconciler(broker, rig.store, rig.journal, rig.trading, rig.bus, rig.clock, rig.db)


def test_local_fills_equal_alpacas_position_is_clean(rig: Rig) -> None:
    """Spec Position example-2 (AAPL 2 @ 174.78) and TradingActivities example-1 (FILL buy 2 AAPL
    @ 174.78): Heron bought the same 2 @ 174.78; start-up reconciliation is clean and trading on."""
    fill_locally(rig, "AAPL", OrderSide.BUY, "2", "174.78", TimeInForce.DAY)
    rc = reconciler(rig, alpaca(fx.body("positions", "stock_long_spec"), fx.body("activities", "fill_stock")))
    rig.trading.set(TradingState.DISABLED, "start-up", source="test")
    result = run(rc.startup())
    assert result.clean and rc.open_incidents() == []
    assert rig.trading.state is TradingState.ACTIVE
    assert rc.broker_positions == {"AAPL": Decimal(2)}


def test_alpacas_position_differs_from_local_fills(rig: Rig) -> None:
    """alpaca-py test_get_all_positions says AAPL 5; Heron's fills say 2: a quantity incident."""
    fill_locally(rig, "AAPL", OrderSide.BUY, "2", "174.78", TimeInForce.DAY)
    rc = reconciler(rig, alpaca(fx.body("positions", "stock_long")))
    result = run(rc.startup())
    assert not result.clean
    [inc] = rc.open_incidents()
    assert (inc.kind, inc.local_value, inc.broker_value) == ("position_qty", "2", "5")
    assert rig.trading.state is TradingState.DISABLED


def test_short_position_matches_a_local_short_sale(rig: Rig) -> None:
    """Short TSLA -5 at the broker; Heron sold 5 short: clean."""
    fill_locally(rig, "TSLA", OrderSide.SELL, "5", "201.1", TimeInForce.DAY)
    rc = reconciler(rig, alpaca(fx.body("positions", "stock_short")))
    result = run(rc.startup())
    assert result.clean and rc.open_incidents() == []
    assert rc.broker_positions == {"TSLA": Decimal(-5)}


def test_crypto_position_listed_as_btcusd_matches_local_btc_usd_fills(rig: Rig) -> None:
    """Alpaca docs crypto-trading-broker.md: the BTC position is listed as BTCUSD
    (qty 1.0002997 @ 22577.2578201313066474) while orders and fills say BTC/USD."""
    fill_locally(rig, "BTC/USD", OrderSide.BUY, "1.0002997", "22577.2578201313066474", TimeInForce.GTC)
    assert rig.store.position_qty("BTC/USD") == Decimal("1.0002997")
    rc = reconciler(rig, alpaca(fx.body("positions", "crypto_btcusd"), fx.body("activities", "fill_crypto")))
    result = run(rc.startup())
    assert [(i.kind, i.subject) for i in rc.open_incidents()] == []
    assert result.clean and rig.trading.state is TradingState.ACTIVE


def test_adopting_alpacas_crypto_position_books_it_as_btc_usd(rig: Rig) -> None:
    """Bought elsewhere: Alpaca lists BTCUSD 1.0002997 (docs crypto-trading-broker.md). Adopting the
    broker's state gives Heron a BTC/USD position of that size and nothing under BTCUSD."""
    rc = reconciler(rig, alpaca(fx.body("positions", "crypto_btcusd")))
    run(rc.startup())
    [inc] = rc.open_incidents()
    run(rc.adopt_broker_state(inc.id, "alice"))
    assert rig.store.position_qty("BTC/USD") == Decimal("1.0002997")
    assert rig.store.position_qty("BTCUSD") == 0
