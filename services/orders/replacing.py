"""Replacing an open order (Alpaca PATCH /v2/orders/{order_id}): what
:meth:`services.orders.engine.ExecutionEngine.replace` checks and how it journals and sends the
replacement.

A replacement is journaled as its own intent (logical id = the order's) before the PATCH, with the
order row (PENDING_UPDATE, pending replacement id) queued first and committed in the intent's own
transaction; the broker's answer settles it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from services.broker.base import Broker, BrokerAuthError, BrokerRejected, BrokerUnavailable, ReplaceRequest
from services.domain.bus import EventBus
from services.domain.enums import JournalKind, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import Asset, Order, OrderRequest
from services.orders.journal import IntentStatus, OrderJournal, replace_client_id
from services.orders.records import ApplyResult, OrderMeta, OrderRecord
from services.orders.state_machine import OrderStateMachine
from services.orders.store import OrderStore
from services.orders.transitions import OrderState, Trigger
from services.orders.writes import DB_ERRORS

if TYPE_CHECKING:
    from services.risk.context import RiskContext, RiskReport
    from services.risk.gate import RiskGate

log = logging.getLogger(__name__)


def busy_reason(rec: OrderRecord) -> str:
    """Why Alpaca would refuse a replace of this order now ("" when it would not)."""
    if rec.state in (OrderState.PENDING_UPDATE, OrderState.PENDING_CANCEL):
        # Alpaca refuses a replace while pending_replace or pending_cancel ([REPLACE])
        return f"order is {rec.state.value}"
    if rec.pending_replace_client_id is not None:
        # Alpaca refuses to replace an order in pending_replace; ours is still unresolved
        return (
            f"a replace of this order is still pending ({rec.pending_replace_client_id}); "
            "try again once it is settled"
        )
    return ""


def replacement_request(
    rec: OrderRecord,
    meta: OrderMeta | None,
    qty: Decimal | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> OrderRequest:
    """The order as the replacement would work it: prices not given stay as they are."""
    return OrderRequest(
        symbol=rec.symbol,
        side=rec.side,
        type=meta.type if meta else OrderType.LIMIT,
        time_in_force=meta.time_in_force if meta else TimeInForce.DAY,
        qty=qty,
        limit_price=limit_price if limit_price is not None else (meta.limit_price if meta else None),
        stop_price=stop_price if stop_price is not None else (meta.stop_price if meta else None),
    )


def worst_qty(rec: OrderRecord, qty: Decimal | None, new_qty: Decimal | None) -> Decimal | None:
    """The larger of the quantity sent and the current broker order's quantity when no quantity was
    asked for (Alpaca-API #165: a price-only replace may work the original qty)."""
    if qty is not None or new_qty is None:
        return new_qty
    assert rec.broker_order_id is not None
    current = rec.legs.get(rec.broker_order_id)
    original = current.qty if current is not None else rec.qty
    if original is not None and original > new_qty:
        return original
    return new_qty


class ReplaceSending:
    """Mixin of :class:`ExecutionEngine`: journal a checked replacement, PATCH it, settle the answer."""

    if TYPE_CHECKING:
        broker: Broker
        store: OrderStore
        journal: OrderJournal
        bus: EventBus
        clock: Callable[[], datetime]
        sm: OrderStateMachine

        def _commit(self, rec: OrderRecord, result: ApplyResult) -> None: ...
        def _db_why(self, error: BaseException) -> str: ...
        def _apply_snapshot(self, rec: OrderRecord, order: Order) -> None: ...

        risk: RiskGate
        _assets: dict[str, Asset]

        def risk_context(
            self, request: OrderRequest, asset: Asset | None, *, replacing: str | None = None
        ) -> RiskContext: ...

    def preview_replace(
        self,
        order_key: str,
        *,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        asset: Asset | None = None,
    ) -> RiskReport | str:
        """The risk pre-check :meth:`replace` runs for a price-only replacement, with no side effects
        (the chart shows it while an order line is dragged), or why no replace is possible now.
        Same request, same worst-case quantity, same context as :meth:`replace`. ``asset``: the
        instrument as the caller read it, else the one the engine last read (none fails closed)."""
        rec = self.store.find(client_order_id=order_key, broker_order_id=order_key)
        if rec is None or not rec.state.is_open or rec.broker_order_id is None:
            return "order is not open"
        busy = busy_reason(rec)
        if busy:
            return busy
        new_qty = rec.leaves_qty
        if new_qty is not None and new_qty <= 0:
            return "nothing left to work"
        probe = replacement_request(
            rec, self.store.meta(rec.client_order_id), new_qty, limit_price, stop_price
        )
        checked = replace(probe, qty=worst_qty(rec, None, new_qty))
        asset = asset or self._assets.get(rec.symbol)
        context = self.risk_context(checked, asset, replacing=rec.client_order_id)
        return self.risk.preview(checked, context)

    async def _send_replace(
        self, rec: OrderRecord, meta: OrderMeta | None, probe: OrderRequest, wire: ReplaceRequest, source: str
    ) -> str:
        """Under the order's lock. ``probe``: the order as replaced; ``wire``: the PATCH without its
        client id. Returns the message for the caller's result."""
        new_cid, not_sent = self._journal_replacement(rec, probe, source)
        if not_sent:
            return not_sent
        assert rec.broker_order_id is not None
        try:
            new = await self.broker.replace_order(rec.broker_order_id, replace(wire, client_order_id=new_cid))
        except BrokerUnavailable as error:
            self.journal.append(JournalKind.AMBIGUOUS, new_cid, source, message=error.message)
            return f"replace outcome unknown: {error.message}"
        except (BrokerRejected, BrokerAuthError) as error:
            self.journal.settle(new_cid, IntentStatus.REJECTED, message=error.message)
            rec.pending_replace_client_id = None
            self._commit(rec, self.sm.trigger(rec, Trigger.MODIFY_REJECTED, self.clock()))
            return error.message
        self.journal.settle(new_cid, IntentStatus.ACKED, broker_order_id=new.id)
        if meta is not None:
            meta.limit_price = probe.limit_price
            meta.stop_price = probe.stop_price
        self.store.alias(rec, broker_order_id=new.id)
        self._apply_snapshot(rec, new)
        new_qty = wire.qty
        if new_qty is not None and new.qty is not None and new.qty != new_qty:
            text = (
                f"{rec.client_order_id}: the replacement works {new.qty}, not the {new_qty} sent "
                f"(order total now {rec.qty}); review it"
            )
            log.warning(text)
            self.bus.publish(NotificationEvent(self.clock(), "warning", "orders", text))
        return "replaced"

    def _journal_replacement(self, rec: OrderRecord, probe: OrderRequest, source: str) -> tuple[str, str]:
        """Take the replacement's client id and journal its intent: ``(new_cid, "")``, or
        ``(new_cid, why)`` when it could not be journaled (then nothing is sent)."""
        new_cid = replace_client_id(rec.current_client_order_id, rec.client_order_id)
        while self.journal.has_intent(new_cid) or self.store.find(client_order_id=new_cid) is not None:
            # an earlier attempt (refused by the broker, or never sent) took this id: the journal
            # keeps every intent, so the next attempt takes the next suffix
            new_cid = replace_client_id(new_cid, rec.client_order_id)
        # The order row (pending replacement id, PENDING_UPDATE) is queued first and committed in
        # the intent's own transaction: a crash after the intent never finds an intent whose
        # logical order does not know it (restart would otherwise take it for a new order).
        rec.pending_replace_client_id = new_cid
        self.store.alias(rec, client_order_id=new_cid)
        try:
            self._commit(rec, self.sm.trigger(rec, Trigger.PENDING_UPDATE, self.clock()))
            self.journal.record_intent(
                replace(probe, client_order_id=new_cid), source, logical_id=rec.client_order_id
            )
        except DB_ERRORS as error:
            # Nothing was sent. Never raise into the caller (a script or strategy task would die);
            # the order goes back to what it was, in memory now and in the database with the
            # next write that gets through (queued rows are kept in order).
            rec.pending_replace_client_id = None
            try:
                self._commit(rec, self.sm.trigger(rec, Trigger.MODIFY_REJECTED, self.clock()))
            except DB_ERRORS:
                log.warning("%s: the database is still refusing writes; the order row follows "
                            "with the next write", rec.client_order_id)  # fmt: skip
            why = f"not sent: the replace could not be journaled ({self._db_why(error)})"
            log.error("%s %s", rec.client_order_id, why)
            self.bus.publish(
                NotificationEvent(self.clock(), "error", "orders", f"{rec.client_order_id} {why}")
            )
            return new_cid, why
        return new_cid, ""
