"""Order types through real alpaca-py: bracket/OCO exit legs, stops elected on prints with Alpaca's
collar, trailing-stop and OPG time in force.

The exchange runs in-process (the real server, routes and venue) with a hand-set market and clock,
so quotes, prints and partial fills happen exactly when the test says; one test runs the exchange
process with its own simulator to show its prints reach the venue.

Sources (docs.alpaca.markets "Orders at Alpaca", abbreviated [ORD]; see also
tests/unit/exchange/test_order_types.py):
- after the entry fills the take-profit is ``new`` and the stop-loss ``held`` (alpaca-trade-api-js
  #87, alpaca-py #198); "If the take-profit order is partially filled, the stop-loss order will be
  adjusted to the remaining quantity"; OCO legs "work exactly the same way" [ORD "Bracket Orders",
  "OCO Orders"].
- a print elects a stop (Alpaca's answer on forum.alpaca.markets t/5940); "Alpaca converts buy stop
  orders into stop limit orders with a limit price that is 4% higher than a stop price < $50 (or
  2.5% higher than a stop price >= $50)" [ORD "Stop Orders"].
- "Valid time-in-force values for trailing stop are day and gtc" [ORD "Trailing Stop Orders"].
- "OPG orders submitted after 9:28am but before 7:00pm ET will be rejected" [ORD "Time in Force"].
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from services.exchange.http.auth import ApiKey
from services.exchange.http.server import ExchangeConfig, build_app
from services.exchange.venue import TradingVenue
from tests.support.clock import ManualClock
from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for
from tests.unit.exchange.test_venue_fakes import FakeMarket

KEY = ApiKey("PKORDERTYPES", "order-types-secret")
T = TypeVar("T")


class InProcessExchange:
    """The real exchange app on a background loop, its venue reading a hand-set market."""

    def __init__(self, data_dir: Path, now: datetime) -> None:
        self.clock = ManualClock(now)
        self.market = FakeMarket(self.clock)
        for sym, bid, ask in (("SPY", "99.99", "100.01"), ("GME", "19.99", "20.01")):
            self.market.set(sym, bid, ask)
        self.venue: TradingVenue | None = None

        def factory(**kw: Any) -> TradingVenue:
            self.venue = TradingVenue(**{**kw, "market": self.market})
            return self.venue

        app = build_app(
            ExchangeConfig(data_dir=data_dir, key=KEY, seed=5, rate_limit=0, rate=0),
            venue_factory=factory,
            clock=self.clock,
        )
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)
        self.client = TradingClient(KEY.key_id, KEY.secret, url_override=f"http://127.0.0.1:{self.port}")
        self.client._retry = 0
        self.on_loop(self._no_random_partials)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def on_loop(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    @property
    def v(self) -> TradingVenue:
        assert self.venue is not None
        return self.venue

    def _no_random_partials(self) -> None:
        self.v.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]

    def partial_next(self, qty: int) -> None:
        def arm() -> None:
            draws = iter([0.05])
            self.v.engine.rng.random = lambda: next(draws, 0.99)  # type: ignore[method-assign]
            self.v.engine.rng.randint = lambda a, b: qty  # type: ignore[method-assign]

        self.on_loop(arm)

    def quote(self, symbol: str, bid: str, ask: str) -> None:
        def go() -> None:
            self.market.set(symbol, bid, ask)
            self.v.on_quote(symbol)

        self.on_loop(go)

    def trade(self, symbol: str, price: str) -> None:
        self.on_loop(lambda: self.v.on_trade(symbol, Decimal(price)))

    def order(self, order_id: Any) -> Any:
        return self.client.get_order_by_id(order_id, GetOrderByIdRequest(nested=True))


def _inproc(tmp_path: Path, now: datetime) -> Iterator[InProcessExchange]:
    ex = InProcessExchange(tmp_path, now)
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def ex(tmp_path: Path) -> Iterator[InProcessExchange]:
    yield from _inproc(tmp_path, datetime(2025, 3, 4, 15, 0, tzinfo=UTC))  # Tuesday 10:00 New York


def _bracket(ex: InProcessExchange) -> tuple[Any, Any, Any]:
    parent: Any = ex.client.submit_order(
        MarketOrderRequest(
            symbol="SPY", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110), stop_loss=StopLossRequest(stop_price=95),
        )
    )  # fmt: skip
    got = ex.order(parent.id)
    tp, sl = sorted(got.legs, key=lambda o: o.order_type != "limit")
    return got, tp, sl


def test_bracket_take_profit_new_stop_loss_held(ex: InProcessExchange) -> None:
    """alpaca-trade-api-js #87, alpaca-py #198: entry filled, take-profit new, stop-loss held."""
    parent, tp, sl = _bracket(ex)
    assert parent.status == OrderStatus.FILLED
    assert (tp.status, sl.status) == (OrderStatus.NEW, OrderStatus.HELD)


def test_partial_take_profit_shrinks_the_stop_loss(ex: InProcessExchange) -> None:
    """[ORD "Bracket Orders"]: the stop-loss is adjusted to the take-profit's remaining quantity,
    and sells exactly that when a print elects it."""
    _, tp, sl = _bracket(ex)
    ex.partial_next(2)
    ex.quote("SPY", "110.00", "110.02")
    assert ex.order(tp.id).status == OrderStatus.PARTIALLY_FILLED
    held = ex.order(sl.id)
    assert held.status == OrderStatus.HELD and held.qty == "3"
    ex.quote("SPY", "94.50", "94.52")
    ex.trade("SPY", "94.90")
    assert ex.order(tp.id).status == OrderStatus.CANCELED
    done = ex.order(sl.id)
    assert done.status == OrderStatus.FILLED and done.filled_qty == "3"
    assert ex.client.get_all_positions() == []


def test_oco_stop_loss_is_held_and_shrinks_too(ex: InProcessExchange) -> None:
    """[ORD "OCO Orders"]: same side, exit only, legs work as a bracket's."""
    ex.client.submit_order(
        MarketOrderRequest(symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    oco: Any = ex.client.submit_order(
        LimitOrderRequest(
            symbol="SPY", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=105,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=105), stop_loss=StopLossRequest(stop_price=95),
        )
    )  # fmt: skip
    (sl,) = ex.order(oco.id).legs
    assert sl.side == OrderSide.SELL and sl.status == OrderStatus.HELD
    ex.partial_next(4)
    ex.quote("SPY", "105.00", "105.02")
    assert ex.order(sl.id).qty == "6" and ex.order(sl.id).status == OrderStatus.HELD


def test_oco_exit_as_the_ticket_sends_it_has_no_top_level_limit(ex: InProcessExchange) -> None:
    """[ORD "OCO Orders"]: the example body has ``type: limit``, ``take_profit.limit_price`` and
    ``stop_loss.stop_price`` and no ``limit_price``; alpaca-py #401 / PR #489 let the SDK send it so.
    Heron's adapter builds the ticket's OCO that way and the order works at the take-profit."""
    from services.broker.alpaca import build_order_request
    from services.domain import enums as d
    from services.domain.models import OrderLegSpec
    from services.domain.models import OrderRequest as HeronRequest

    ex.client.submit_order(
        MarketOrderRequest(symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    request = HeronRequest(
        "SPY", d.OrderSide.SELL, d.OrderType.LIMIT, d.TimeInForce.GTC, qty=Decimal(10),
        order_class=d.OrderClass.OCO, take_profit=OrderLegSpec(limit_price=Decimal("105")),
        stop_loss=OrderLegSpec(stop_price=Decimal("95")), client_order_id="oco-from-the-ticket",
    )  # fmt: skip
    sdk_request = build_order_request(request)
    assert "limit_price" not in sdk_request.to_request_fields()
    oco: Any = ex.client.submit_order(sdk_request)
    assert oco.order_class == OrderClass.OCO and oco.side == OrderSide.SELL
    assert oco.limit_price == "105"  # the take-profit's limit is the order's
    (sl,) = ex.order(oco.id).legs
    assert sl.side == OrderSide.SELL and sl.stop_price == "95" and sl.status == OrderStatus.HELD


def test_stop_elected_by_a_print_with_the_buy_collar(ex: InProcessExchange) -> None:
    """forum t/5940: a print elects the stop; [ORD "Stop Orders"]: an elected buy stop under $50
    works as a limit 4 % above its stop (21.00 -> 21.84)."""
    o: Any = ex.client.submit_order(
        StopOrderRequest(
            symbol="GME", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, stop_price=21
        )
    )
    ex.quote("GME", "21.83", "21.85")
    assert ex.order(o.id).status == OrderStatus.NEW  # the ask is above the stop, but no print yet
    ex.trade("GME", "21.00")
    assert ex.order(o.id).status == OrderStatus.NEW  # elected; the ask is above the collar
    ex.quote("GME", "21.82", "21.84")
    filled = ex.order(o.id)
    assert filled.status == OrderStatus.FILLED and filled.filled_avg_price == "21.84"


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK, TimeInForce.OPG, TimeInForce.CLS])
def test_trailing_stop_takes_day_or_gtc_only(ex: InProcessExchange, tif: TimeInForce) -> None:
    """[ORD "Trailing Stop Orders"]: valid time in force for trailing stops are day and gtc."""
    with pytest.raises(APIError) as err:
        ex.client.submit_order(
            TrailingStopOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=tif, trail_price=1
            )
        )
    assert err.value.status_code == 422 and err.value.code == 42210000


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        (datetime(2025, 3, 4, 14, 27, tzinfo=UTC), True),  # 09:27 New York
        (datetime(2025, 3, 4, 14, 29, tzinfo=UTC), False),  # 09:29
        (datetime(2025, 3, 5, 0, 1, tzinfo=UTC), True),  # 19:01: for tomorrow's auction
    ],
)
def test_opg_window(tmp_path: Path, now: datetime, accepted: bool) -> None:
    """[ORD "Time in Force"]: OPG orders submitted after 9:28am but before 7:00pm ET are rejected."""
    for ex in _inproc(tmp_path, now):
        req = MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.OPG)
        if accepted:
            assert ex.client.submit_order(req).status == OrderStatus.NEW  # type: ignore[union-attr]
        else:
            with pytest.raises(APIError) as err:
                ex.client.submit_order(req)
            assert err.value.status_code == 422 and "opg" in str(err.value).lower()


def test_the_simulators_prints_elect_stops(exchange: ExchangeProcess) -> None:
    """The exchange process: the simulator's prints reach the venue; a one-cent trailing stop on a
    busy symbol is elected by them and its hwm is reported [ORD "Trailing Stop Orders"]."""
    c = TradingClient(exchange.key_id, exchange.secret, url_override=exchange.url)
    c._retry = 0
    c.submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    trail: Any = c.submit_order(
        TrailingStopOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, trail_price=0.01
        )
    )

    def filled() -> Any:
        got = c.get_order_by_id(trail.id)
        return got if got.status == OrderStatus.FILLED else None  # type: ignore[union-attr]

    got: Any = wait_for("the trailing stop filled", filled, 20, every=0.1)
    assert got.hwm is not None
    assert Decimal(got.stop_price) == Decimal(got.hwm) - Decimal("0.01")
