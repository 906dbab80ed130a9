"""A broker answer Heron cannot read is "outcome unknown", never "refused" (issue "Right on real Alpaca").

POST /v2/orders answers with the order as accepted (docs/alpaca-rules.md "Order lifecycle"): once the POST
went out, a body that cannot be read (a number that is NaN or infinite, a field of the wrong type)
says nothing about whether the order exists. The adapter resolves it by client_order_id, and when
that cannot be read either it raises BrokerUnavailable ("outcome unknown") — never BrokerRejected,
never a bare ValueError that a caller would take for a refusal.

The order body is alpaca-py's tests/trading/trading_client/test_order_routes.py (test_market_order),
with Heron's client id and AAPL spelled without the stray backtick of that test.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.base import BrokerRejected, BrokerUnavailable, OrderQuery
from services.broker.budget import RequestBudget
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderRequest
from tests.support.clock import FakeClock
from tests.unit.broker.fakes import ScriptedTransport, response

T = TypeVar("T")

ALPACA_PY_MARKET_ORDER: dict[str, Any] = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "hr-s-1",
    "created_at": "2021-03-16T18:38:01.942282Z",
    "updated_at": "2021-03-16T18:38:01.942282Z",
    "submitted_at": "2021-03-16T18:38:01.937734Z",
    "filled_at": None,
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "904837e3-3b76-47ec-b432-046db621571b",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": 1,
    "filled_qty": "0",
    "filled_avg_price": None,
    "order_class": "simple",
    "order_type": "market",
    "type": "market",
    "side": "buy",
    "time_in_force": "day",
    "limit_price": None,
    "stop_price": None,
    "status": "accepted",
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
    "position_intent": "buy_to_open",
    "commission": 1.25,
}


def body(**over: Any) -> dict[str, Any]:
    return {**ALPACA_PY_MARKET_ORDER, **over}


def raw(**over: str) -> str:
    """The body as JSON text with some values replaced by raw JSON (NaN, 1e999 are not json.dumps-able
    from Decimal fields, and a real server could send them)."""
    text = json.dumps(body(**{k: f"@@{k}@@" for k in over}))
    for key, value in over.items():
        text = text.replace(f'"@@{key}@@"', value)
    return text


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make(answers: list[Any]) -> tuple[AlpacaBroker, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport(answers)
    broker = AlpacaBroker(
        "PKTEST",
        "secret",
        environment="local",
        base_url="http://127.0.0.1:1",
        transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=3, rng=random.Random(3), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
    )
    return broker, transport


def market_buy() -> OrderRequest:
    return OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, qty=Decimal(1), client_order_id="hr-s-1"
    )


@pytest.mark.parametrize(
    "unreadable",
    [
        raw(filled_qty='"NaN"'),  # a string that is not a finite number
        raw(filled_avg_price="NaN"),  # the JSON literal NaN
        raw(qty="1e999"),  # overflows to infinity
    ],
    ids=["string-NaN", "literal-NaN", "infinite"],
)
def test_unreadable_post_answer_is_resolved_by_client_id(unreadable: str) -> None:
    broker, transport = make([response(200, text=unreadable), response(200, body())])
    order = run(broker.submit_order(market_buy()))
    assert order.id == ALPACA_PY_MARKET_ORDER["id"] and order.status is OrderStatus.ACCEPTED
    assert [c[0] for c in transport.calls] == ["POST", "GET"]  # never re-posted
    assert "by_client_order_id" in transport.calls[1][1]


def test_unreadable_post_answer_and_unreadable_lookup_is_outcome_unknown_not_refused() -> None:
    broker, transport = make(
        [
            response(200, body(qty={"shares": 1})),  # a field of the wrong type
            response(200, text=raw(filled_qty='"NaN"')),
        ]
    )
    with pytest.raises(BrokerUnavailable, match="outcome unknown") as caught:
        run(broker.submit_order(market_buy()))
    assert not isinstance(caught.value, BrokerRejected)
    assert sum(1 for c in transport.calls if c[0] == "POST") == 1


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> degraded:")
def test_unreadable_order_reads_are_broker_unavailable() -> None:
    """The lookups the engine settles in-flight orders with say "unavailable", so a poll cycle
    carries on and retries instead of dying on a ValueError."""
    nan = raw(filled_qty='"NaN"')
    broker, _ = make([response(200, text=nan), response(200, text=nan), response(200, text=f"[{nan}]")])
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        run(broker.get_order_by_client_id("hr-s-1"))
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        run(broker.get_order(ALPACA_PY_MARKET_ORDER["id"]))
    with pytest.raises(BrokerUnavailable, match="unreadable"):
        run(broker.list_orders(OrderQuery(status="open")))
