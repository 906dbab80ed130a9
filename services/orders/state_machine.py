"""The order state machine: an explicit transition table over Alpaca's statuses and trade updates.

The model is NautilusTrader's order state table (nautilus_trader/model/orders, public source) with
Alpaca's exact status kept as ``broker_status``. What it guarantees, whatever order events arrive in:

- duplicate events are no-ops; fills are deduplicated by (broker order id, execution id);
- a fill is never lost: a fill the table refuses is still recorded (and counted for positions) and
  raises an anomaly; a late fill after a cancel is simply accepted;
- fills are booked from execution reports: a ``fill`` / ``partial_fill`` trade update carries the
  execution's own id, price and qty (Alpaca docs, "Websocket Streaming"), and recovery reads the
  same executions from ``GET /v2/account/activities/FILL``;
- an inferred fill is the exception: when a snapshot's cumulative ``filled_qty`` is ahead of the
  executions seen (a dropped stream message, a poll that came first), the gap is booked at once
  under a deterministic id (:func:`inferred_execution_id`, so a restart re-infers the same one) so
  positions are never behind the broker. When the real execution report for that quantity arrives
  it is *matched*, never added: the result carries a :class:`FillMatch` (the real execution and
  the inferred fills it confirms) and no new fill for that quantity, so the position's quantity and
  the order's filled quantity stay as they are, while the store replaces the inferred rows with the
  real execution (its id and price; the position is replayed if the price differs). The match is
  by cumulative range: an inferred fill covers ``(cum_before, cum_after]`` of its broker order, a
  real execution ``(filled_qty - qty, filled_qty]``; the overlap is what the execution confirms;
- an order is FILLED when its quantity is filled or, for a notional order whose ``qty`` may stay
  null (Order entity docs; Alpaca-API #191), when the broker reports it ``filled`` and every share
  it reports filled has been booked;
- a broker view of an order Heron never submitted (an adopted order: placed from another app or
  before Heron started) proves the broker holds it: its first fill accepts it first, so it reaches
  FILLED with no anomaly;
- state never moves backwards (status rank, ``filled_qty``, ``updated_at``);
- an invalid transition never raises: it becomes an :class:`Anomaly` and the result asks the
  caller for a REST refresh of that order; unknown event strings do the same;
- PENDING_CANCEL / PENDING_UPDATE have no timeout edge: only the broker settles them.

Everything here is synchronous, pure Python and runs on the event-loop thread of its owner.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.domain.enums import OrderStatus, TradeUpdateKind
from services.domain.models import Fill, Order
from services.orders.fill_booking import FillBooking
from services.orders.records import Anomaly, ApplyResult, BrokerLeg, OrderRecord
from services.orders.transitions import (
    ALERT_EVENTS,
    EVENT_TRIGGER,
    FILL_EVENTS,
    PREVIOUS,
    RANK,
    REFRESH_EVENTS,
    STATUS_TRIGGER,
    TRANSITIONS,
    OrderState,
    Trigger,
)

ZERO = Decimal(0)
S = OrderState
T = Trigger


class OrderStateMachine(FillBooking):
    """Applies triggers, trade updates and REST snapshots to :class:`OrderRecord` objects."""

    # --- local commands -------------------------------------------------------------------
    def trigger(self, rec: OrderRecord, trig: Trigger, ts: datetime, *, detail: str = "") -> ApplyResult:
        """Apply one internal trigger. Invalid → anomaly + refresh, state unchanged."""
        result = ApplyResult()
        current = rec.state
        target = TRANSITIONS[current].get(trig)
        if target is None:
            result.anomalies.append(
                Anomaly(
                    "invalid_transition",
                    rec.client_order_id,
                    f"{current.value} -> {trig.value} {detail}".strip(),
                    ts,
                )
            )
            result.refresh = True
            return result
        if target == PREVIOUS:
            new_state = rec.previous_state
        else:
            assert isinstance(target, OrderState)
            new_state = target
        if new_state in (S.PENDING_CANCEL, S.PENDING_UPDATE) and current not in (
            S.PENDING_CANCEL,
            S.PENDING_UPDATE,
        ):
            # remember where to go back to; several pending requests keep the first saved state
            rec.previous_state = current
        if trig is T.CANCEL_REJECTED:
            rec.cancel_requested = False
        if trig is T.MODIFY_REJECTED:
            rec.pending_replace_client_id = None
        if new_state is S.ACCEPTED and rec.filled_qty > 0:
            new_state = S.PARTIALLY_FILLED  # never lose the partially-filled fact (Nautilus v2 quirk)
        if new_state != current:
            rec.state = new_state
            result.changed = True
            result.transition = (current, new_state)
        if trig in (T.ACCEPT, T.REJECT, T.LOSE):
            rec.ambiguous = False
        return result

    # --- trade updates ----------------------------------------------------------------------
    def apply_update(
        self,
        rec: OrderRecord,
        event: TradeUpdateKind | str,
        order: Order,
        ts: datetime,
        *,
        execution_id: str | None = None,
        price: Decimal | None = None,
        qty: Decimal | None = None,
        position_qty: Decimal | None = None,
        counted_is_booked: bool = False,
    ) -> ApplyResult:
        """Apply one ``trade_updates`` message about ``order`` (a broker order of ``rec``).

        ``event``: a :class:`TradeUpdateKind`, or the raw text of a kind Heron does not know (an
        anomaly and a refresh).

        ``counted_is_booked``: the execution comes from a source whose ids are not the stream's
        (FILL account activities, see :meth:`apply_activity`): a part of it that falls on quantity
        already counted from real executions is that same execution, already booked, not a new one.
        """
        result = ApplyResult()
        leg = self._leg(rec, order)
        if event in FILL_EVENTS:
            result.merge(
                self._on_fill_event(
                    rec, leg, order, ts, execution_id, price, qty, position_qty, counted_is_booked
                )
            )
            self._observe(rec, order, event)
            return result
        # non-fill: first book fills the payload proves (filled_qty ahead of ours)
        result.merge(self._catch_up_fills(rec, leg, order, ts))
        if event in ALERT_EVENTS:
            rec.broker_status = order.status.value
            result.alert = (
                f"order {rec.client_order_id}: broker reported '{event}' (status {order.status.value})"
            )
            result.refresh = event in REFRESH_EVENTS
            result.changed = True
            self._observe(rec, order, event)
            return result
        if event not in EVENT_TRIGGER:
            result.anomalies.append(
                Anomaly("unknown_event", rec.client_order_id, f"unknown trade update event {event!r}", ts)
            )
            result.refresh = True
            return result
        trig = EVENT_TRIGGER[event]
        if trig is None:  # done_for_day: substatus only, still exposure
            rec.broker_status = order.status.value
            result.changed = True
            self._observe(rec, order, event)
            return result
        if trig is T.UPDATED:
            result.merge(self._on_replaced(rec, order, ts))
            return result
        result.merge(self._status_trigger(rec, leg, trig, order, ts, event))
        return result

    def apply_activity(self, rec: OrderRecord, order: Order, fill: Fill) -> ApplyResult:
        """Book one execution read from ``GET /v2/account/activities/FILL`` (recovery).

        ``order`` is the broker order as of that execution (its ``filled_qty`` is the activity's
        cumulative quantity). The execution is placed by its cumulative range, as a stream fill is:
        beyond what is counted it is a new fill with its own id and price; over an inferred fill it
        confirms it (a :class:`FillMatch`); over quantity counted from real executions it is one of
        those, already booked from the stream (Alpaca does not document that an activity's id is
        the stream's execution_id), and changes nothing.
        """
        event = TradeUpdateKind.FILL if order.status is OrderStatus.FILLED else TradeUpdateKind.PARTIAL_FILL
        return self.apply_update(
            rec,
            event,
            order,
            fill.ts,
            execution_id=fill.execution_id,
            price=fill.price,
            qty=fill.qty,
            position_qty=fill.position_qty,
            counted_is_booked=True,
        )

    def apply_snapshot(self, rec: OrderRecord, order: Order, ts: datetime) -> ApplyResult:
        """Bring ``rec`` up to a REST view of one of its broker orders (refresh, poll, adopt)."""
        result = ApplyResult()
        leg = self._leg(rec, order)
        if order.filled_qty < leg.filled_qty:
            result.anomalies.append(
                Anomaly(
                    "filled_qty_regressed",
                    rec.client_order_id,
                    f"broker filled_qty {order.filled_qty} < local {leg.filled_qty} on {order.id}",
                    ts,
                )
            )
        result.merge(self._catch_up_fills(rec, leg, order, ts))
        if order.status is OrderStatus.FILLED and rec.state is not S.FILLED:
            self._fill_status(rec, leg, ts, result, order)  # notional: qty null, the status says it
        trig = STATUS_TRIGGER.get(order.status)
        if trig is T.UPDATED:
            result.merge(self._on_replaced(rec, order, ts))
            return result
        if trig is None:
            if rec.broker_status != order.status.value:
                rec.broker_status = order.status.value
                result.changed = True
            if rec.state in (S.INITIALIZED, S.SUBMITTED, S.LOST):
                result.merge(self.trigger(rec, T.ACCEPT, ts))
            self._observe(rec, order, order.status.value)
            return result
        # filled_qty caught up above; a FILLED snapshot with a short filled_qty is an anomaly
        if (
            order.status is OrderStatus.FILLED
            and rec.state is not S.FILLED
            and leg.qty is not None
            and leg.filled_qty < leg.qty
        ):
            result.anomalies.append(
                Anomaly(
                    "filled_short",
                    rec.client_order_id,
                    f"status filled but filled_qty {order.filled_qty}",
                    ts,
                )
            )
            result.refresh = True
        result.merge(self._status_trigger(rec, leg, trig, order, ts, order.status.value))
        return result

    # --- internals --------------------------------------------------------------------------
    def _leg(self, rec: OrderRecord, order: Order) -> BrokerLeg:
        leg = rec.legs.get(order.id)
        if leg is None:
            leg = BrokerLeg(order.id, order.client_order_id, order.qty)
            rec.legs[order.id] = leg
            follows = order.replaces is not None and order.replaces == rec.broker_order_id
            if rec.broker_order_id is None or follows or order.id == rec.broker_order_id:
                if len(rec.legs) > 1 and order.qty is not None:
                    # the logical order now follows the replacement (Alpaca: cancel-replace)
                    done = sum((lg.filled_qty for lg in rec.legs.values() if lg is not leg), ZERO)
                    rec.qty = done + order.qty
                if follows:
                    rec.pending_replace_client_id = None
                    rec.updated_at = None
                rec.broker_order_id = order.id
                rec.current_client_order_id = order.client_order_id
        elif order.qty is not None:
            leg.qty = order.qty
        return leg

    def _observe(self, rec: OrderRecord, order: Order, status_text: str) -> None:
        if order.id == rec.broker_order_id and (rec.updated_at is None or order.updated_at >= rec.updated_at):
            rec.snapshot = order
            rec.updated_at = order.updated_at
            rec.broker_status = order.status.value

    def _status_trigger(
        self, rec: OrderRecord, leg: BrokerLeg, trig: Trigger, order: Order, ts: datetime, label: str
    ) -> ApplyResult:
        result = ApplyResult()
        if trig is T.REJECT and order.replaces is not None and order.replaces in rec.legs:
            return self._on_replacement_rejected(rec, order, ts, label)
        if order.id != rec.broker_order_id and trig is not T.REJECT:
            # a status event of an older (replaced) broker order: the logical order has moved on
            self._observe(rec, order, label)
            return result
        stale = rec.updated_at is not None and order.updated_at < rec.updated_at
        target = TRANSITIONS[rec.state].get(trig)
        if target is None:
            if stale or self._is_backward(rec.state, trig) or self._same_terminal(rec.state, trig):
                return result  # a reordered or duplicated older event: expected venue race, no-op
            result.merge(self.trigger(rec, trig, ts, detail=f"(broker {label})"))
            return result
        if stale and (not isinstance(target, OrderState) or RANK[target] <= RANK[rec.state]):
            return result  # older than what we already know: never move backwards
        result.merge(self.trigger(rec, trig, ts))
        if trig is T.CANCEL and not rec.cancel_requested and result.changed:
            result.alert = f"order {rec.client_order_id} canceled outside Heron (Heron did not ask for it)"
        self._observe(rec, order, label)
        result.changed = True
        return result

    @staticmethod
    def _is_backward(state: OrderState, trig: Trigger) -> bool:
        return trig in (T.ACCEPT, T.PENDING_CANCEL, T.PENDING_UPDATE) and RANK[state] >= 3

    @staticmethod
    def _same_terminal(state: OrderState, trig: Trigger) -> bool:
        return (state, trig) in {
            (S.CANCELED, T.CANCEL),
            (S.EXPIRED, T.EXPIRE),
            (S.REJECTED, T.REJECT),
        }

    def _on_replacement_rejected(
        self, rec: OrderRecord, order: Order, ts: datetime, label: str
    ) -> ApplyResult:
        """The replacing order was rejected: the logical order follows the order it replaced again.

        Alpaca (PATCH /v2/orders/{order_id}): "If the existing open order is filled before the
        replacing (new) order reaches the execution venue, the replacing (new) order is rejected".
        The reject and the old order's fill may arrive in either order; once both are in, the
        logical order is FILLED (no open-order slot, no deferred position checks).
        """
        result = ApplyResult(changed=True)
        old = rec.legs[order.replaces] if order.replaces is not None else None
        rejected = rec.legs.get(order.id)
        if old is None or rejected is None:
            return result
        rejected.qty = rejected.filled_qty  # it works nothing more
        self._observe(rec, order, label)
        if rec.broker_order_id == order.id:
            rec.broker_order_id = old.broker_order_id
            rec.current_client_order_id = old.client_order_id
            rec.updated_at = None
            if rec.snapshot is not None and rec.snapshot.id == order.id:
                rec.snapshot = None
        rec.pending_replace_client_id = None
        if old.qty is not None:
            others = sum((lg.filled_qty for lg in rec.legs.values() if lg is not old), ZERO)
            rec.qty = others + old.qty
        if rec.state is S.PENDING_UPDATE:
            result.merge(self.trigger(rec, T.MODIFY_REJECTED, ts))
        rec.broker_status = (
            OrderStatus.PARTIALLY_FILLED.value if rec.filled_qty > 0 else OrderStatus.NEW.value
        )
        before = rec.state
        self._fill_status(rec, old, ts, result)
        if rec.state is S.FILLED:
            rec.broker_status = OrderStatus.FILLED.value
            if before is not S.FILLED:
                result.transition = (before, S.FILLED)
        else:
            # whether the replaced order still works (or filled meanwhile) only REST can tell
            result.refresh = True
        result.alert = (
            f"order {rec.client_order_id}: replacement {order.client_order_id} rejected; "
            f"the order follows {old.client_order_id} again"
        )
        return result

    def _on_replaced(self, rec: OrderRecord, order: Order, ts: datetime) -> ApplyResult:
        result = ApplyResult()
        new_id = order.replaced_by
        if order.id != rec.broker_order_id:
            # already following the new order (its events came first); settle the pending replace
            if order.replaced_by == rec.broker_order_id and rec.state is S.PENDING_UPDATE:
                result.merge(self.trigger(rec, T.UPDATED, ts))
            return result
        if new_id is None:
            result.anomalies.append(
                Anomaly(
                    "replace_without_successor",
                    rec.client_order_id,
                    f"{order.id} replaced, no replaced_by",
                    ts,
                )
            )
            result.refresh = True
            return result
        requested = rec.pending_replace_client_id is not None
        rec.broker_order_id = new_id
        if rec.pending_replace_client_id:
            rec.current_client_order_id = rec.pending_replace_client_id
        rec.pending_replace_client_id = None
        rec.updated_at = None  # the new broker order has its own clock
        if rec.state in (S.PENDING_UPDATE, S.PENDING_CANCEL):
            result.merge(self.trigger(rec, T.UPDATED, ts))
        result.changed = True
        if not requested:
            result.alert = f"order {rec.client_order_id} replaced by the broker without a request (review)"
            result.refresh = True
        return result
