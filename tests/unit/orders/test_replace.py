"""Replace (PATCH) as Alpaca does it, and crash safety of the replace and cancel paths.

Alpaca sources:
- [REPLACE] PATCH /v2/orders/{order_id} in docs.alpaca.markets/reference
  (operationId patchOrderByOrderId): "Each parameter overrides the corresponding attribute of the
  existing order. The other attributes remain the same as the existing order."; the 200 body is
  "The new Order object with the new order ID" (its own ``filled_qty``, ``replaces``); and "If the
  existing open order is filled before the replacing (new) order reaches the execution venue, the
  replacing (new) order is rejected, and these events are sent in the trade_updates stream".
  PatchOrderRequest.qty: "number of shares to trade".
- Alpaca-API #165 (open, labelled bug): a price-only PATCH of a partially filled order gives the
  replacement the ORIGINAL qty, not the unfilled remainder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from services.broker.base import BrokerRejected, ReplaceRequest
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Order, OrderRequest
from services.orders.tables import fills_table, orders_table
from services.orders.transitions import OrderState
from tests.support.fake_broker import FakeBroker
from tests.unit.orders.conftest import Rig


class Killed(BaseException):
    """SIGKILL stand-in: nothing in the engine catches it, and queued writes are dropped."""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def limit_buy(qty: str = "10", price: str = "100") -> OrderRequest:
    return OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty), limit_price=Decimal(price)
    )


def partially_filled(rig: Rig, qty: str = "10", filled: str = "6") -> tuple[str, str]:
    res = run(rig.engine.submit(limit_buy(qty)))
    cid = res.client_order_id
    assert cid is not None
    oid = rig.broker.by_client[cid]
    rig.broker.fill(oid, Decimal(filled), Decimal("99.9"))
    rig.engine.flush()
    return cid, oid


def record_replaces(broker: FakeBroker) -> list[ReplaceRequest]:
    sent: list[ReplaceRequest] = []
    inner = broker.replace_order

    async def spy(order_id: str, request: ReplaceRequest) -> Order:
        sent.append(request)
        return await inner(order_id, request)

    broker.replace_order = spy  # type: ignore[method-assign]
    return sent


# --- what a replace sends, works and risk-checks ------------------------------------------------
def test_price_only_replace_after_partial_fill_sends_the_remainder_explicitly(rig: Rig) -> None:
    """[REPLACE] omitted attributes stay those of the existing order, and Alpaca-API #165 reports
    the original qty being reused: Heron sends ``qty`` = what is left, so Alpaca works 4, not 10."""
    cid, _ = partially_filled(rig, "10", "6")
    sent = record_replaces(rig.broker)
    out = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert out.message == "replaced", out.message
    assert [r.qty for r in sent] == [Decimal(4)]
    new = rig.broker.orders[rig.broker.by_client[cid + "-r1"]]
    assert new.qty == 4 and new.filled_qty == 0
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None
    assert rec.qty == 10 and rec.filled_qty == 6 and rec.leaves_qty == 4


def test_price_only_replace_after_partial_fill_is_risk_checked_for_the_original_qty(rig: Rig) -> None:
    """Alpaca-API #165: a price-only replace may work the original qty (10), not the remainder (4);
    the risk gate checks that worst case and nothing is sent when it fails."""
    cid, _ = partially_filled(rig, "10", "6")
    rig.engine.risk.set_limits(replace(rig.engine.risk.limits, max_order_qty=Decimal(8)))
    out = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert out.report is not None and not out.report.passed
    assert "max_order_qty" in out.message
    assert "replace_order" not in rig.broker.calls


def test_replacement_qty_is_what_it_works_and_the_order_total_is_filled_plus_it(rig: Rig) -> None:
    """[REPLACE] the replacement is a new order with its own filled_qty (0); PatchOrderRequest.qty
    is the number of shares it trades. 60 filled + a replacement of 50 = 110 in total."""
    res = run(rig.engine.submit(limit_buy("100")))
    cid = res.client_order_id
    assert cid is not None
    rig.broker.fill(rig.broker.by_client[cid], Decimal(60), Decimal("99.9"))
    out = run(rig.engine.replace(cid, qty=Decimal(50)))
    assert out.message == "replaced", out.message
    new = rig.broker.orders[rig.broker.by_client[cid + "-r1"]]
    assert new.qty == 50 and new.filled_qty == 0
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.qty == 110 and rec.filled_qty == 60 and rec.leaves_qty == 50


@pytest.mark.expected_log(r"^services\.orders\.replacing: \S+ the replacement works \S+ not the")
def test_replace_the_broker_works_differently_is_followed_and_reported(rig: Rig) -> None:
    """Alpaca-API #165: when the replacement Alpaca returns works another qty than was sent, Heron
    follows the broker's order (its qty) and says so."""
    cid, _ = partially_filled(rig, "10", "6")
    inner = rig.broker.replace_order

    async def like_165(order_id: str, request: ReplaceRequest) -> Order:
        return await inner(order_id, replace(request, qty=None))  # the original qty is reused

    rig.broker.replace_order = like_165  # type: ignore[method-assign]
    run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.qty == 16 and rec.leaves_qty == 10
    assert any(
        getattr(e, "level", "") == "warning" and "works 10" in getattr(e, "message", "") for e in rig.events
    )


# --- the documented race -----------------------------------------------------------------------
class RacingBroker(FakeBroker):
    """PATCH answers 200 with the new order, but the old order fills before the new one reaches the
    venue: the new order is rejected ([REPLACE] race), both events arrive on the stream."""

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        self.calls.append("replace_order")
        old = self.orders[order_id]
        now = self.clock()
        new = Order(
            id=self._next_id(), client_order_id=request.client_order_id or "", symbol=old.symbol,
            side=old.side, type=old.type, time_in_force=old.time_in_force, status=OrderStatus.PENDING_NEW,
            qty=request.qty if request.qty is not None else old.qty, filled_qty=Decimal(0),
            created_at=now, updated_at=now, submitted_at=now, replaces=old.id,
            limit_price=request.limit_price or old.limit_price,
        )  # fmt: skip
        self._store(new)
        return new

    def race(self, old_id: str, new_id: str, price: Decimal) -> None:
        old = self.orders[old_id]
        self.fill(old_id, (old.qty or Decimal(0)) - old.filled_qty, price)
        new = self._store(replace(self.orders[new_id], status=OrderStatus.REJECTED, updated_at=self.clock()))
        self._emit("rejected", new)


def racing_rig(rig: Rig) -> Rig:
    racing = RacingBroker(rig.clock, assets=list(rig.broker._assets.values()))
    new = rig.restart()
    new.engine.close()
    from tests.unit.orders.conftest import build

    r = build(rig.db, rig.clock, racing)
    run(r.engine.refresh_account())
    r.trading.enable()
    return r


def _race(rig: Rig, *, reject_first: bool) -> tuple[Rig, str]:
    r = racing_rig(rig)
    cid, old_id = partially_filled(r, "10", "6")
    out = run(r.engine.replace(cid, limit_price=Decimal("100.05")))
    assert out.message == "replaced", out.message
    new_id = r.broker.by_client[cid + "-r1"]
    # the replacement is live before the old order's "replaced" arrived: the order is still
    # partially filled (6 of 10), not a fresh ACCEPTED one
    rec = r.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.PARTIALLY_FILLED and rec.broker_order_id == new_id
    if reject_first:
        new = r.broker._store(replace(r.broker.orders[new_id], status=OrderStatus.REJECTED))
        r.broker._emit("rejected", new)
        r.broker.fill(old_id, Decimal(4), Decimal("99.9"))
    else:
        r.broker.race(old_id, new_id, Decimal("99.9"))
    return r, cid


def test_old_order_fills_before_the_replacement_reaches_the_venue_settles_filled(rig: Rig) -> None:
    """[REPLACE] race: the old order fills, the replacement is rejected. The logical order is
    FILLED 10/10, no longer open (no open-order slot, no deferred position checks)."""
    r, cid = _race(rig, reject_first=False)
    rec = r.store.find(client_order_id=cid)
    assert rec is not None
    assert rec.state is OrderState.FILLED and rec.filled_qty == 10 and rec.qty == 10
    assert r.store.open_orders() == []
    assert r.store.position_qty("AAPL") == 10
    assert r.store.view(rec).status is OrderStatus.FILLED


def test_replacement_rejected_before_the_old_order_fills_settles_filled(rig: Rig) -> None:
    """[REPLACE] race, events in the other order: the reject first, then the old order's fill."""
    r, cid = _race(rig, reject_first=True)
    rec = r.store.find(client_order_id=cid)
    assert rec is not None
    assert rec.state is OrderState.FILLED and rec.filled_qty == 10 and rec.qty == 10
    assert r.store.open_orders() == []


# --- crash safety -------------------------------------------------------------------------------
def _fills_rows(rig: Rig) -> list[tuple[str, str, Decimal]]:
    with rig.db.connect() as conn:
        rows = conn.execute(
            select(fills_table.c.order_id, fills_table.c.execution_id, fills_table.c.qty)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_crash_after_journaling_a_replace_neither_overwrites_the_order_nor_doubles_fills(rig: Rig) -> None:
    """[REPLACE] the replacement is a new broker order; a crash after its intent was journaled but
    before the order row was written must leave one logical order with its fills counted once."""
    cid, _ = partially_filled(rig, "10", "4")
    inner = rig.broker.replace_order

    async def then_die(order_id: str, request: ReplaceRequest) -> Order:
        await inner(order_id, request)  # the broker did it...
        rig.journal.batch._pending.clear()  # ...and the process dies before any queued write
        raise Killed

    rig.broker.replace_order = then_die  # type: ignore[method-assign]
    with contextlib.suppress(Killed):
        run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    rig.broker.replace_order = inner  # type: ignore[method-assign]
    new = rig.restart()
    assert run(new.engine.recover()) == []
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.client_order_id == cid
    assert rec.broker_order_id == rig.broker.by_client[cid + "-r1"]
    assert rec.filled_qty == 4 and rec.qty == 10 and rec.state is OrderState.PARTIALLY_FILLED
    assert new.store.position_qty("AAPL") == 4
    assert [q for _, _, q in _fills_rows(new)] == [Decimal(4)]
    # the replacement fills the rest: the order completes at 10, the position is 10
    rig.broker.fill(rec.broker_order_id, Decimal(6), Decimal(100))
    assert rec.state is OrderState.FILLED and rec.filled_qty == 10
    again = new.restart()
    run(again.engine.recover())
    assert again.store.position_qty("AAPL") == 10
    assert sum(q for _, _, q in _fills_rows(again)) == 10


def test_crash_after_a_cancel_request_settles_canceled_as_requested(rig: Rig) -> None:
    """DELETE /v2/orders/{order_id} (spec deleteOrderByOrderID) is accepted with 204 and the order
    settles later; a crash after the request must still know Heron asked for the cancel."""
    cid, _ = partially_filled(rig, "10", "4")
    inner = rig.broker.cancel_order

    async def then_die(order_id: str) -> None:
        await inner(order_id)
        rig.journal.batch._pending.clear()
        raise Killed

    rig.broker.cancel_order = then_die  # type: ignore[method-assign]
    with contextlib.suppress(Killed):
        run(rig.engine.cancel(cid))
    rig.broker.cancel_order = inner  # type: ignore[method-assign]
    new = rig.restart()
    run(new.engine.recover())
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.CANCELED and rec.filled_qty == 4
    assert rec.cancel_requested
    assert new.store.position_qty("AAPL") == 4
    assert not [e for e in new.events if "canceled outside Heron" in getattr(e, "message", "")]


def test_late_duplicate_fill_of_an_order_trimmed_from_memory_is_not_booked_again(rig: Rig) -> None:
    """trade_updates may deliver an execution again (Alpaca streams at least once); the execution
    id identifies it. Dedup holds for orders no longer in memory."""
    res = run(rig.engine.submit(limit_buy("10")))
    cid = res.client_order_id
    assert cid is not None
    rig.broker.fill(rig.broker.by_client[cid], Decimal(10), Decimal(100))
    fill_event = rig.broker.emitted[-1]
    rig.engine.flush()
    new = rig.restart()
    new.store._keep_closed = 0
    run(new.engine.recover())
    new.store.forget(cid)
    assert new.store.find(client_order_id=cid) is None
    new.bus.publish(fill_event)
    new.engine.flush()
    assert new.store.position_qty("AAPL") == 10
    assert sum(q for _, _, q in _fills_rows(new)) == 10
    with new.db.connect() as conn:
        row = conn.execute(select(orders_table).where(orders_table.c.client_order_id == cid)).one()
    assert row._mapping["filled_qty"] == 10


def test_crash_after_the_order_row_but_before_the_replace_intent_leaves_the_order_as_it_was(
    rig: Rig,
) -> None:
    """A replace that never reached its intent was never sent (journal before wire): after a
    restart the order is what it was, not stuck pending_replace or shown as a fresh ACCEPTED order
    ([REPLACE]: only the broker's new order makes a replace real)."""
    cid, _ = partially_filled(rig, "10", "4")
    inner = rig.journal.record_intent

    def die(*args: Any, **kwargs: Any) -> None:
        rig.engine.flush()  # the order row (PENDING_UPDATE, pending id) is on disk...
        raise Killed  # ...the intent is not

    rig.journal.record_intent = die  # type: ignore[method-assign]
    with contextlib.suppress(Killed):
        run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    rig.journal.record_intent = inner  # type: ignore[method-assign]
    new = rig.restart()
    assert run(new.engine.recover()) == []
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.PARTIALLY_FILLED
    assert rec.pending_replace_client_id is None and rec.filled_qty == 4
    assert "replace_order" not in rig.broker.calls


def test_a_replace_after_a_refused_one_gets_a_fresh_client_order_id(rig: Rig) -> None:
    """Every replacement is a new order with its own client_order_id ([REPLACE]; Alpaca refuses a
    client_order_id it has seen). The journal keeps the refused attempt's intent, so the next replace
    of the same order takes the next suffix instead of colliding with it (a chaos run found the
    collision: "UNIQUE constraint failed: order_intents.client_order_id" killed the caller)."""
    res = run(rig.engine.submit(limit_buy("10")))
    cid = res.client_order_id
    assert cid is not None
    inner = rig.broker.replace_order
    calls: list[str | None] = []

    async def refuse_once(order_id: str, request: ReplaceRequest) -> Order:
        calls.append(request.client_order_id)
        if len(calls) == 1:
            raise BrokerRejected("unable to replace order in current state", status=422)
        return await inner(order_id, request)

    rig.broker.replace_order = refuse_once  # type: ignore[method-assign]
    first = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert first.message == "unable to replace order in current state"
    second = run(rig.engine.replace(cid, limit_price=Decimal("100.10")))
    assert second.message == "replaced", second.message
    assert calls == [cid + "-r1", cid + "-r2"]
