"""Fill booking for the order state machine: execution reports, inferred fills and their matching.

Fills are booked from execution reports: a ``fill`` / ``partial_fill`` trade update carries the
execution's own id, price and qty. When a snapshot's cumulative ``filled_qty`` is ahead of the
executions seen, the gap is booked at once under a deterministic id (an inferred fill); the real
execution for that quantity later *matches* it (a :class:`FillMatch`), never adds to it. A fill is
never lost: one the table refuses is still booked for positions and raises an anomaly. See
:mod:`services.orders.state_machine` for the whole contract.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from services.domain.enums import OrderStatus, TradeUpdateKind
from services.domain.models import Fill, Order
from services.orders.records import (
    Anomaly,
    ApplyResult,
    BrokerLeg,
    FillMatch,
    OrderRecord,
    inferred_execution_id,
    inferred_range,
)
from services.orders.transitions import FILLABLE, OrderState, Trigger

ZERO = Decimal(0)
S = OrderState
T = Trigger


class FillBooking:
    """Mixin of :class:`OrderStateMachine`: books fills on an :class:`OrderRecord` and its legs."""

    if TYPE_CHECKING:

        def trigger(
            self, rec: OrderRecord, trig: Trigger, ts: datetime, *, detail: str = ""
        ) -> ApplyResult: ...
        def _observe(self, rec: OrderRecord, order: Order, status_text: str) -> None: ...

    def _catch_up_fills(self, rec: OrderRecord, leg: BrokerLeg, order: Order, ts: datetime) -> ApplyResult:
        """Infer the fills the payload's cumulative filled_qty proves but we have not seen."""
        result = ApplyResult()
        gap = order.filled_qty - leg.filled_qty
        if gap > 0:
            price: Decimal | None = None
            if order.filled_avg_price is not None:
                price = (order.filled_qty * order.filled_avg_price - leg.notional_filled) / gap
                if price <= 0:
                    price = order.filled_avg_price
            result.merge(self._infer_qty(rec, leg, order, order.filled_qty, price, ts))
        return result

    def _infer_qty(
        self,
        rec: OrderRecord,
        leg: BrokerLeg,
        order: Order,
        cum_target: Decimal,
        price: Decimal | None,
        ts: datetime,
    ) -> ApplyResult:
        result = ApplyResult()
        gap = cum_target - leg.filled_qty
        if gap <= 0:
            return result
        if price is None:
            price = order.filled_avg_price or order.limit_price or ZERO
        exec_id = inferred_execution_id(order.id, leg.filled_qty, cum_target)
        # When it happened at the broker, not when Heron learned of it: fills are replayed in time
        # order (a restart rebuilds positions from them), and an average price depends on the order
        # of the fills (a dropped fill event learned from a later snapshot was booked last).
        happened = order.filled_at if order.filled_at is not None and order.filled_qty <= cum_target else None
        happened = happened or order.updated_at
        fill_ts = min(happened, ts) if happened is not None else ts
        fill = Fill(exec_id, order.id, order.client_order_id, rec.symbol, rec.side, gap, price, fill_ts)
        rec.exec_ids.add((order.id, exec_id))
        result.anomalies.append(
            Anomaly(
                "inferred_fill",
                rec.client_order_id,
                f"{gap} @ {price} inferred from filled_qty {cum_target}",
                ts,
            )
        )
        leg.inferred_open += gap
        result.merge(self._book(rec, leg, fill, ts, order))
        return result

    def _on_fill_event(
        self,
        rec: OrderRecord,
        leg: BrokerLeg,
        order: Order,
        ts: datetime,
        execution_id: str | None,
        price: Decimal | None,
        qty: Decimal | None,
        position_qty: Decimal | None,
        counted_is_booked: bool = False,
    ) -> ApplyResult:
        if execution_id is None or qty is None or qty <= 0 or price is None:
            return self._fill_without_execution(rec, leg, order, ts)
        result = ApplyResult()
        key = (order.id, execution_id)
        if key in rec.exec_ids:
            result.duplicate_fills = 1
            return result
        rec.exec_ids.add(key)
        cum = order.filled_qty
        before = cum - qty  # cumulative quantity the broker had before this fill
        if before > leg.filled_qty:
            # fills we never saw: infer them first (price from the broker's cumulative average)
            inferred_price: Decimal | None = None
            if order.filled_avg_price is not None:
                gap = before - leg.filled_qty
                inferred_price = (cum * order.filled_avg_price - qty * price - leg.notional_filled) / gap
                if inferred_price <= 0:
                    inferred_price = order.filled_avg_price
            result.merge(self._infer_qty(rec, leg, order, before, inferred_price, ts))
        elif before < leg.filled_qty:
            # part of this fill is already counted: normally a quantity we inferred earlier, which
            # this execution now confirms (matched, never added)
            overlap = min(qty, leg.filled_qty - before)
            covered = min(overlap, leg.inferred_open)
            pieces = self._confirmed_pieces(rec, order.id, before, cum, covered)
            leg.inferred_open -= covered
            rest = qty - (overlap if counted_is_booked else covered)  # not counted yet: booked below
            if pieces:
                real = Fill(
                    execution_id,
                    order.id,
                    order.client_order_id,
                    rec.symbol,
                    rec.side,
                    covered + rest,
                    price,
                    ts,
                    position_qty,
                )
                result.matches.append(FillMatch(real, pieces))
            qty = rest
            result.changed = True
            if overlap > covered and not counted_is_booked:
                result.anomalies.append(
                    Anomaly(
                        "fill_overlaps_counted",
                        rec.client_order_id,
                        f"fill {execution_id} ({qty} @ {price}) overlaps quantity already counted "
                        f"(broker cum {cum}, local {leg.filled_qty}); booked as reported",
                        ts,
                    )
                )
                result.refresh = True
            if qty <= 0:
                self._fill_status(rec, leg, ts, result, order)
                self._observe(rec, order, TradeUpdateKind.FILL)
                return result
        fill = Fill(
            execution_id, order.id, order.client_order_id, rec.symbol, rec.side, qty, price, ts, position_qty
        )
        result.merge(self._book(rec, leg, fill, ts, order))
        return result

    def _fill_without_execution(
        self, rec: OrderRecord, leg: BrokerLeg, order: Order, ts: datetime
    ) -> ApplyResult:
        """A fill event without its execution details: book what the cumulative quantity proves."""
        result = ApplyResult()
        result.anomalies.append(
            Anomaly(
                "fill_without_execution",
                rec.client_order_id,
                f"fill event on {order.id} lacks id/qty/price",
                ts,
            )
        )
        result.merge(self._catch_up_fills(rec, leg, order, ts))
        result.refresh = True
        self._fill_status(rec, leg, ts, result, order)
        return result

    @staticmethod
    def _confirmed_pieces(
        rec: OrderRecord, order_id: str, before: Decimal, cum: Decimal, covered: Decimal
    ) -> tuple[tuple[str, Decimal], ...]:
        """Which inferred fills of ``order_id`` a real execution over ``(before, cum]`` confirms.

        Each inferred fill covers ``(cum_before, cum_after]`` (its id says which); the overlap of the
        two ranges is what the execution confirms, oldest first, never more than ``covered``.
        """
        if covered <= 0:
            return ()
        ranges = sorted(
            (r[1], r[2], eid)
            for oid, eid in rec.exec_ids
            if oid == order_id and (r := inferred_range(eid)) is not None and r[0] == order_id
        )
        pieces: list[tuple[str, Decimal]] = []
        left = covered
        for lo, hi, eid in ranges:
            take = min(max(min(hi, cum) - max(lo, before), ZERO), left)
            if take > 0:
                pieces.append((eid, take))
                left -= take
        return tuple(pieces)

    def _book(
        self, rec: OrderRecord, leg: BrokerLeg, fill: Fill, ts: datetime, order: Order | None = None
    ) -> ApplyResult:
        """Count a fill on the order (capped at its quantity) and always hand it on for positions."""
        result = ApplyResult(changed=True)
        if rec.state is S.INITIALIZED:
            # a fill of an order Heron never submitted (adopted from the stream or a snapshot): the
            # broker evidently holds it, so it is accepted first and the fill is an ordinary one
            result.merge(self.trigger(rec, T.ACCEPT, ts))
        result.fills.append(fill)
        counted = fill.qty
        if leg.qty is not None and leg.filled_qty + fill.qty > leg.qty:
            counted = max(leg.qty - leg.filled_qty, ZERO)
            excess = fill.qty - counted
            rec.overfill_qty += excess
            result.anomalies.append(
                Anomaly(
                    "overfill",
                    rec.client_order_id,
                    f"fill {fill.execution_id} of {fill.qty} exceeds order qty {leg.qty} by {excess}",
                    ts,
                )
            )
            result.refresh = True
        if counted > 0:
            leg.filled_qty += counted
            leg.notional_filled += counted * fill.price
            total = sum((lg.filled_qty for lg in rec.legs.values()), ZERO)
            notional = sum((lg.notional_filled for lg in rec.legs.values()), ZERO)
            rec.filled_qty = total
            rec.avg_fill_price = notional / total if total else None
        if rec.state not in FILLABLE:
            result.anomalies.append(
                Anomaly(
                    "fill_in_terminal_state",
                    rec.client_order_id,
                    f"fill {fill.execution_id} arrived in state {rec.state.value}; booked for positions",
                    ts,
                )
            )
            result.refresh = True
        self._fill_status(rec, leg, ts, result, order)
        return result

    def _fill_status(
        self, rec: OrderRecord, leg: BrokerLeg, ts: datetime, result: ApplyResult, order: Order | None = None
    ) -> None:
        """Move to PARTIALLY_FILLED / FILLED from what is booked on the current broker order.

        FILLED: the leg's quantity is filled, or, for a leg without a quantity, ``order`` (the
        broker's view of this leg) says ``filled`` and every share it reports filled is booked — a
        notional order keeps ``qty`` null (Order entity docs; Alpaca-API #191), so its quantity
        cannot be the test. (A leg with a quantity reported filled short of it stays an anomaly.)
        """
        before = rec.state
        if rec.state not in FILLABLE or rec.filled_qty <= 0:
            return
        current = leg.broker_order_id == rec.broker_order_id
        broker_done = (
            leg.qty is None
            and order is not None
            and order.id == leg.broker_order_id
            and order.status is OrderStatus.FILLED
            and order.filled_qty > 0
            and leg.filled_qty >= order.filled_qty
        )
        full = current and ((leg.qty is not None and leg.filled_qty >= leg.qty) or broker_done)
        if full:
            rec.state = S.FILLED
        elif rec.state in (S.SUBMITTED, S.ACCEPTED, S.LOST):
            rec.state = S.PARTIALLY_FILLED
        elif rec.state in (S.PENDING_CANCEL, S.PENDING_UPDATE) and rec.previous_state in (
            S.ACCEPTED,
            S.SUBMITTED,
        ):
            rec.previous_state = S.PARTIALLY_FILLED  # the pending request stays pending
        rec.ambiguous = False
        if rec.state != before:
            start = result.transition[0] if result.transition is not None else before
            result.transition = (start, rec.state)
            result.changed = True
