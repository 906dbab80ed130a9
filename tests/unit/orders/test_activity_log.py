"""Every order event and trading-state change reaches the log (and so the Log panel) at the level a
trader needs: Heron's own orders and fills at INFO; rejections, orders placed or canceled outside
Heron at WARNING; the kill switch at ERROR.

Alpaca: the trade-updates stream reports every order of the account, including those placed from
another app ("Websocket Streaming", trade_updates: new, fill, partial_fill, canceled, ...), and an
order Heron did not send arrives there with a client_order_id Heron never made."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from services.broker.base import BrokerRejected
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.events import TradeUpdateEvent
from services.domain.models import OrderRequest
from services.orders.activity import ActivityLog
from services.risk.kill_switch import KillSwitch
from tests.unit.orders.conftest import Rig


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("heron.")]


def submit(rig: Rig, request: OrderRequest):  # type: ignore[no-untyped-def]
    return asyncio.run(rig.engine.submit(request))


LIMIT = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(10),
                     limit_price=Decimal("100.5"))  # fmt: skip


def test_heron_orders_and_fills_are_info_lines(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ActivityLog(rig.bus)
    res = submit(rig, LIMIT)
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(4), Decimal("100.5"))
    other = submit(rig, OrderRequest("AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC,
                                     qty=Decimal(2), limit_price=Decimal(120)))  # fmt: skip
    asyncio.run(rig.engine.cancel(str(other.client_order_id)))
    info = lines(caplog, logging.INFO)
    assert f"AAPL buy 10 limit 100.5 sent (manual, {res.client_order_id})" in info
    assert f"AAPL buy 10 limit 100.5 accepted (manual, {res.client_order_id})" in info
    assert f"fill: buy 4 AAPL @ 100.5; position 4 ({res.client_order_id})" in info
    assert f"AAPL sell 2 limit 120 canceled (manual, {other.client_order_id})" in info
    assert lines(caplog, logging.WARNING) == []


@pytest.mark.expected_log(r"placed outside Heron|from-another-app canceled")
def test_an_order_placed_and_canceled_outside_heron_is_a_warning(rig: Rig, caplog) -> None:  # type: ignore[no-untyped-def]
    ActivityLog(rig.bus)
    rig.broker.journal_check = None  # another app: no intent in Heron's journal
    order = asyncio.run(rig.broker.submit_order(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.STOP, TimeInForce.GTC, qty=Decimal(3), stop_price=Decimal(95),
        client_order_id="from-another-app",
    )))  # fmt: skip
    asyncio.run(rig.broker.cancel_order(order.id))
    warnings = lines(caplog, logging.WARNING)
    assert warnings[0] == f"order placed outside Heron: AAPL sell 3 stop 95 ({order.id})"
    assert f"order placed outside Heron, canceled: AAPL sell 3 stop 95 ({order.id})" in warnings


@pytest.mark.expected_log(r"^heron\.orders: risk: order refused")
def test_a_risk_rejection_is_a_warning(rig: Rig, caplog) -> None:  # type: ignore[no-untyped-def]
    ActivityLog(rig.bus)
    huge = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(10_000_000),
                        limit_price=Decimal(100))  # fmt: skip
    assert not submit(rig, huge).accepted
    assert any(m.startswith("risk: order refused") for m in lines(caplog, logging.WARNING))


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done|trading HALTED")
def test_the_kill_switch_is_an_error_and_the_halt_a_warning(rig: Rig, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    ActivityLog(rig.bus)
    asyncio.run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=False))
    assert lines(caplog, logging.ERROR) == [
        "KILL SWITCH pulled by alice (kill switch): trading HALTED, every open order canceled"
    ]
    assert "trading HALTED: kill switch (operator alice)" in lines(caplog, logging.WARNING)
    assert any(m.startswith("kill switch done: trading HALTED") for m in lines(caplog, logging.WARNING))
    rig.trading.resume("bob", "checked")
    assert "trading ACTIVE: kill-switch HALT released: checked (operator bob)" in lines(caplog, logging.INFO)
    assert rig.trading.state is TradingState.ACTIVE


@pytest.mark.expected_log(r"order placed outside Heron: ")
def test_an_outside_order_canceled_by_heron_is_info(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A close or the kill switch cancels orders placed in another app too: Heron asked, so no alarm."""
    ActivityLog(rig.bus, rig.store)
    rig.broker.journal_check = None
    order = asyncio.run(rig.broker.submit_order(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(3), limit_price=Decimal(130),
        client_order_id="from-another-app",
    )))  # fmt: skip
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert asyncio.run(rig.engine.cancel("from-another-app", source="kill-switch"))
    assert f"order placed outside Heron, canceled by Heron: AAPL sell 3 limit 130 ({order.id})" in lines(
        caplog, logging.INFO
    )
    assert lines(caplog, logging.WARNING) == []


def test_a_replace_is_said_as_the_same_order_at_its_new_price(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ActivityLog(rig.bus, rig.store)
    res = submit(rig, LIMIT)
    replaced = asyncio.run(rig.engine.replace(str(res.client_order_id), limit_price=Decimal("99.75")))
    assert replaced.accepted, replaced.message
    info = lines(caplog, logging.INFO)
    assert f"AAPL buy 10 limit 99.75 replaced (manual, {res.client_order_id})" in info
    assert not any("99.75 accepted" in m for m in info)


@pytest.mark.expected_log(r"cancel refused by the broker")
def test_a_cancel_the_broker_refused_is_a_warning(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Alpaca's trade_updates stream says ``order_cancel_rejected`` when a requested cancel is refused
    (Alpaca docs, "Websocket Streaming", trade_updates events)."""
    ActivityLog(rig.bus, rig.store)
    res = submit(rig, LIMIT)
    order = rig.broker.orders[rig.broker.by_client[res.client_order_id]]
    rig.bus.publish(TradeUpdateEvent(rig.clock(), "order_cancel_rejected", order))
    assert lines(caplog, logging.WARNING) == [
        "cancel refused by the broker: AAPL buy 10 limit 100.5 keeps working as it was "
        f"({res.client_order_id})"
    ]


@pytest.mark.expected_log(r"rejected: insufficient buying power")
def test_a_broker_rejection_is_one_warning_line_with_its_reason(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Alpaca refuses an order with 403 "insufficient buying power" on the POST (Alpaca docs, "Orders":
    "If the order is rejected ... 403 Forbidden"); the Log panel says it once, with the reason."""
    ActivityLog(rig.bus, rig.store)
    rig.broker.faults.reject_submit.append("insufficient buying power")
    res = submit(rig, LIMIT)
    assert not res.accepted
    assert lines(caplog, logging.WARNING) == [
        f"AAPL buy 10 limit 100.5 rejected: insufficient buying power (manual, {res.client_order_id})"
    ]


@pytest.mark.expected_log(r"cancel refused by the broker: .*order is not cancelable")
def test_a_cancel_refused_on_the_request_is_a_warning_with_the_brokers_reason(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """``DELETE /v2/orders/{id}`` answers 422 when the order is no longer cancelable (Alpaca docs,
    "Orders", cancel an order: "422 The order status is not cancelable"); no trade update follows,
    so the refusal is said here, once, without a traceback."""
    caplog.set_level(logging.INFO)
    ActivityLog(rig.bus, rig.store)
    res = submit(rig, LIMIT)

    async def refuse(order_id: str) -> None:
        raise BrokerRejected("order is not cancelable", status=422)

    rig.broker.cancel_order = refuse  # type: ignore[method-assign]
    caplog.clear()
    assert not asyncio.run(rig.engine.cancel(str(res.client_order_id)))
    assert lines(caplog, logging.WARNING) == [
        "cancel refused by the broker: AAPL buy 10 limit 100.5 keeps working as it was "
        f"({res.client_order_id}): order is not cancelable"
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert lines(caplog, logging.INFO) == []  # no "accepted" as the order goes back to working
