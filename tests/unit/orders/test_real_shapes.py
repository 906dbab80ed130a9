"""Order states driven by Alpaca's own message shapes (issue "Right on real Alpaca").

Every fixture names where its body comes from. Bodies are used as Alpaca published them; where a
test needs a later state of the same order (the fill of an accepted order), only the fields Alpaca
documents as changing (status, filled_qty, filled_avg_price, filled_at, updated_at) are changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.models import Order as AlpacaOrder

from services.broker import convert
from services.broker.trade_stream import trade_update_event
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import NotificationEvent, TradeUpdateEvent
from services.domain.models import Order, OrderRequest
from services.domain.money import InvalidNumberError
from services.orders.records import OrderRecord
from services.orders.state_machine import OrderStateMachine
from services.orders.transitions import OrderState
from tests.support.fake_broker import FakeBroker
from tests.unit.orders.conftest import ASSETS, Rig, build
from tests.unit.orders.helpers import T0, order


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# Alpaca docs, "Websocket Streaming" (docs.alpaca.markets/docs/websocket-streaming), section
# "Example": the one trade_updates message Alpaca shows is a `fill` of an order whose client id is a
# UUID, i.e. an order the listening client did not place. Body as published.
DOCS_FILL_EXAMPLE: dict[str, Any] = {
    "event": "fill",
    "execution_id": "2f63ea93-423d-4169-b3f6-3fdafc10c418",
    "order": {
        "asset_class": "crypto",
        "asset_id": "1cf35270-99ee-44e2-a77f-6fab902c7f80",
        "cancel_requested_at": None,
        "canceled_at": None,
        "client_order_id": "4642fd68-d59a-47d7-a9ac-e22f536828d1",
        "created_at": "2022-04-19T13:45:04.981350886-04:00",
        "expired_at": None,
        "extended_hours": False,
        "failed_at": None,
        "filled_at": "2022-04-19T17:45:05.024916716Z",
        "filled_avg_price": "105.8988475",
        "filled_qty": "1790.86",
        "hwm": None,
        "id": "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f",
        "legs": None,
        "limit_price": None,
        "notional": None,
        "order_class": "",
        "order_type": "market",
        "qty": "1790.86",
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "side": "sell",
        "status": "filled",
        "stop_price": None,
        "submitted_at": "2022-04-19T13:45:04.980944666-04:00",
        "symbol": "SOLUSD",
        "time_in_force": "gtc",
        "trail_percent": None,
        "trail_price": None,
        "type": "market",
        "updated_at": "2022-04-19T13:45:05.027690731-04:00",
    },
    "position_qty": "0",
    "price": "105.8988475",
    "qty": "1790.86",
    "timestamp": "2022-04-19T17:45:05.024916716Z",
}

# alpaca-py tests/trading/trading_client/test_position_routes.py (test_close_position_with_id): a
# notional order as the REST API returns it: "notional": "500", "qty": null. The Order entity docs
# say "If entered, qty will be null" (Alpaca-API #191 quotes them: entering either parameter
# nullifies the other).
NOTIONAL_ACCEPTED: dict[str, Any] = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4",
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
    "notional": "500",
    "qty": None,
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
}


def notional_filled(qty: str | None) -> dict[str, Any]:
    """The same notional order after its one execution ($500 of AAPL at 121.95 = 4.100041 shares)."""
    return {
        **NOTIONAL_ACCEPTED,
        "status": "filled",
        "qty": qty,
        "filled_qty": "4.100041",
        "filled_avg_price": "121.95",
        "filled_at": "2021-03-16T18:38:02.5Z",
        "updated_at": "2021-03-16T18:38:02.5Z",
    }


def domain(body: dict[str, Any]) -> Order:
    return convert.order(AlpacaOrder(**body))


def notional_record() -> OrderRecord:
    return OrderRecord(NOTIONAL_ACCEPTED["client_order_id"], "AAPL", OrderSide.BUY, None)


# --- a notional order (qty null) reaches FILLED --------------------------------------------------


def test_notional_order_with_qty_null_after_the_fill_reaches_filled_on_the_fill_event() -> None:
    """Order entity docs / Alpaca-API #191: a notional order has qty null; whether qty is filled in
    after the fill is not documented (docs/alpaca-rules.md "Order lifecycle"): here it stays null."""
    sm, rec = OrderStateMachine(), notional_record()
    sm.apply_snapshot(rec, domain(NOTIONAL_ACCEPTED), T0)
    assert rec.state is OrderState.ACCEPTED
    result = sm.apply_update(
        rec,
        "fill",
        domain(notional_filled(None)),
        T0,
        execution_id="7c4a1a2e-7c5e-4b0f-9d1e-0a9a4f3b2c11",
        price=Decimal("121.95"),
        qty=Decimal("4.100041"),
    )
    assert rec.state is OrderState.FILLED
    assert rec.filled_qty == Decimal("4.100041") and [f.qty for f in result.fills] == [Decimal("4.100041")]
    assert not [a for a in result.anomalies if a.kind != "inferred_fill"]


def test_notional_order_with_qty_filled_in_after_the_fill_reaches_filled() -> None:
    """Same order, the other documented-as-possible shape: qty set to the shares bought."""
    sm, rec = OrderStateMachine(), notional_record()
    sm.apply_snapshot(rec, domain(NOTIONAL_ACCEPTED), T0)
    sm.apply_update(
        rec,
        "fill",
        domain(notional_filled("4.100041")),
        T0,
        execution_id="7c4a1a2e-7c5e-4b0f-9d1e-0a9a4f3b2c11",
        price=Decimal("121.95"),
        qty=Decimal("4.100041"),
    )
    assert rec.state is OrderState.FILLED


def test_notional_order_seen_filled_by_a_rest_snapshot_reaches_filled() -> None:
    """A poll (GET /v2/orders/{id}) after the stream missed the fill: status filled, qty null."""
    sm, rec = OrderStateMachine(), notional_record()
    sm.apply_snapshot(rec, domain(NOTIONAL_ACCEPTED), T0)
    sm.apply_snapshot(rec, domain(notional_filled(None)), T0)
    assert rec.state is OrderState.FILLED and rec.filled_qty == Decimal("4.100041")


def test_notional_partial_fill_of_a_live_order_is_not_filled() -> None:
    """A partial_fill (status partially_filled) of a notional order leaves it working."""
    sm, rec = OrderStateMachine(), notional_record()
    sm.apply_snapshot(rec, domain(NOTIONAL_ACCEPTED), T0)
    partial = {**notional_filled(None), "status": "partially_filled", "filled_qty": "2"}
    sm.apply_update(
        rec,
        "partial_fill",
        domain(partial),
        T0,
        execution_id="e-1",
        price=Decimal("121.95"),
        qty=Decimal("2"),
    )
    assert rec.state is OrderState.PARTIALLY_FILLED


def test_order_with_a_quantity_reported_filled_short_of_it_stays_an_anomaly() -> None:
    """Guard for the notional rule: the broker's `filled` settles only a leg without a quantity."""
    sm = OrderStateMachine()
    rec = OrderRecord("hr-m-1", "AAPL", OrderSide.BUY, Decimal(10))
    sm.apply_snapshot(rec, order(status=OrderStatus.NEW), T0)
    result = sm.apply_snapshot(rec, order(filled="6", avg="100", status=OrderStatus.FILLED, t=1), T0)
    assert rec.state is OrderState.PARTIALLY_FILLED
    assert "filled_short" in [a.kind for a in result.anomalies]


# --- an order never seen before whose first update is a fill ------------------------------------


def test_unknown_order_first_seen_as_a_fill_is_adopted_and_filled_without_anomaly(rig: Rig) -> None:
    """Alpaca docs "Websocket Streaming" example: the `fill` of an order the client never saw."""
    event = trade_update_event(DOCS_FILL_EXAMPLE, rig.clock())
    rig.bus.publish(event)
    rec = rig.store.find(client_order_id="4642fd68-d59a-47d7-a9ac-e22f536828d1")
    assert rec is not None and rec.state is OrderState.FILLED
    assert rec.filled_qty == Decimal("1790.86") and rec.avg_fill_price == Decimal("105.8988475")
    assert rig.store.position_qty("SOLUSD") == Decimal("-1790.86")
    assert rig.store.anomalies == []
    assert not [e for e in rig.events if isinstance(e, NotificationEvent) and e.level != "info"]
    assert rig.journal.in_flight() == []


def test_unknown_order_first_seen_as_a_filled_rest_snapshot_is_filled_without_anomaly() -> None:
    """The same Alpaca docs order read by REST (adopt on recovery / bracket child): status filled."""
    sm = OrderStateMachine()
    o = domain(DOCS_FILL_EXAMPLE["order"])
    rec = OrderRecord(o.client_order_id, o.symbol, o.side, o.qty)
    result = sm.apply_snapshot(rec, o, T0)
    assert rec.state is OrderState.FILLED
    assert [a.kind for a in result.anomalies] == ["inferred_fill"]  # routine: booked from the snapshot


# --- fills come from execution reports; an inferred fill is matched, never counted twice ---------


def test_inferred_fill_is_replaced_by_its_real_execution_and_survives_a_restart(rig: Rig) -> None:
    """trade_updates `partial_fill`/`fill` carry execution_id, price and qty of one execution (Alpaca
    docs "Websocket Streaming"). A poll that saw filled_qty grow first books an inferred fill; the
    real execution report then takes its place: same quantity, the real id and price, and a later
    copy of that execution (after a restart, or read back from FILL activities) is a duplicate."""
    res = run(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(10),
                limit_price=Decimal(100),
            )
        )
    )
    cid = res.client_order_id
    oid = rig.broker.by_client[cid]
    rig.broker.faults.drop_all_events = True
    real = rig.broker.fill(oid, Decimal(4), Decimal("99.5"), execution_id="0b7c8b0a-real-exec-1")
    rig.clock.advance(60)
    run(rig.engine.poll_once())  # the snapshot shows filled_qty 4: an inferred fill
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.filled_qty == 4 and rig.store.position_qty("AAPL") == 4
    # the real execution report arrives late
    update = TradeUpdateEvent(
        rig.clock(),
        "partial_fill",
        rig.broker.orders[oid],
        real.execution_id,
        real.price,
        real.qty,
        real.position_qty,
    )
    rig.bus.publish(update)
    rig.engine.flush()
    assert rig.store.position_qty("AAPL") == 4 and rec.filled_qty == 4
    rows = rig.store.fills_history()
    assert [(r["execution_id"], Decimal(r["qty"]), Decimal(r["price"])) for r in rows] == [
        ("0b7c8b0a-real-exec-1", Decimal(4), Decimal("99.5"))
    ]
    # a new process on the same database: the execution is known, a copy of it changes nothing
    again = rig.restart()
    run(again.engine.recover())
    again.bus.publish(update)
    again.engine.flush()
    assert again.store.position_qty("AAPL") == 4
    rec2 = again.store.find(client_order_id=cid)
    assert rec2 is not None and rec2.filled_qty == 4
    assert len(again.store.fills_history()) == 1


def test_real_execution_with_a_different_price_corrects_the_inferred_price() -> None:
    """Two executions (4 @ 99 and 6 @ 101) seen first as one jump to filled_qty 10 at the average
    100.2; when their reports arrive, the booked fills become the real ones (Alpaca docs: `price` of
    a fill event is that execution's price, filled_avg_price the order's average)."""
    sm = OrderStateMachine()
    rec = OrderRecord("hr-m-1", "AAPL", OrderSide.BUY, Decimal(10))
    sm.apply_snapshot(rec, order(status=OrderStatus.NEW), T0)
    snap = order(filled="10", avg="100.2", status=OrderStatus.FILLED, t=5)
    first = sm.apply_snapshot(rec, snap, T0 + timedelta(seconds=5))
    assert [f.qty for f in first.fills] == [Decimal(10)] and rec.state is OrderState.FILLED
    inferred_id = first.fills[0].execution_id
    part = order(filled="4", avg="99", status=OrderStatus.PARTIALLY_FILLED, t=1)
    r1 = sm.apply_update(rec, "partial_fill", part, T0, execution_id="x-1", price=Decimal(99), qty=Decimal(4))
    r2 = sm.apply_update(rec, "fill", snap, T0, execution_id="x-2", price=Decimal(101), qty=Decimal(6))
    assert r1.fills == [] and r2.fills == []  # nothing new for positions: the quantity is counted
    matched = [(m.inferred, m.fill.execution_id, m.fill.qty, m.fill.price) for m in r1.matches + r2.matches]
    assert matched == [
        (((inferred_id, Decimal(4)),), "x-1", Decimal(4), Decimal(99)),
        (((inferred_id, Decimal(6)),), "x-2", Decimal(6), Decimal(101)),
    ]
    assert rec.filled_qty == 10 and rec.avg_fill_price == Decimal("100.2")
    assert not [a for a in r1.anomalies + r2.anomalies if a.kind != "inferred_fill"]


# --- recovery books FILL activities as executions ------------------------------------------------
# GET /v2/account/activities/FILL (OpenAPI spec in docs.alpaca.markets/reference,
# schema TradingActivities: id "<time>::<uuid>", order_id, qty, price, cum_qty, order_status). The
# fake broker's get_fills returns them as AlpacaBroker._fill_from_activity does: the activity id is
# the execution id.


def _limit_buy_10(rig: Rig) -> tuple[str, str]:
    res = run(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(10),
                limit_price=Decimal(101),
            )
        )
    )
    assert res.client_order_id is not None
    return res.client_order_id, rig.broker.by_client[res.client_order_id]


def test_recovery_books_executions_from_fill_activities_with_their_own_ids_and_prices(rig: Rig) -> None:
    cid, oid = _limit_buy_10(rig)
    rig.broker.faults.drop_all_events = True  # Heron is down: it hears nothing
    rig.broker.fill(oid, Decimal(4), Decimal("99.5"), execution_id="20220202135509981::2d7be4ff-0001")
    rig.broker.fill(oid, Decimal(6), Decimal("100.5"), execution_id="20220202135510000::2d7be4ff-0002")
    new = rig.restart()
    run(new.engine.recover())
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.FILLED and rec.filled_qty == 10
    assert new.store.position_qty("AAPL") == 10 and new.store.positions["AAPL"].avg_price == Decimal("100.1")
    rows = new.store.fills_history()
    assert [(r["execution_id"], Decimal(r["qty"]), Decimal(r["price"]), r["inferred"]) for r in rows] == [
        ("20220202135509981::2d7be4ff-0001", Decimal(4), Decimal("99.5"), False),
        ("20220202135510000::2d7be4ff-0002", Decimal(6), Decimal("100.5"), False),
    ]
    assert new.store.anomalies == []


def test_recovery_activity_of_an_execution_booked_from_the_stream_is_not_booked_again(rig: Rig) -> None:
    """Alpaca does not document that a FILL activity's id equals the stream's execution_id: the
    activity of an execution already booked from trade_updates is recognised by its place in the
    order's cumulative quantity, and changes nothing."""
    cid, oid = _limit_buy_10(rig)
    streamed = rig.broker.fill(oid, Decimal(4), Decimal("99.5"), execution_id="stream-exec-uuid-1")
    rig.engine.flush()
    rig.broker.fills[rig.broker.fills.index(streamed)] = replace(
        streamed, execution_id="20220202135509981::2d7be4ff-0001"
    )
    new = rig.restart()
    run(new.engine.recover())
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.filled_qty == 4 and new.store.position_qty("AAPL") == 4
    assert len(new.store.fills_history()) == 1 and new.store.anomalies == []


# --- an unreadable broker answer after a submit is "outcome unknown", never "refused" ------------


class UnreadableAnswerBroker(FakeBroker):
    """Applies the submit, then fails to read its answer the way convert.order does on a body with
    "filled_qty": "NaN" (to_decimal refuses NaN) — the order is live at the broker."""

    unreadable = 0

    async def submit_order(self, request: OrderRequest) -> Order:
        placed = await super().submit_order(request)
        if self.unreadable > 0:
            self.unreadable -= 1
            raise InvalidNumberError("filled_qty must be finite, got 'NaN'")
        return placed


@pytest.mark.expected_log(r"^services\.orders\.engine: \S+ the broker's answer to the POST")
def test_unreadable_answer_after_submit_is_outcome_unknown_resolved_by_client_id(rig: Rig) -> None:
    """docs/alpaca-rules.md "Order lifecycle": POST /v2/orders answers with the order as accepted; a body
    Heron cannot read does not mean the POST was refused. Five such answers on a one-share strategy
    must leave five live orders known as live, not five "refused" (and a re-sent sixth)."""
    broker = UnreadableAnswerBroker(rig.clock, assets=ASSETS)
    r = build(rig.db, rig.clock, broker)
    run(r.engine.refresh_account())
    r.trading.enable()
    broker.unreadable = 5
    broker.faults.drop_all_events = True
    results = [
        run(
            r.engine.submit(
                OrderRequest(
                    "AAPL",
                    OrderSide.SELL,
                    OrderType.LIMIT,
                    TimeInForce.DAY,
                    qty=Decimal(1),
                    limit_price=Decimal(100 + i),
                )
            )
        )
        for i in range(5)
    ]
    assert all(res.accepted for res in results), [r.message for r in results]
    assert all(res.state is OrderState.SUBMITTED and "unknown" in res.message for res in results)
    assert len(broker.orders) == 5 and len(r.journal.in_flight()) == 5
    r.clock.advance(6)
    run(r.engine.poll_once())
    for res in results:
        rec = r.store.find(client_order_id=res.client_order_id)
        assert rec is not None and rec.state is OrderState.ACCEPTED
    assert r.journal.in_flight() == []
    assert len(broker.orders) == 5  # never re-sent


def test_a_fill_learned_late_from_a_snapshot_is_replayed_at_its_broker_time(rig: Rig) -> None:
    """The average entry price depends on the order of the fills (Alpaca docs, "Position Average
    Entry Price Calculation"). A chaos run dropped a ``fill`` event (buy 1 @ 161.72); Heron learned it
    from a later order snapshot and booked it after a sell and a buy that came after it at Alpaca,
    and after a restart its average was 161.72 against Alpaca's 161.67: a price incident kept trading
    DISABLED. The inferred fill carries the order's own time (``filled_at``), so a restart replays the
    fills in Alpaca's order."""

    def market(side: OrderSide) -> str:
        res = run(rig.engine.submit(OrderRequest("AAPL", side, OrderType.MARKET, TimeInForce.DAY,
                                                 qty=Decimal(1))))  # fmt: skip
        assert res.client_order_id is not None
        return rig.broker.by_client[res.client_order_id]

    rig.broker.faults.drop_events = {"fill"}
    first = market(OrderSide.BUY)
    rig.broker.fill(first, Decimal(1), Decimal("161.72"))  # its fill event is lost
    rig.broker.faults.drop_events = set()
    rig.clock.advance(1)
    rig.broker.fill(market(OrderSide.SELL), Decimal(1), Decimal("161.70"))
    rig.clock.advance(5)
    rig.broker.fill(market(OrderSide.BUY), Decimal(1), Decimal("161.67"))
    rig.clock.advance(31)  # past the engine's silent-order threshold: the first order is probed
    run(rig.engine.poll_once())  # the snapshot of the first order: its fill is inferred now
    rig.engine.flush()
    later = rig.restart()
    later.store.load()
    pos = later.store.positions["AAPL"]
    assert pos.qty == 1 and pos.avg_price == Decimal("161.67"), (pos.qty, pos.avg_price)
