from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.broker.base import BrokerNotFound, BrokerRejected, BrokerUnavailable, OrderQuery, ReplaceRequest
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import TradeUpdateEvent
from services.domain.models import OrderRequest
from tests.support.clock import ManualClock
from tests.support.fake_broker import FakeBroker


def make() -> tuple[FakeBroker, list[TradeUpdateEvent]]:
    seen: list[TradeUpdateEvent] = []
    return FakeBroker(ManualClock(), sink=seen.append), seen


def req(cid: str = "c1", qty: str = "10", side: OrderSide = OrderSide.BUY) -> OrderRequest:
    return OrderRequest(
        "AAPL",
        side,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal(qty),
        limit_price=Decimal(100),
        client_order_id=cid,
    )


def test_submit_emits_new_and_fills_are_partial_then_full_with_positions() -> None:
    b, seen = make()
    o = asyncio.run(b.submit_order(req()))
    b.fill(o.id, Decimal(4), Decimal(100))
    b.fill(o.id, Decimal(6), Decimal(101))
    assert [e.event for e in seen] == ["new", "partial_fill", "fill"]
    assert seen[-1].order.filled_qty == 10 and seen[-1].order.status is OrderStatus.FILLED
    assert seen[-1].order.filled_avg_price == Decimal("100.6") and seen[-1].position_qty == 10
    [p] = asyncio.run(b.get_positions())
    assert p.qty == 10 and p.avg_entry_price == Decimal("100.6")
    assert len(asyncio.run(b.get_fills())) == 2
    with pytest.raises(ValueError):
        b.fill(o.id, Decimal(1), Decimal(100))


def test_duplicate_client_id_rejected_and_lookup_by_client_id() -> None:
    b, _ = make()
    asyncio.run(b.submit_order(req()))
    with pytest.raises(BrokerRejected, match="unique"):
        asyncio.run(b.submit_order(req()))
    assert asyncio.run(b.get_order_by_client_id("c1")) is not None
    assert asyncio.run(b.get_order_by_client_id("nope")) is None


def test_accept_then_timeout_applies_the_order() -> None:
    b, _ = make()
    b.faults.unavailable_after_submit = 1
    with pytest.raises(BrokerUnavailable):
        asyncio.run(b.submit_order(req()))
    assert asyncio.run(b.get_order_by_client_id("c1")) is not None


def test_5xx_before_apply_and_definitive_reject_leave_nothing() -> None:
    b, _ = make()
    b.faults.unavailable_before_submit = 1
    with pytest.raises(BrokerUnavailable):
        asyncio.run(b.submit_order(req()))
    b.faults.reject_submit.append("insufficient buying power")
    with pytest.raises(BrokerRejected):
        asyncio.run(b.submit_order(req("c2")))
    assert b.orders == {}


def test_journal_check_refuses_unjournaled_post() -> None:
    b, _ = make()
    b.journal_check = lambda cid: False
    with pytest.raises(AssertionError, match="before its intent was journaled"):
        asyncio.run(b.submit_order(req()))


def test_cancel_pending_then_confirm_and_not_cancelable() -> None:
    b, seen = make()
    o = asyncio.run(b.submit_order(req()))
    b.faults.pending_cancel = True
    asyncio.run(b.cancel_order(o.id))
    assert b.orders[o.id].status is OrderStatus.PENDING_CANCEL
    b.confirm_cancel(o.id)
    assert [e.event for e in seen][-2:] == ["pending_cancel", "canceled"]
    with pytest.raises(BrokerRejected):
        asyncio.run(b.cancel_order(o.id))
    with pytest.raises(BrokerNotFound):
        asyncio.run(b.cancel_order("nope"))


def test_replace_creates_new_id_and_marks_old_replaced() -> None:
    b, seen = make()
    o = asyncio.run(b.submit_order(req()))
    new = asyncio.run(b.replace_order(o.id, ReplaceRequest(limit_price=Decimal(99), client_order_id="c1-r1")))
    assert new.id != o.id and new.replaces == o.id and new.client_order_id == "c1-r1"
    assert b.orders[o.id].status is OrderStatus.REPLACED and b.orders[o.id].replaced_by == new.id
    assert [e.event for e in seen][-2:] == ["replaced", "new"] and seen[-1].order.id == new.id
    assert [x.id for x in asyncio.run(b.list_orders(OrderQuery(status="open")))] == [new.id]


def test_dropped_events_and_close_position_and_short_flip() -> None:
    b, seen = make()
    b.faults.drop_events = {"partial_fill"}
    o = asyncio.run(b.submit_order(req(qty="5")))
    b.fill(o.id, Decimal(2), Decimal(10))
    assert [e.event for e in seen] == ["new"]
    b.fill(o.id, Decimal(3), Decimal(10))
    close = asyncio.run(b.close_position("AAPL"))
    assert close.side is OrderSide.SELL and close.qty == 5
    b.fill(close.id, Decimal(5), Decimal(11))
    assert asyncio.run(b.get_position("AAPL")) is None
    s = asyncio.run(b.submit_order(req("c3", "4", OrderSide.SELL)))
    b.fill(s.id, Decimal(4), Decimal(12))
    assert b.position_qty("AAPL") == -4


def test_bracket_legs_held_until_parent_fills() -> None:
    from services.domain.enums import OrderClass
    from services.domain.models import OrderLegSpec

    b, _ = make()
    r = OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal(1),
        limit_price=Decimal(100),
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(90)),
        client_order_id="b1",
    )
    o = asyncio.run(b.submit_order(r))
    assert [leg.status for leg in o.legs] == [OrderStatus.HELD, OrderStatus.HELD]
    b.fill(o.id, Decimal(1), Decimal(100))
    assert all(b.orders[leg.id].status is OrderStatus.NEW for leg in o.legs)
