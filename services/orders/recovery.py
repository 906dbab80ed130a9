"""Settling what Heron does not know yet: the part of :class:`services.orders.engine.ExecutionEngine`
that resolves in-flight intents, recovers at start-up and polls.

- :meth:`resolve_intent` looks one in-flight intent up by client id: found settles it; not found
  twice, at least ``lost_spacing_s`` apart and after the POST deadline, marks it LOST;
- :meth:`recover` rebuilds from the database, resolves every in-flight intent and books what
  happened while Heron was down before trading may be enabled;
- :meth:`poll_once` refreshes by REST what the state machine could not explain, probes in-flight
  and silent open orders (at most ``max_probes_per_cycle`` calls per cycle) and forgets LOST orders
  after ``lost_retention``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from services.broker.base import Broker, BrokerError
from services.domain.bus import EventBus
from services.domain.enums import OrderStatus, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import Account, Fill, Order
from services.orders.journal import IntentStatus, OrderJournal
from services.orders.records import ApplyResult, OrderMeta, OrderRecord
from services.orders.state_machine import OrderStateMachine
from services.orders.store import OrderStore
from services.orders.transitions import OrderState, Trigger
from services.orders.writes import DB_ERRORS

log = logging.getLogger(__name__)
ZERO = Decimal(0)


class IntentRecovery:
    """Mixin of :class:`ExecutionEngine`: resolution, start-up recovery and polling."""

    if TYPE_CHECKING:
        broker: Broker
        store: OrderStore
        journal: OrderJournal
        bus: EventBus
        clock: Callable[[], datetime]
        sm: OrderStateMachine
        max_probes: int
        inflight_threshold: timedelta
        silent_after: timedelta
        lost_spacing: timedelta
        lost_retention: timedelta
        _refresh: dict[str, None]
        _last_seen: dict[str, datetime]

        def _commit(self, rec: OrderRecord, result: ApplyResult) -> None: ...
        def _db_why(self, error: BaseException) -> str: ...
        def _apply_snapshot(self, rec: OrderRecord, order: Order) -> None: ...
        def _flush(self) -> None: ...
        async def refresh_account(self) -> Account | None: ...

    # --- resolution and polling ------------------------------------------------------------------
    async def resolve_intent(self, client_order_id: str) -> bool:
        """Authoritative lookup of one in-flight intent; True once settled (found, or LOST)."""
        row = self.journal.intent(client_order_id)
        if row is None or row.status != "in_flight":
            return True
        rec = self.store.find(client_order_id=client_order_id)
        replacing = row.logical_id != client_order_id
        if rec is None and replacing:
            # A replacement its logical order does not know (its order row was never written): it
            # belongs to that order, never to a new one that would overwrite it and count its fills
            # again. Back to PENDING_UPDATE: only the broker's answer below settles it.
            rec = self.store.get(row.logical_id)
            if rec is not None:
                rec.pending_replace_client_id = client_order_id
                self.store.alias(rec, client_order_id=client_order_id)
                if rec.state.is_open and rec.state is not OrderState.PENDING_UPDATE:
                    self._commit(rec, self.sm.trigger(rec, Trigger.PENDING_UPDATE, self.clock()))
        if rec is None:
            req = row.request
            rec = OrderRecord(row.logical_id, req.symbol, req.side, req.qty, source=row.source)
            self.store.add(rec, OrderMeta.of_request(row.created_at, req))
            self._commit(rec, self.sm.trigger(rec, Trigger.SUBMIT, self.clock()))
        elif rec.state is OrderState.INITIALIZED:  # its SUBMIT was never committed (database failure)
            self._commit(rec, self.sm.trigger(rec, Trigger.SUBMIT, self.clock()))
        try:
            order = await self.broker.get_order_by_client_id(client_order_id)
        except BrokerError as error:
            log.info("in-flight lookup for %s failed: %s", client_order_id, error.message)
            return False
        now = self.clock()
        if order is not None:
            self.journal.settle(
                client_order_id, IntentStatus.RESOLVED, broker_order_id=order.id, via="lookup"
            )
            self.store.alias(rec, client_order_id=client_order_id, broker_order_id=order.id)
            if replacing and order.replaces is not None and order.replaces == rec.broker_order_id:
                # the replaced order first: its fills up to the replace, and its "replaced" status
                # (missed while down) is what confirms the replace
                try:
                    self._apply_snapshot(rec, await self.broker.get_order(order.replaces))
                except BrokerError as error:
                    log.info("lookup of replaced order %s failed: %s", order.replaces, error.message)
                    self._refresh[rec.client_order_id] = None
            self._apply_snapshot(rec, order)
            return True
        if now < row.post_deadline:
            return False
        if (
            row.not_found_count >= 1
            and row.last_not_found_at is not None
            and now - row.last_not_found_at < self.lost_spacing
        ):
            return False
        try:
            row2 = self.journal.note_not_found(client_order_id)
        except DB_ERRORS as error:
            # not counted: the next lookup asks again (LOST needs two counted answers)
            log.warning("%s: a not-found answer could not be journaled (%s); asked again later",
                        client_order_id, self._db_why(error))  # fmt: skip
            return False
        if row2 is not None and row2.not_found_count >= 2:
            self.journal.settle(client_order_id, IntentStatus.LOST)
            if row.logical_id == client_order_id:
                self._commit(rec, self.sm.trigger(rec, Trigger.LOSE, now))
            else:  # a replacement that never happened: the original order stands
                rec.pending_replace_client_id = None
                self._commit(rec, self.sm.trigger(rec, Trigger.MODIFY_REJECTED, now))
            self.bus.publish(
                NotificationEvent(
                    now, "error", "orders", f"{client_order_id} not found at the broker: marked LOST"
                )
            )
            return True
        return False

    async def recover(self) -> list[str]:
        """Start-up: load from the database, resolve every in-flight intent. Returns unresolved ids."""
        self.store.load()
        await self.refresh_account()
        for rec in self.store.open_orders():
            pending = rec.pending_replace_client_id
            if pending is not None and self.journal.intent(pending) is None:
                # the order row was written but the process died before the replace intent: never
                # sent, so it never happened; the order is as it was before the request
                rec.pending_replace_client_id = None
                if rec.state is OrderState.PENDING_UPDATE:
                    self._commit(rec, self.sm.trigger(rec, Trigger.MODIFY_REJECTED, self.clock()))
        unresolved = []
        for row in self.journal.in_flight():
            if not await self.resolve_intent(row.client_order_id):
                unresolved.append(row.client_order_id)
        # executions that happened while Heron was down, with their own ids and prices; then the
        # order snapshots settle states (and infer only what the activities did not show)
        await self._book_reported_executions()
        # fills and cancels that happened while Heron was down (or were queued but not committed)
        for rec in list(self.store.open_orders()):
            if rec.broker_order_id is not None:
                await self._refresh_order(rec)
        if not (self.journal.batch.try_flush() and self.store.try_flush()):
            # a full disk at start-up: what recovery learned is held in memory and committed with
            # the first write that gets through (the write batch said why); orders are refused
            # meanwhile, because an intent that cannot be journaled is never sent
            log.error("recovery's records are kept in memory until the database takes writes again")
        return unresolved

    async def _book_reported_executions(self) -> None:
        """Recovery: book the executions of open orders from ``GET /v2/account/activities/FILL``.

        One paginated read from the oldest open order's creation. Each broker order's executions are
        replayed oldest first with their running cumulative quantity, through
        :meth:`OrderStateMachine.apply_activity`: new ones are booked with their own id and price,
        ones over inferred quantity replace the inferred fills, ones already booked change nothing.
        A failed read is not fatal: the order snapshots that follow still book what they prove.
        """
        recs = [r for r in self.store.open_orders() if r.legs]
        if not recs:
            return
        starts = [m.created_at for r in recs if (m := self.store.meta(r.client_order_id)) is not None]
        since = min(starts, default=self.clock() - timedelta(days=1)) - timedelta(minutes=1)
        try:
            executions = await self.broker.get_fills(after=since)
        except BrokerError as error:
            log.warning("recovery: FILL activities unreadable (%s); snapshots book fills", error.message)
            return
        by_order: dict[str, list[Fill]] = {}
        for fill in executions:
            by_order.setdefault(fill.order_id, []).append(fill)
        for rec in recs:
            meta = self.store.meta(rec.client_order_id)
            for leg in list(rec.legs.values()):
                cum = ZERO
                for fill in sorted(by_order.get(leg.broker_order_id, []), key=lambda f: f.ts):
                    cum += fill.qty
                    done = leg.qty is not None and cum >= leg.qty
                    view = Order(
                        id=leg.broker_order_id,
                        client_order_id=leg.client_order_id,
                        symbol=rec.symbol,
                        side=rec.side,
                        type=meta.type if meta else OrderType.MARKET,
                        time_in_force=meta.time_in_force if meta else TimeInForce.DAY,
                        status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
                        qty=leg.qty,
                        filled_qty=cum,
                        created_at=meta.created_at if meta else fill.ts,
                        updated_at=fill.ts,
                        submitted_at=meta.created_at if meta else fill.ts,
                    )
                    self._commit(rec, self.sm.apply_activity(rec, view, fill))

    async def poll_once(self) -> int:
        """One polling cycle; returns the number of broker calls made (≤ max_probes_per_cycle)."""
        calls = 0
        now = self.clock()
        if self.journal.batch.pending or self.store.deferred:
            self._flush()  # rows a refused write left queued (a full disk): retried every cycle
        # 1: orders the state machine asked to refresh
        for key in list(self._refresh):
            if calls >= self.max_probes:
                return calls
            self._refresh.pop(key, None)
            rec = self.store.get(key)
            if rec is None:
                continue
            calls += 1
            await self._refresh_order(rec)
        # 2: in-flight intents past the threshold
        for row in self.journal.in_flight():
            if calls >= self.max_probes:
                return calls
            if now - row.created_at < self.inflight_threshold:
                continue
            calls += 1
            await self.resolve_intent(row.client_order_id)
        # 3: open orders the stream has been silent about
        for rec in self.store.open_orders():
            if calls >= self.max_probes:
                return calls
            if rec.broker_order_id is None:
                continue
            seen = self._last_seen.get(rec.client_order_id)
            if seen is not None and now - seen < self.silent_after:
                continue
            calls += 1
            await self._refresh_order(rec)
        # LOST orders stop listening after the retention period
        for rec in self.store.orders():
            if rec.state is OrderState.LOST:
                seen = self._last_seen.get(rec.client_order_id)
                if seen is not None and now - seen > self.lost_retention:
                    self.store.forget(rec.client_order_id)
        return calls

    async def refresh_order(self, rec: OrderRecord) -> None:
        """Re-read one order from the broker and apply what it says (after a reconnect: Alpaca does
        not replay trade updates missed while the stream was down). Loop thread."""
        await self._refresh_order(rec)

    async def _refresh_order(self, rec: OrderRecord) -> None:
        try:
            if rec.broker_order_id is not None:
                order = await self.broker.get_order(rec.broker_order_id)
            else:
                found = await self.broker.get_order_by_client_id(rec.current_client_order_id)
                if found is None:
                    return
                order = found
        except BrokerError as error:
            log.info("refresh of %s failed: %s", rec.client_order_id, error.message)
            self._last_seen[rec.client_order_id] = self.clock()
            return
        self._apply_snapshot(rec, order)
        if order.replaced_by and order.replaced_by == rec.broker_order_id:
            try:
                self._apply_snapshot(rec, await self.broker.get_order(order.replaced_by))
            except BrokerError:
                self._refresh[rec.client_order_id] = None
