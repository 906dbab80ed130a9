"""Close and Flatten name the working orders they cancel first, and say each failure loudly.

Alpaca behaviour encoded here, with its sources:
- Closing cancels the symbol's working orders first: they hold the shares a closing order needs
  (alpaca-trade-api-python #129, "insufficient qty available for order"; see test_closing.py).
- A cancel can be refused: ``DELETE /v2/orders/{order_id}`` answers 422 "Order is no longer
  cancelable" (Alpaca API reference, "Cancel an Open Order": 204 / 404 / 422).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.broker.base import BrokerError, BrokerRejected, OrderQuery
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import Order, OrderRequest
from services.orders.working import working_orders
from tests.unit.orders.conftest import Rig
from tests.unit.orders.test_closing import long_aapl, run, timeline, working_sell

NOT_CANCELABLE = "order is no longer cancelable"


def refuse_cancels(rig: Rig) -> None:
    async def refused(order_id: str) -> None:
        rig.broker.calls.append("cancel_order")
        raise BrokerRejected(NOT_CANCELABLE, status=422)

    rig.broker.cancel_order = refused  # type: ignore[method-assign]


@pytest.mark.expected_log(r"cancel of working order .* was refused|STILL OPEN")
def test_a_refused_cancel_is_reported_in_the_close_result_and_at_error(rig: Rig, caplog) -> None:  # type: ignore[no-untyped-def]
    long_aapl(rig)
    cid = working_sell(rig)
    refuse_cancels(rig)
    timeline(rig, deadline_s=5)

    result = run(rig.engine.close_position("AAPL", source="manual"))

    assert not result.complete
    assert result.cancel_refused == (f"{cid}: the broker refused it",)
    assert "cancel REFUSED" in result.message and "STILL OPEN" in result.message
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f"the cancel of working order {cid} was refused" in m for m in errors)


@pytest.mark.expected_log(r"cancel of working order .* was refused|STILL OPEN|flatten")
def test_flatten_reports_a_refused_cancel_per_symbol(rig: Rig) -> None:
    long_aapl(rig)
    working_sell(rig)
    refuse_cancels(rig)
    timeline(rig, deadline_s=5)

    report = run(rig.engine.flatten_all(source="manual"))

    assert [r.symbol for r in report.failures] == ["AAPL"]
    assert report.failures[0].cancel_refused


def test_working_orders_names_heron_orders_and_orders_placed_elsewhere(rig: Rig) -> None:
    long_aapl(rig)
    working_sell(rig, qty="4", price="110.50")
    rig.broker.journal_check = None  # an order placed in another app: Heron journaled nothing
    outside = run(rig.broker.submit_order(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.STOP, TimeInForce.GTC, qty=Decimal(3), stop_price=Decimal(95),
        client_order_id="placed-in-another-app",
    )))  # fmt: skip
    assert isinstance(outside, Order)

    listed = run(working_orders(rig.store, rig.broker, "AAPL"))

    assert listed.lines() == [
        "AAPL sell 4 limit 110.5",
        "AAPL sell 3 stop 95 (placed outside Heron)",
    ]
    assert run(working_orders(rig.store, rig.broker, "MSFT")).orders == ()


def test_working_orders_says_when_the_broker_list_is_unreadable(rig: Rig) -> None:
    working_sell(rig, qty="2")

    async def down(query: OrderQuery) -> list[Order]:
        raise BrokerError("connection refused")

    rig.broker.list_orders = down  # type: ignore[method-assign]
    listed = asyncio.run(working_orders(rig.store, rig.broker))
    assert listed.lines()[0] == "AAPL sell 2 limit 110"
    assert "could not be read: connection refused" in listed.lines()[1]
