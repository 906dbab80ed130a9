"""Alpaca ``trade_updates`` messages driven through the execution engine.

Each message is converted exactly as Heron's trading stream converts it
(:func:`services.broker.trade_stream.trade_update_event`, the ``raw_data`` dict of alpaca-py's
``TradingStream``) and published on the bus. The orders are submitted through the engine to the
FakeBroker, whose own events are switched off: what settles an order here is Alpaca's message shape
only (``tests/fixtures/alpaca/trade_updates.json``: Alpaca's docs example of a fill, and sequences
built on its shape with the fields the trade_updates docs list per event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.broker.trade_stream import trade_update_event
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import FillEvent, NotificationEvent, OrderChangedEvent, TradeUpdateEvent
from services.domain.models import OrderRequest
from services.orders.transitions import OrderState
from services.storage import Database
from tests.support import alpaca_fixtures as fx
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import Rig, build


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def rig(db: Database) -> Rig:
    r = build(db, ManualClock())
    r.broker.faults.drop_all_events = True  # Alpaca's messages below are the only trade updates
    r.prices.set("AAPL", "187.2", "187.3")
    run(r.engine.refresh_account())
    r.trading.enable()
    return r


def events(
    name: str,
    *,
    order_id: str | None = None,
    client_order_id: str | None = None,
    ids: dict[str, str] | None = None,
    rig: Rig,
) -> list[TradeUpdateEvent]:
    """The fixture's messages as Heron's stream converter makes them; broker ids can be rebound to
    the ones the FakeBroker gave the order (a rebinding of identifiers only: every other field is
    Alpaca's)."""
    msgs = fx.body("trade_updates", name)
    out = []
    for m in msgs if isinstance(msgs, list) else [msgs]:
        ev = trade_update_event(m["data"], rig.clock())
        o = ev.order
        mapping = ids or {}
        new_id = mapping.get(o.id, order_id if o.replaces is None else o.id)
        o = replace(
            o,
            id=new_id or o.id,
            client_order_id=client_order_id if o.replaces is None and client_order_id else o.client_order_id,
            replaces=mapping.get(o.replaces, o.replaces) if o.replaces else None,
            replaced_by=mapping.get(o.replaced_by, o.replaced_by) if o.replaced_by else None,
        )
        out.append(replace(ev, order=o))
    return out


def submit(rig: Rig, **kw: Any) -> tuple[str, str]:
    args: dict[str, Any] = {"qty": Decimal(10), "limit_price": Decimal("187.25")}
    args.update(kw)
    otype = OrderType.LIMIT if args.get("limit_price") is not None else OrderType.MARKET
    res = run(rig.engine.submit(OrderRequest("AAPL", OrderSide.BUY, otype, TimeInForce.DAY, **args)))
    assert res.accepted, res.message
    cid = res.client_order_id
    return cid, rig.broker.by_client[cid]


def warnings(rig: Rig) -> list[str]:
    loud = ("warning", "error", "critical")
    return [e.message for e in rig.events if isinstance(e, NotificationEvent) and e.level in loud]


def test_partial_fill_then_fill_books_each_execution(rig: Rig) -> None:
    """partial_fill 4 @ 187.2, fill 6 @ 187.25 (execution_id, price and qty of each execution;
    order filled_avg_price 187.23): two fills booked from the executions, FILLED, position 10."""
    cid, oid = submit(rig)
    for ev in events("lifecycle_new_partial_fill", order_id=oid, client_order_id=cid, rig=rig):
        rig.bus.publish(ev)
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.FILLED and rec.filled_qty == Decimal(10)
    fills = [e.fill for e in rig.events if isinstance(e, FillEvent)]
    assert [(f.execution_id, f.qty, f.price) for f in fills] == [
        ("3a1f0c2e-7b1d-4d5e-9a8f-0c1b2d3e4f51", Decimal(4), Decimal("187.2")),
        ("3a1f0c2e-7b1d-4d5e-9a8f-0c1b2d3e4f52", Decimal(6), Decimal("187.25")),
    ]
    assert rig.store.position_qty("AAPL") == Decimal(10)
    assert rig.store.positions["AAPL"].avg_price == Decimal("187.23")
    assert [r["execution_id"] for r in rig.store.fills_history()] == [f.execution_id for f in fills]
    assert warnings(rig) == []


def test_the_same_execution_twice_is_booked_once(rig: Rig) -> None:
    """A trade update delivered twice (a reconnect replays nothing, but a resync may re-read) books once."""
    cid, oid = submit(rig)
    evs = events("lifecycle_new_partial_fill", order_id=oid, client_order_id=cid, rig=rig)
    for ev in [evs[0], evs[1], evs[1], evs[2]]:
        rig.bus.publish(ev)
    assert rig.store.position_qty("AAPL") == Decimal(10)
    assert len(rig.store.fills_history()) == 2


def test_requested_cancel_ends_the_order_when_canceled_arrives(rig: Rig) -> None:
    """ "canceled: sent when your requested cancelation of an order is processed" (trade_updates docs)."""
    cid, oid = submit(rig)
    new, canceled = events("cancel_after_new", order_id=oid, client_order_id=cid, rig=rig)
    rig.bus.publish(new)
    assert run(rig.engine.cancel(cid))
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.PENDING_CANCEL
    rig.bus.publish(canceled)
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.CANCELED and rec.filled_qty == 0
    assert rig.store.position_qty("AAPL") == 0 and warnings(rig) == []


def test_replaced_then_new_order_follows_the_replacement(rig: Rig) -> None:
    """Replaced from elsewhere (the dashboard): "replaced" for the old id, then "new" for an order
    whose ``replaces`` is the old id (PATCH /v2/orders/{order_id}: the replacement is a new order).
    The logical order follows the new broker id and works the replacement's qty."""
    cid, oid = submit(rig)
    new_id = "0b8e7f36-1f1c-4a4e-9a57-2a3f9d1b7c55"
    fixture_old = "61e69015-8549-4bfd-b9c3-01e75843f47d"
    for ev in events("replace_new_order", client_order_id=cid, ids={fixture_old: oid}, rig=rig):
        rig.bus.publish(ev)
    rec = rig.store.find(broker_order_id=new_id)
    assert rec is not None and rec.client_order_id == cid
    assert rec.state.is_open and rec.broker_order_id == new_id
    assert rec.qty == Decimal(5)
    assert len([r for r in rig.store.orders() if r.state.is_open]) == 1


def test_docs_fill_example_converts_exactly() -> None:
    """Alpaca's trade_updates fill example through Heron's converter: exact decimals, UTC times
    (its created_at is "2022-04-19T13:45:04.981350886-04:00"), the execution's own fields."""
    data = fx.body("trade_updates", "fill_docs_example")["data"]
    ev = trade_update_event(data, datetime(2022, 4, 19, 17, 45, 6, tzinfo=UTC))
    assert (ev.event, ev.execution_id) == ("fill", "2f63ea93-423d-4169-b3f6-3fdafc10c418")
    assert (ev.price, ev.qty, ev.position_qty) == (Decimal("105.8988475"), Decimal("1790.86"), Decimal(0))
    o = ev.order
    assert (o.status, o.side, o.type, o.time_in_force) == (
        OrderStatus.FILLED,
        OrderSide.SELL,
        OrderType.MARKET,
        TimeInForce.GTC,
    )
    assert o.filled_qty == Decimal("1790.86") and o.filled_avg_price == Decimal("105.8988475")
    assert o.created_at == datetime(2022, 4, 19, 17, 45, 4, 981350, tzinfo=UTC)
    assert o.filled_at == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)
    assert o.created_at.utcoffset() == timedelta(0)


def test_notional_order_with_qty_null_reaches_filled(rig: Rig) -> None:
    """Alpaca docs order-v2 entity: notional "500", qty null. The fill message keeps qty null in
    the order and reports the execution's own qty (2.67 @ 187.25)."""
    cid, oid = submit(rig, qty=None, notional=Decimal(500), limit_price=None)
    for ev in events("notional_fill_qty_null", order_id=oid, client_order_id=cid, rig=rig):
        assert ev.order.qty is None
        rig.bus.publish(ev)
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.filled_qty == Decimal("2.67")
    assert rig.store.position_qty("AAPL") == Decimal("2.67")
    assert rec.state is OrderState.FILLED


def test_docs_fill_example_of_an_unknown_order_is_adopted_as_filled(rig: Rig) -> None:
    """Alpaca's trade_updates docs example: a fill of SOLUSD 1790.86 @ 105.8988475 for an order this
    client never saw (placed elsewhere, or before start). It is adopted and FILLED, the execution
    booked with its own price and qty, without an anomaly warning to the trader."""
    [ev] = events("fill_docs_example", rig=rig)
    rig.bus.publish(ev)
    rec = rig.store.find(broker_order_id="a5be8f5e-fdfa-41f5-a644-7a74fe947a8f")
    assert rec is not None
    fills = [e.fill for e in rig.events if isinstance(e, FillEvent)]
    assert [(f.execution_id, f.qty, f.price, f.side) for f in fills] == [
        ("2f63ea93-423d-4169-b3f6-3fdafc10c418", Decimal("1790.86"), Decimal("105.8988475"), OrderSide.SELL),
    ]
    changed = [e.order for e in rig.events if isinstance(e, OrderChangedEvent)]
    assert changed and changed[-1].status is OrderStatus.FILLED
    assert warnings(rig) == []
    assert rec.state is OrderState.FILLED


def test_unknown_order_seen_from_new_is_adopted_and_filled(rig: Rig) -> None:
    """The same lifecycle for an order placed outside Heron, seen from its "new" on: adopted,
    both executions booked, FILLED."""
    for ev in events("lifecycle_new_partial_fill", rig=rig):
        rig.bus.publish(ev)
    rec = rig.store.find(broker_order_id="61e69015-8549-4bfd-b9c3-01e75843f47d")
    assert rec is not None and rec.state is OrderState.FILLED and rec.filled_qty == Decimal(10)
    assert rig.store.position_qty("AAPL") == Decimal(10)
    assert "adopted" in [r["kind"] for r in rig.journal.records()]
