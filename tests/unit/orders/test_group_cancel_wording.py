"""A cancel says whose it was. Alpaca cancels the rest of a bracket or OCO group itself: when one exit
fills the other is canceled ("...and then cancel the remaining order type", Alpaca blog "Bracket
Orders on Alpaca"; docs.alpaca.markets "Orders", Bracket and OCO orders), and canceling one leg
cancels its sibling. So when the kill switch cancels a bracket's take-profit, the stop-loss arrives
``canceled`` with no cancel of its own from Heron: it was canceled with its bracket, by Heron's
doing, and must not be called a cancel outside Heron. An order canceled through the API or the
dashboard, outside Heron, is still said to be so, at WARNING."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal

import pytest

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import Order, OrderLegSpec, OrderRequest
from services.orders.activity import ActivityLog
from services.risk.kill_switch import KillSwitch
from tests.unit.orders.conftest import Rig


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("heron.")]


def alerts(rig: Rig) -> list[str]:
    return [e.message for e in rig.events if isinstance(e, NotificationEvent) and e.level == "warning"]


def filled_bracket(rig: Rig) -> tuple[Order, Order]:
    """A bracket whose entry filled: its take-profit working, its stop-loss held (alpaca-rules.md)."""
    res = asyncio.run(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(5), limit_price=Decimal(100),
        order_class=OrderClass.BRACKET, take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(90)),
    )))  # fmt: skip
    assert res.client_order_id is not None
    parent = rig.broker.orders[rig.broker.by_client[res.client_order_id]]
    rig.broker.fill(parent.id, Decimal(5), Decimal(100))
    tp, sl = (
        next(leg for leg in parent.legs if leg.type is kind) for kind in (OrderType.LIMIT, OrderType.STOP)
    )
    rig.broker.orders[sl.id] = replace(rig.broker.orders[sl.id], status=OrderStatus.HELD)
    return rig.broker.orders[tp.id], rig.broker.orders[sl.id]


@pytest.mark.expected_log(r"^heron\.trading: (KILL SWITCH pulled|trading HALTED|kill switch done)")
def test_the_kill_switch_cancels_a_bracket_and_its_stop_loss_goes_with_it(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    ActivityLog(rig.bus, rig.store)
    tp, sl = filled_bracket(rig)
    caplog.clear()
    caplog.set_level(logging.INFO)
    asyncio.run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=False))
    info = lines(caplog, logging.INFO)
    assert f"AAPL sell 5 limit 110 canceled (manual, {tp.client_order_id})" in info
    assert f"AAPL sell 5 stop 90 canceled with its bracket (manual, {sl.client_order_id})" in info
    assert not [m for m in lines(caplog, logging.WARNING) if "outside Heron" in m or "broker" in m]
    assert not [m for m in alerts(rig) if "canceled" in m]


def test_the_stop_loss_canceled_when_the_take_profit_fills_is_no_cancel_outside_heron(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    ActivityLog(rig.bus, rig.store)
    tp, sl = filled_bracket(rig)
    caplog.clear()
    caplog.set_level(logging.INFO)
    rig.broker.fill(tp.id, Decimal(5), Decimal(110))
    rig.broker._cancel_now(rig.broker.orders[sl.id])  # Alpaca ends the held stop-loss with its bracket
    assert f"AAPL sell 5 stop 90 canceled with its bracket (manual, {sl.client_order_id})" in lines(
        caplog, logging.INFO
    )
    assert lines(caplog, logging.WARNING) == [] and alerts(rig) == []


@pytest.mark.expected_log(r"^heron\.orders: orders: order \S+ canceled outside Heron")
def test_an_order_canceled_through_the_api_outside_heron_is_said_to_be(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    ActivityLog(rig.bus, rig.store)
    tp, sl = filled_bracket(rig)
    caplog.clear()
    caplog.set_level(logging.INFO)
    asyncio.run(rig.broker.cancel_order(tp.id))  # from the dashboard or another app: not by Heron
    info = lines(caplog, logging.INFO)
    assert f"AAPL sell 5 limit 110 canceled outside Heron (manual, {tp.client_order_id})" in info
    # its stop-loss went with it, and that too was no doing of Heron's
    assert f"AAPL sell 5 stop 90 canceled outside Heron (manual, {sl.client_order_id})" in info
    warned = lines(caplog, logging.WARNING)
    assert f"orders: order {tp.client_order_id} canceled outside Heron (Heron did not ask for it)" in warned
    assert not [m for m in warned + info if "not requested" in m or "by the broker" in m]


def test_a_leg_already_canceled_with_its_bracket_when_its_own_cancel_arrives_is_no_anomaly(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The kill switch asks for each leg's cancel in turn; Alpaca may have canceled the stop-loss with
    its take-profit by the time the stop-loss's own DELETE arrives, and refuses it (422, 'order is
    already in "canceled" state') after the stream said ``canceled``. Nothing was refused, so no
    order anomaly and no "cancel refused" is logged."""
    ActivityLog(rig.bus, rig.store)
    tp, sl = filled_bracket(rig)
    real_cancel = rig.broker.cancel_order

    async def group_first(order_id: str) -> None:
        rig.broker._cancel_now(rig.broker.orders[order_id])  # the group ends while the DELETE travels
        await real_cancel(order_id)  # and the DELETE is refused: already canceled

    rig.broker.cancel_order = group_first  # type: ignore[method-assign]
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert not asyncio.run(rig.engine.cancel(str(sl.client_order_id)))
    assert lines(caplog, logging.WARNING) == [] and alerts(rig) == []
    info = lines(caplog, logging.INFO)
    assert f"AAPL sell 5 stop 90 canceled (manual, {sl.client_order_id})" in info
    assert f"AAPL sell 5 limit 110 canceled with its bracket (manual, {tp.client_order_id})" in info
