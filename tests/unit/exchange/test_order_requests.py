"""The HTTP layer's order parsing (http/order_requests.py) and the engine's pre-trade checks
(order_checks.py): JSON bodies become typed requests, refused for the same first fault as before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.exchange.errors import ApiError
from services.exchange.http.order_requests import parse_order, parse_replace
from services.exchange.market.universe import build_universe
from services.exchange.order_checks import check_increment, check_quantity, order_class_limit
from services.exchange.orders import VenueOrder
from services.exchange.requests import OrderRequest, StopLoss, TakeProfit

UNIVERSE = build_universe()


def _refusal(body: Any, taken: set[str] | None = None) -> str:
    with pytest.raises(ApiError) as ei:
        parse_order(body, UNIVERSE, taken or set())
    assert ei.value.status == 422
    return ei.value.message


def test_a_body_becomes_a_typed_request() -> None:
    req = parse_order(
        {"symbol": "aapl", "side": "buy", "type": "limit", "time_in_force": "gtc", "qty": 3,
         "limit_price": "101.5", "order_class": "bracket", "take_profit": {"limit_price": "110"},
         "stop_loss": {"stop_price": "95", "limit_price": "94.5"}, "client_order_id": "c-1",
         "extended_hours": "false"},
        UNIVERSE, set(),
    )  # fmt: skip
    assert req.instrument.symbol == "AAPL" and req.client_order_id == "c-1"
    assert (req.side, req.type, req.time_in_force, req.order_class) == (
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
        OrderClass.BRACKET,
    )
    assert req.qty == 3 and req.limit_price == Decimal("101.5") and req.extended_hours is False
    assert req.take_profit == TakeProfit(Decimal("110"))
    assert req.stop_loss == StopLoss(Decimal("95"), Decimal("94.5"))


def test_the_first_fault_in_field_order_is_the_one_reported() -> None:
    assert _refusal([]) == "request body must be a JSON object"
    assert _refusal({"symbol": "NOPE", "side": "up", "qty": "x"}) == 'asset "NOPE" not found'
    assert _refusal({"symbol": "AAPL", "side": ["buy"], "qty": "x"}) == "invalid side: \"['buy']\""
    body = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "x"}
    assert _refusal(body).startswith("invalid qty:")
    dup = {**body, "qty": 1, "client_order_id": "used", "take_profit": 5}
    assert _refusal(dup, {"used"}) == "client_order_id must be unique"
    fresh = {**dup, "client_order_id": "new"}
    assert _refusal(fresh, {"used"}) == "take_profit and stop_loss must be objects"


def test_an_empty_take_profit_object_is_present_without_a_price() -> None:
    body = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": 1,
            "take_profit": {}}  # fmt: skip
    req = parse_order(body, UNIVERSE, set())
    assert req.take_profit == TakeProfit(None) and req.stop_loss is None
    with pytest.raises(ApiError, match="only for bracket, oco and oto orders"):
        order_class_limit(req)


def test_an_oco_works_at_its_take_profit_price() -> None:
    req = OrderRequest(
        instrument=UNIVERSE["AAPL"],
        side=OrderSide.SELL,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        order_class=OrderClass.OCO,
        client_order_id="x",
        qty=Decimal(1),
        take_profit=TakeProfit(Decimal("120")),
        stop_loss=StopLoss(Decimal("90")),
    )
    assert order_class_limit(req) == Decimal("120")


def test_replace_bodies_are_checked_against_the_replaced_order() -> None:
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "day", "qty": "1.5",
            "limit_price": "100"}  # fmt: skip
    old = VenueOrder.from_record({
        "id": "o1", "client_order_id": "c1", "symbol": "AAPL", "asset_id": "a", "asset_class": "us_equity",
        "side": "buy", "type": "market", "time_in_force": "day", "order_class": "simple", "status": "new",
        "created_at": "2024-01-02T15:00:00+00:00", "updated_at": "2024-01-02T15:00:00+00:00",
        "submitted_at": "2024-01-02T15:00:00+00:00", "qty": "2",
    })  # fmt: skip
    assert old.type is OrderType.MARKET and old.status == "new"
    with pytest.raises(ApiError, match="qty must be a whole number"):
        parse_replace({"qty": body["qty"], "time_in_force": "bad"}, old, set())
    with pytest.raises(ApiError, match="limit_price is not allowed for market orders"):
        parse_replace({"limit_price": "99"}, old, set())
    req = parse_replace({"qty": 3}, old, set())
    assert req.qty == 3 and req.time_in_force is TimeInForce.DAY and req.client_order_id


def test_computed_quantities_pass_the_request_checks() -> None:
    check_quantity(Decimal("12.5"))
    with pytest.raises(ApiError, match="at most 9 decimal places"):
        check_quantity(Decimal("0.0000000001"))
    with pytest.raises(ApiError, match="sub-penny"):
        check_increment(UNIVERSE["AAPL"], "limit_price", Decimal("10.001"))
    check_increment(UNIVERSE["BTC/USD"], "limit_price", Decimal("10.00001"))
