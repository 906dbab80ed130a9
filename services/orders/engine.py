"""ExecutionEngine: risk gate → journal → POST → ack, and everything that settles an order afterwards.

Rules it keeps (docs/DESIGN.md §5):
- the intent and its client_order_id are committed to the journal before the POST;
- a timeout, 5xx, disconnect or an answer that cannot be read (a NaN, a wrong type) leaves the
  order SUBMITTED (``ambiguous``), never REJECTED; only the broker's answer
  settles it: the stream, a poll, or the authoritative lookup by client id. Not found twice, at
  least ``lost_spacing_s`` apart and after the POST deadline → LOST, which still accepts acks and
  fills for ``lost_retention``;
- one intent → at most one broker order: commands on one logical order are serialised, and the
  engine never re-POSTs an intent with a new id;
- trade updates (``TradeUpdateEvent`` on the bus) drive the state machine; anything the state
  machine cannot explain is refreshed by REST in :meth:`poll_once`, which also probes in-flight
  and silent open orders, bounded to ``max_probes_per_cycle`` calls per cycle;
- start-up (:meth:`recover`) rebuilds from the database and resolves every in-flight intent
  before trading may be enabled. Nothing lives only in memory.

Coroutines run on the service event loop; the bus handler runs synchronously on the same thread.
Clocks are injected; nothing sleeps.

Parts of the engine live beside it: working orders and exposure for the risk gate in
:mod:`services.orders.exposure`, replacing in :mod:`services.orders.replacing`, resolution,
recovery and polling in :mod:`services.orders.recovery`, closing positions in
:mod:`services.orders.closing`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from services.broker.base import (
    Broker,
    BrokerAuthError,
    BrokerClosed,
    BrokerError,
    BrokerNotFound,
    BrokerNotSent,
    BrokerRejected,
    BrokerUnavailable,
    OrderQuery,
    ReplaceRequest,
)
from services.domain.bus import EventBus
from services.domain.enums import JournalKind
from services.domain.events import AccountEvent, NotificationEvent, TradeUpdateEvent
from services.domain.models import Account, Asset, Order, OrderRequest
from services.orders.activity import log as activity_log
from services.orders.closing import CloseReport, PositionCloser, SymbolCloseResult
from services.orders.exposure import exposure, working_orders
from services.orders.groups import canceled_with_group
from services.orders.journal import IntentStatus, OrderJournal, source_from_client_id
from services.orders.records import ApplyResult, OrderMeta, OrderRecord, SubmitResult
from services.orders.recovery import IntentRecovery
from services.orders.replacing import ReplaceSending, busy_reason, replacement_request, worst_qty
from services.orders.state_machine import OrderStateMachine
from services.orders.store import OrderStore
from services.orders.transitions import OrderState, Trigger
from services.orders.working import describe_order
from services.orders.writes import DB_ERRORS, UnwrittenRecords, describe_write_error
from services.risk.context import MarketHours, OrderGateLike, PriceSource, RiskContext, RiskReport
from services.risk.gate import RiskGate
from services.risk.trading_state import TradingStateMachine

log = logging.getLogger(__name__)
ZERO = Decimal(0)
KILL_SWITCH = "kill-switch"


class ExecutionEngine(ReplaceSending, IntentRecovery):
    def __init__(
        self,
        broker: Broker,
        store: OrderStore,
        journal: OrderJournal,
        risk: RiskGate,
        trading: TradingStateMachine,
        bus: EventBus,
        clock: Callable[[], datetime],
        *,
        prices: PriceSource,
        hours: MarketHours | None = None,
        order_gate: OrderGateLike | None = None,
        state_machine: OrderStateMachine | None = None,
        max_probes_per_cycle: int = 10,
        inflight_threshold_s: float = 5.0,
        silent_after_s: float = 30.0,
        lost_spacing_s: float = 10.0,
        lost_retention: timedelta = timedelta(hours=24),
    ) -> None:
        self.broker = broker
        self.store = store
        self.journal = journal
        self.risk = risk
        self.trading = trading
        self.bus = bus
        self.clock = clock
        self.prices = prices
        self.hours = hours
        self.order_gate = order_gate
        #: Reconciliation's hook: the broker's quantity for a symbol that may only be reduced (an
        #: acknowledged, unadopted quantity drift), else None. Set by the composition root.
        self.reduce_only_qty: Callable[[str], Decimal | None] | None = None
        self.sm = state_machine or OrderStateMachine()
        self.max_probes = max_probes_per_cycle
        self.inflight_threshold = timedelta(seconds=inflight_threshold_s)
        self.silent_after = timedelta(seconds=silent_after_s)
        self.lost_spacing = timedelta(seconds=lost_spacing_s)
        self.lost_retention = lost_retention
        self.account: Account | None = None
        self.peak_equity: Decimal | None = None
        self._assets: dict[str, Asset] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh: dict[str, None] = {}  # logical ids wanting a REST refresh, in order
        self._last_seen: dict[str, datetime] = {}
        self._queued_cancel: set[str] = set()
        self._flush_scheduled = False
        self._sub = bus.subscribe(TradeUpdateEvent, self.on_trade_update)
        self.closer = PositionCloser(self)

    def close(self) -> None:
        self._sub.cancel()

    def flush_at_exit(self) -> None:
        """Shutdown: commit what is still queued. Rows a refusing database (a full disk) kept in
        memory would end with the process: raise naming how many and why, so the shutdown says it
        (and a headless run exits non-zero). The broker keeps those orders and fills; the next
        start's recovery books them from it."""
        if self.journal.batch.try_flush() and self.store.try_flush():
            return
        pending = self.journal.batch.pending + self.store.pending
        why = self.journal.batch.failing or self.store.failing or "the database refuses writes"
        raise UnwrittenRecords(
            f"{pending} order record(s) queued in memory could not be written ({why}) and end with "
            "this process; the broker keeps those orders and fills, and the next start recovers them"
        )

    # --- helpers ---------------------------------------------------------------------------------
    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _schedule_flush(self) -> None:
        """Commit queued journal/order writes soon (after the current step), or now without a loop."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Commit what is queued if the database takes it. A refusal (a full disk, a lock) keeps the
        rows queued, in order, for the next intent or flush (:meth:`poll_once` retries); it is said
        once per outage by the write batch and never raises into the loop or a bus handler."""
        self._flush_scheduled = False
        try:
            done = self.journal.batch.try_flush() and self.store.try_flush()
        except Exception:  # anything else: still never lose the loop
            log.exception("order journal flush failed; will retry with the next write")
            return
        if done:
            self.store.settle_deferred()

    def _db_why(self, error: BaseException) -> str:
        return describe_write_error(error, self.journal.batch.db)

    def flush(self) -> None:
        """Commit everything queued now (shutdown, tests)."""
        self.journal.flush()
        self.store.flush()

    def _commit(self, rec: OrderRecord, result: ApplyResult) -> None:
        if result.alert and canceled_with_group(self.store, rec):
            result.alert = None  # Alpaca ended the leg with its group: no cancel outside Heron
        self.store.commit(rec, result)
        self._last_seen[rec.client_order_id] = self.clock()
        for fill in result.fills:
            self.journal.append(
                JournalKind.FILL,
                fill.client_order_id,
                rec.source,
                execution_id=fill.execution_id,
                order_id=fill.order_id,
                qty=fill.qty,
                price=fill.price,
                ts=fill.ts,
            )
        if result.transition is not None:
            self.journal.append(
                JournalKind.STATE,
                rec.client_order_id,
                rec.source,
                old=result.transition[0].value,
                new=result.transition[1].value,
            )
        if result.refresh:
            self._refresh[rec.client_order_id] = None
        self._schedule_flush()
        if rec.client_order_id in self._queued_cancel and rec.state is not OrderState.PENDING_UPDATE:
            self._queued_cancel.discard(rec.client_order_id)
            if rec.state.is_open:
                asyncio.get_running_loop().create_task(self.cancel(rec.client_order_id, source=rec.source))

    async def refresh_account(self) -> Account | None:
        try:
            self.account = await self.broker.get_account()
        except BrokerClosed:  # Heron is shutting down (a panel's last timer): nothing to tell the trader
            log.debug("account refresh skipped: the broker connection is closed")
            return self.account
        except BrokerError as error:
            log.warning("account refresh failed: %s", error.message)
            return self.account
        eq = self.account.equity
        self.peak_equity = eq if self.peak_equity is None else max(self.peak_equity, eq)
        # what follows the account (the ticket's pre-check, the account panel) hears of it
        self.bus.publish(AccountEvent(self.clock(), self.account))
        return self.account

    async def _asset(self, symbol: str) -> Asset | None:
        asset = self._assets.get(symbol)
        if asset is None:
            try:
                asset = await self.broker.get_asset(symbol)
            except BrokerError:
                return None
            self._assets[symbol] = asset
        return asset

    def risk_context(
        self, request: OrderRequest, asset: Asset | None, *, replacing: str | None = None
    ) -> RiskContext:
        """What the risk gate needs, with working orders counted for the worst case (see
        :mod:`services.orders.exposure`). ``replacing`` leaves out the order a replacement would
        take the place of."""
        last_price = self.prices.last_price
        store = self.store
        opens = store.open_orders()
        working = working_orders(store, opens, last_price, replacing)
        positions = {s: p.qty for s, p in store.positions.items()}
        # reconciliation: trade a symbol with an acknowledged quantity drift on the broker's quantity
        held = self.reduce_only_qty(request.symbol) if self.reduce_only_qty is not None else None
        if held is not None:
            positions[request.symbol] = held
        worst = exposure(store, opens, positions, working, last_price)
        return RiskContext(
            now=self.clock(),
            trading_state=self.trading.state,
            account=self.account,
            asset=asset,
            prices=self.prices,
            positions=positions,
            gross_exposure=worst.gross,
            net_exposure=worst.net,
            open_orders=working.open_count,
            hours=self.hours,
            peak_equity=self.peak_equity,
            order_gate=self.order_gate,
            reduce_only=held is not None,
            pending_buys=working.buys,
            pending_sells=working.sells,
            pending_buy_exposure=worst.pending_buys,
            pending_sell_exposure=worst.pending_sells,
        )

    # --- submit ----------------------------------------------------------------------------------
    async def submit(
        self, request: OrderRequest, *, source: str = "manual", closing: bool = False
    ) -> SubmitResult:
        """Risk gate → journal → POST → ack. Never raises for broker outcomes; see SubmitResult.
        ``closing``: a close's closing order (see :func:`services.risk.rules.closing_exempt`)."""
        report: RiskReport | None = None
        try:
            if source != KILL_SWITCH:
                asset = await self._asset(request.symbol)
                context = self.risk_context(request, asset)
                context.closing = closing
                report = self.risk.check(request, context)
                if not report.passed:
                    self.journal.append(
                        JournalKind.DENIED, None, source, symbol=request.symbol, reasons=report.explain()
                    )
                    self._schedule_flush()
                    self.bus.publish(
                        NotificationEvent(
                            self.clock(), "warning", "risk", f"order refused: {report.explain()}"
                        )
                    )
                    return SubmitResult(None, OrderState.DENIED, report, report.explain())
            cid = self.journal.new_client_order_id(source)
            while self.store.find(client_order_id=cid) is not None or self.journal.has_intent(cid):
                cid = self.journal.new_client_order_id(source)
        except DB_ERRORS as error:
            # the database could not be read (or written) before the intent: nothing was sent
            why = f"not sent: the order database could not be used ({self._db_why(error)})"
            log.error("%s %s order refused: %s", request.symbol, request.side.value, why)
            self.bus.publish(NotificationEvent(self.clock(), "error", "orders", f"order {why}"))
            return SubmitResult(None, OrderState.DENIED, report, why)
        request = replace(request, client_order_id=cid)
        rec = OrderRecord(cid, request.symbol, request.side, request.qty, source=source)
        meta = OrderMeta.of_request(self.clock(), request)
        async with self._lock(cid):
            try:
                self.journal.record_intent(request, source)  # durable before the wire
            except DB_ERRORS as error:
                # No journal, no wire: nothing was sent. Say why instead of raising into the caller
                # (a script or strategy task would die and stop submitting altogether).
                why = f"not sent: the order could not be journaled ({self._db_why(error)})"
                log.error("%s %s", cid, why)
                self.bus.publish(NotificationEvent(self.clock(), "error", "orders", f"{cid} {why}"))
                return SubmitResult(None, OrderState.DENIED, report, why)
            posting = False
            try:
                self.store.add(rec, meta)
                self._commit(rec, self.sm.trigger(rec, Trigger.SUBMIT, self.clock()))
                posting = True
                message = await self._post(rec, request)
            except DB_ERRORS as error:
                # The intent is durable and stays in flight: client-id lookups settle it (found, or
                # LOST once the broker twice says it never saw it). Never raise into the caller.
                why = self._db_why(error)
                if posting:
                    why = f"a database write failed after the POST ({why}); the broker's answer settles it"
                else:
                    why = f"not sent: a database write failed after the intent ({why})"
                log.error("%s %s", cid, why)
                self.bus.publish(NotificationEvent(self.clock(), "error", "orders", f"{cid} {why}"))
                return SubmitResult(cid, rec.state if posting else OrderState.DENIED, report, why)
        return SubmitResult(cid, rec.state, report, message)

    async def _post(self, rec: OrderRecord, request: OrderRequest) -> str:
        """POST one journaled intent and settle what the answer proves.

        Only a definitive refusal (BrokerRejected / BrokerAuthError) is REJECTED. Anything else that
        is not a readable order (a timeout, a 5xx, or an answer Heron cannot read: a number that is
        NaN, a field of the wrong type) leaves the outcome unknown: the order stays SUBMITTED and
        in flight, and the lookup by client_order_id settles it. Reporting such an order refused
        while it is live at the broker would let a strategy send it again.
        """
        cid = rec.client_order_id
        try:
            order = await self.broker.submit_order(request)
        except BrokerNotSent as error:  # never left Heron: known not placed, so it may be sent again
            self.journal.settle(cid, IntentStatus.REJECTED, message=error.message)
            self._reject(rec, error.message, f"{cid} {error.message}")
            return error.message
        except BrokerUnavailable as error:
            return self._unknown_outcome(rec, error.message)
        except (BrokerRejected, BrokerAuthError) as error:
            self.journal.settle(cid, IntentStatus.REJECTED, message=error.message)
            rec.broker_status = "rejected"
            self._reject(rec, error.message, f"{cid} rejected: {error.message}")
            return error.message
        except DB_ERRORS:
            raise  # the caller says which database write failed
        except Exception as error:  # an answer Heron cannot read is not a refusal
            log.warning("%s: the broker's answer to the POST could not be read: %r", cid, error)
            return self._unknown_outcome(rec, f"unreadable answer from the broker: {error}")
        self.journal.settle(cid, IntentStatus.ACKED, broker_order_id=order.id)
        self._apply_snapshot(rec, order)
        return "accepted"

    def _reject(self, rec: OrderRecord, why: str, notice: str) -> None:
        """A refusal of the POST, told before the status change: the log says both in one line."""
        cid = rec.client_order_id
        self.bus.publish(NotificationEvent(self.clock(), "warning", "orders", notice, rejected_order=cid))
        self._commit(rec, self.sm.trigger(rec, Trigger.REJECT, self.clock(), detail=why))

    def _unknown_outcome(self, rec: OrderRecord, why: str) -> str:
        rec.ambiguous = True
        self.journal.append(JournalKind.AMBIGUOUS, rec.client_order_id, rec.source, message=why)
        self._commit(rec, ApplyResult(changed=True))
        return f"outcome unknown ({why}); the order stays in flight until the broker answers"

    def _apply_snapshot(self, rec: OrderRecord, order: Order) -> None:
        result = self.sm.apply_snapshot(rec, order, self.clock())
        self._commit(rec, result)
        for leg in order.legs:
            self._adopt_child(rec, leg)

    def _adopt_child(self, parent: OrderRecord, leg: Order) -> None:
        child = self.store.find(client_order_id=leg.client_order_id, broker_order_id=leg.id)
        if child is None:
            child = OrderRecord(leg.client_order_id, leg.symbol, leg.side, leg.qty, source=parent.source)
            child.parent_client_order_id = parent.client_order_id
            self.store.add(child, self._meta_of(leg))
        self._commit(child, self.sm.apply_snapshot(child, leg, self.clock()))

    def _meta_of(self, order: Order) -> OrderMeta:
        return OrderMeta.of_order(order)

    # --- trade updates (bus handler) -------------------------------------------------------------
    def on_trade_update(self, event: TradeUpdateEvent) -> None:
        """Bus handler; runs synchronously on the event-loop thread. Never raises."""
        order = event.order
        rec = self.store.find(client_order_id=order.client_order_id, broker_order_id=order.id)
        if rec is None and order.replaces:
            rec = self.store.find(broker_order_id=order.replaces)
        if rec is None:
            # an order Heron did not place (or forgot): adopt it, then still apply this event
            rec = OrderRecord(
                order.client_order_id,
                order.symbol,
                order.side,
                order.qty,
                source=source_from_client_id(order.client_order_id),
            )
            self.store.add(rec, self._meta_of(order))
            self.journal.append(
                JournalKind.ADOPTED, order.client_order_id, rec.source, broker_order_id=order.id
            )
        result = self.sm.apply_update(
            rec,
            event.event,
            order,
            self.clock(),
            execution_id=event.execution_id,
            price=event.price,
            qty=event.qty,
            position_qty=event.position_qty,
        )
        if rec.ambiguous is False and rec.state is not OrderState.SUBMITTED:
            intent = rec.client_order_id
            if self.journal.is_in_flight(intent):
                self.journal.settle(intent, IntentStatus.RESOLVED, broker_order_id=order.id, via="stream")
        self._commit(rec, result)
        for leg in order.legs:
            self._adopt_child(rec, leg)

    # --- cancel / replace ------------------------------------------------------------------------
    async def cancel(self, order_key: str, *, source: str = "manual", say_refusal: bool = True) -> bool:
        """Request a cancel (no risk check). True if the request reached the broker or is queued.
        A refusal is said at WARNING unless the caller reports it itself (``say_refusal=False``)."""
        rec = self.store.find(client_order_id=order_key, broker_order_id=order_key)
        if rec is None or rec.state.is_terminal:
            return False
        if rec.state is OrderState.PENDING_UPDATE:
            self._queued_cancel.add(rec.client_order_id)  # Alpaca refuses cancels while replacing
            self.journal.append(JournalKind.CANCEL_QUEUED, rec.client_order_id, source)
            return True
        async with self._lock(rec.client_order_id):
            if rec.broker_order_id is None:
                await self.resolve_intent(rec.client_order_id)
                if rec.broker_order_id is None:
                    return False
            self.journal.append(
                JournalKind.CANCEL_REQUESTED, rec.client_order_id, source, broker_order_id=rec.broker_order_id
            )
            rec.cancel_requested = True
            try:
                self._commit(rec, self.sm.trigger(rec, Trigger.PENDING_CANCEL, self.clock()))
                # durable before the DELETE: after a crash the restart knows Heron asked for this
                # cancel (the broker's later "canceled" is ours, not an unrequested one)
                self.journal.flush()
            except DB_ERRORS as error:
                # a cancel only reduces risk: send it anyway; the queued rows go with the next flush
                log.error("%s cancel request not journaled yet (%s); sent anyway, the record follows "
                          "with the next write", rec.client_order_id, self._db_why(error))  # fmt: skip
            try:
                await self.broker.cancel_order(rec.broker_order_id)
            except BrokerNotFound:
                self._refresh[rec.client_order_id] = None
                return False
            except BrokerRejected as error:
                self._cancel_refused(rec, source, error.message, say=say_refusal)
                return False
            except BrokerError as error:
                # unknown outcome: stays PENDING_CANCEL (never timed out); polling settles it
                self.journal.append(
                    JournalKind.CANCEL_AMBIGUOUS, rec.client_order_id, source, message=error.message
                )
                self._refresh[rec.client_order_id] = None
        return True

    def _cancel_refused(self, rec: OrderRecord, source: str, why: str, *, say: bool) -> None:
        """The broker refused the cancel request itself: the order works on as it was."""
        self.journal.append(JournalKind.CANCEL_REJECTED, rec.client_order_id, source, message=why)
        if rec.state.is_terminal:  # it ended meanwhile (Alpaca canceled it with its bracket)
            return
        self._commit(rec, self.sm.trigger(rec, Trigger.CANCEL_REJECTED, self.clock()))
        self._refresh[rec.client_order_id] = None
        if say:  # no trade update follows a refusal of the request to say it (activity.py)
            activity_log.warning("cancel refused by the broker: %s keeps working as it was (%s): %s",
                                 describe_order(self.store.view(rec)), rec.client_order_id, why)  # fmt: skip

    async def replace(
        self,
        order_key: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        source: str = "manual",
    ) -> SubmitResult:
        """Replace an open order (Alpaca PATCH /v2/orders/{order_id}).

        ``qty`` is what the replacement will work: Alpaca's replacement is a new order whose
        ``filled_qty`` starts at 0. Default: what is left of the order. The logical order's
        quantity becomes filled so far + the replacement's qty.

        The quantity is always sent, never left out: Alpaca keeps every attribute a PATCH does not
        name ("the other attributes remain the same as the existing order"), and a price-only
        replace of a partially filled order is reported to work the ORIGINAL qty again (Alpaca-API
        #165), which would buy or sell the filled part twice. Because #165 is a broker fault Heron
        cannot rule out, the risk gate checks the worst case Alpaca may work: the larger of the
        quantity sent and the current broker order's quantity. The broker's answer is the truth:
        if the replacement works another quantity than was sent, Heron follows it and says so.
        """
        rec = self.store.find(client_order_id=order_key, broker_order_id=order_key)
        if rec is None or not rec.state.is_open or rec.broker_order_id is None:
            return SubmitResult(
                order_key, rec.state if rec else OrderState.REJECTED, None, "order is not open"
            )
        busy = busy_reason(rec)
        if busy:
            return SubmitResult(rec.client_order_id, rec.state, None, busy)
        meta = self.store.meta(rec.client_order_id)
        new_qty = qty if qty is not None else rec.leaves_qty
        if new_qty is not None and new_qty <= 0:
            why = "nothing left to work: the quantity must be greater than zero"
            return SubmitResult(rec.client_order_id, rec.state, None, why)
        probe = replacement_request(rec, meta, new_qty, limit_price, stop_price)
        checked = replace(probe, qty=worst_qty(rec, qty, new_qty))
        asset = await self._asset(rec.symbol)
        report = self.risk.check(checked, self.risk_context(checked, asset, replacing=rec.client_order_id))
        if not report.passed:
            return SubmitResult(rec.client_order_id, rec.state, report, report.explain())
        wire = ReplaceRequest(qty=new_qty, limit_price=limit_price, stop_price=stop_price)
        async with self._lock(rec.client_order_id):
            message = await self._send_replace(rec, meta, probe, wire, source)
        return SubmitResult(rec.client_order_id, rec.state, report, message)

    async def preview_close(self, request: OrderRequest) -> RiskReport:
        """A close's pre-check before it cancels the symbol's working orders (as if gone); no effects."""
        context = self.risk_context(request, await self._asset(request.symbol))
        return self.risk.preview(request, context.for_close(request.symbol))

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, source: str = "manual"
    ) -> SymbolCloseResult:
        """Close (part of) the broker's position: cancel the symbol's working orders, wait until
        they are gone, then close, retrying refusals until done or the deadline (see
        :mod:`services.orders.closing`). The result says what happened to the position."""
        return await self.closer.close(symbol, qty=qty, source=source)

    async def flatten_all(self, *, source: str = "manual") -> CloseReport:
        """Close every broker position the same way; the report has one result per symbol."""
        return await self.closer.flatten(source=source)

    async def cancel_all(self, *, source: str = "manual") -> int:
        """Cancel every open order Heron knows and every open order the broker lists."""
        count = 0
        for rec in list(self.store.open_orders()):
            if await self.cancel(rec.client_order_id, source=source):
                count += 1
        try:
            listed = await self.broker.list_orders(OrderQuery(status="open"))
        except BrokerError as error:
            log.warning("cancel_all: cannot list open orders: %s", error.message)
            return count
        for order in listed:
            known = self.store.find(client_order_id=order.client_order_id, broker_order_id=order.id)
            if known is not None and known.cancel_requested:
                continue
            try:
                await self.broker.cancel_order(order.id)
                self.journal.append(
                    JournalKind.CANCEL_REQUESTED, order.client_order_id, source, broker_order_id=order.id
                )
                count += 1
            except BrokerError as error:
                log.warning("cancel_all: %s: %s", order.id, error.message)
        return count
