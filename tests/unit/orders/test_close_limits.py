"""Close and Flatten under Heron's own order size limits, and a close the gate would refuse.

- A closing order that only reduces the position is exempt from the order size limits
  (``max_order_qty``, ``max_order_notional``: they cap the risk a NEW order opens); a close the
  trader cannot send would leave him unable to get out while the kill switch's flatten (which skips
  the gate) closes the same shares.
- A close whose closing order the gate would refuse for another reason (here the deny list) cancels
  NOTHING: at Alpaca the working exits hold the shares, so a close cancels them first (Alpaca-API
  #119, alpaca-trade-api-python #129, see test_closing.py), and cancelling a bracket's stop for a
  close that is then refused leaves the position unprotected.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.risk.kill_switch import KillSwitch
from tests.unit.orders.conftest import Rig
from tests.unit.orders.test_closing import long_aapl, timeline, working_sell

D = Decimal


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def working_buy(rig: Rig) -> str:
    res = run(rig.engine.submit(
        OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=D(2), limit_price=D(95))
    ))  # fmt: skip
    assert res.accepted, res.message
    return str(rig.broker.by_client[res.client_order_id])


def limit(rig: Rig, **kw: Any) -> None:
    rig.engine.risk.set_limits(replace(rig.engine.risk.limits, **kw))


def test_close_of_a_position_larger_than_max_order_qty_ends_flat(rig: Rig) -> None:
    long_aapl(rig, "10")
    working_buy(rig)
    limit(rig, max_order_qty=D(5), max_order_notional=D(500))  # the position is 10 x 100 = 1,000
    timeline(rig)

    result = run(rig.engine.close_position("AAPL", source="manual"))

    assert result.flat, result.message
    assert rig.broker.position_qty("AAPL") == 0


def test_flatten_of_a_position_larger_than_max_order_qty_ends_flat(rig: Rig) -> None:
    long_aapl(rig, "10")
    working_buy(rig)
    limit(rig, max_order_qty=D(5))
    timeline(rig)

    report = run(rig.engine.flatten_all(source="manual"))

    assert report.all_flat, report.summary()
    assert rig.broker.position_qty("AAPL") == 0


def test_a_trader_sell_above_max_order_qty_is_still_refused(rig: Rig) -> None:
    """Only a close's closing order is exempt: the same sell from the ticket is an order like any."""
    long_aapl(rig, "10")
    limit(rig, max_order_qty=D(5))
    res = run(rig.engine.submit(
        OrderRequest("AAPL", OrderSide.SELL, OrderType.MARKET, TimeInForce.DAY, qty=D(10))
    ))  # fmt: skip
    assert not res.accepted and "max_order_qty" in res.message


@pytest.mark.expected_log(r"AAPL STILL OPEN 10: closing order would be refused")
def test_a_close_the_gate_would_refuse_cancels_nothing(rig: Rig) -> None:
    long_aapl(rig, "10")
    exit_cid = working_sell(rig, "10", "110")
    exit_id = rig.broker.by_client[exit_cid]
    limit(rig, deny_symbols=frozenset({"AAPL"}))
    timeline(rig)

    result = run(rig.engine.close_position("AAPL", source="manual"))

    assert not result.complete
    assert "nothing was canceled" in result.reason and "deny list" in result.reason
    assert result.canceled == 0
    assert rig.broker.orders[exit_id].status is OrderStatus.NEW  # the exit still protects the position
    assert rig.broker.position_qty("AAPL") == 10


@pytest.mark.expected_log(r"AAPL STILL OPEN 10: closing order would be refused")
def test_a_flatten_the_gate_would_refuse_cancels_nothing_of_that_symbol(rig: Rig) -> None:
    long_aapl(rig, "10")
    exit_id = rig.broker.by_client[working_sell(rig, "10", "110")]
    limit(rig, deny_symbols=frozenset({"AAPL"}))
    timeline(rig)

    report = run(rig.engine.flatten_all(source="manual"))

    assert not report.all_flat
    assert "AAPL STILL OPEN 10: closing order would be refused, nothing was canceled" in report.summary()
    assert rig.broker.orders[exit_id].status is OrderStatus.NEW


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_the_kill_switch_says_how_many_orders_its_cancel_requests_covered(rig: Rig) -> None:
    """A bracket's two exit legs go with one cancel of their parent ("If any one of the orders is
    canceled, any remaining open order in the group is canceled", Alpaca docs "Understand Orders",
    Bracket Orders): the summary names the two orders, not only the one request."""
    entry = run(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=D(10), limit_price=D(100),
        order_class=OrderClass.BRACKET, take_profit=OrderLegSpec(limit_price=D(110)),
        stop_loss=OrderLegSpec(stop_price=D(90)),
    )))  # fmt: skip
    rig.broker.fill(rig.broker.by_client[entry.client_order_id], D(10), D(100))
    timeline(rig)

    out = run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=True))

    assert out.summary().startswith(
        "trading HALTED, cancel requested for 2 working order(s) with 1 request(s)"
        " (a bracket's or OCO's legs go with their parent), none still working; flatten: AAPL flat"
    ), out.summary()
