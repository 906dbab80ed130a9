"""Reconciler: the broker is the truth; drift between Heron and the broker becomes an Incident.

- :meth:`Reconciler.startup` compares orders (Heron's open orders by client id against the broker's
  open orders), positions and recent fills (``Broker.get_fills``). Trading is enabled only when it
  is clean; otherwise it stays DISABLED until an operator deals with every incident.
- :meth:`Reconciler.run_cycle` is the continuous check, at most ``max_calls_per_cycle`` broker calls
  per cycle (positions, open orders); position comparison waits for a quiet period after fills,
  and while an order Heron holds open is not yet caught up with the broker (logged once when the
  wait starts and once when it ends; a WARNING once if it outlasts ``max_position_deferral_s``).
- Open orders are read flat (``nested=False``): each leg of a bracket, OCO or OTO is an order of its
  own. Nested, Alpaca does not list a filled parent, and so none of its working legs
  (docs/alpaca-rules.md, "Brackets, OCO, OTO"); a bracket's held stop-loss is its normal state.
- Quantities must match exactly; average prices within 1e-4 relative of a figure Alpaca's method can
  show (weighted average intraday, compressed FIFO from the previous days: see
  :class:`~services.orders.store.LocalPosition`). A quantity drift is ``critical`` (HALTED), a price
  drift ``warning`` (REDUCING), until dealt with.
- An incident closes itself, with a journal record and a notification, once the comparison finds
  local and broker equal again (an outside fill seen in the positions before its trade update).
- Acknowledging a quantity drift does not make Heron trade on its own quantity: until the drift is
  adopted (or closes itself) the symbol is reduce-only at the broker's quantity
  (:meth:`reduce_only_qty`, read by the order engine's risk context), and the same drift, moved only
  by Heron's own fills, is not reported again.
- :meth:`adopt_broker_state` is the explicit, journaled operator action that rewrites local
  positions from the broker (internal adjustment fills, never sent); it settles open and
  acknowledged incidents of the symbol alike.
- Whenever the set of open incidents changes the reconciler publishes
  :class:`~services.domain.events.IncidentsChangedEvent` (the incidents, the worst severity and a
  summary decided in :mod:`services.reconciliation.drift`); the drift banner and the
  reconciliation panel follow it. :meth:`incidents_event` is the same as of now, for a new view.
- The reconciler never sends, cancels or replaces an order. It only reads from the broker.

Coroutines run on the service event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from services.broker.base import Broker, BrokerError, OrderQuery
from services.domain.bus import EventBus
from services.domain.enums import IncidentSeverity, NotificationLevel, TradingState
from services.domain.events import IncidentsChangedEvent, NotificationEvent, PositionsEvent
from services.domain.incidents import Incident, IncidentKind, IncidentResolution
from services.domain.models import Fill, Order, Position
from services.orders.journal import OrderJournal
from services.orders.positions import trading_day
from services.orders.store import OrderStore
from services.reconciliation.deferral import PositionCheckWait
from services.reconciliation.drift import incidents_changed
from services.reconciliation.incident_store import IncidentStore
from services.reconciliation.trade_report import export_trade_report
from services.reconciliation.trade_report import plain as _s
from services.risk.trading_state import TradingStateMachine
from services.storage import Database

log = logging.getLogger(__name__)

#: The broker's open orders, every leg listed as its own order (see the module docstring).
OPEN_ORDERS = OrderQuery(status="open", limit=500, nested=False)
ZERO = Decimal(0)
PRICE_TOLERANCE = Decimal("1e-4")
SOURCE = "reconciliation"


@dataclass(frozen=True, slots=True)
class ReconciliationResult:
    clean: bool
    incidents: tuple[Incident, ...]
    calls: int
    ran_at: datetime


def _seq_of(incident_id: str) -> int:
    tail = incident_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class Reconciler:
    def __init__(
        self,
        broker: Broker,
        store: OrderStore,
        journal: OrderJournal,
        trading: TradingStateMachine,
        bus: EventBus,
        clock: Callable[[], datetime],
        db: Database | None = None,
        *,
        max_calls_per_cycle: int = 3,
        quiet_after_fill_s: float = 5.0,
        fills_lookback: timedelta = timedelta(days=3),
        max_position_deferral_s: float = 60.0,
    ) -> None:
        self.broker = broker
        self.store = store
        self.journal = journal
        self.trading = trading
        self.bus = bus
        self.clock = clock
        self.db = db
        self._db_incidents = IncidentStore(db) if db is not None else None
        self.max_calls = max_calls_per_cycle
        self.quiet = timedelta(seconds=quiet_after_fill_s)
        self.fills_lookback = fills_lookback
        #: Positions are compared only when no execution is in transit (see ``_lagging_order``),
        #: but never postponed longer than this: an order stuck out of sync must not silence drift.
        self._wait = PositionCheckWait(timedelta(seconds=max_position_deferral_s))
        self.incidents: dict[str, Incident] = {}
        self.last_run: datetime | None = None
        #: why the latest cycle was skipped (the broker did not answer), or None when it ran
        self.last_skipped: str | None = None
        self.last_clean: bool | None = None
        self.broker_positions: dict[str, Decimal] = {}
        #: The broker's non-flat positions and open orders as of the last comparison (for review UIs).
        self.broker_position_details: dict[str, Position] = {}
        self.broker_open_orders: list[Order] = []
        #: Set while a known cause explains the drift found (a journal rolled back by a lost
        #: write-ahead log): every incident opened meanwhile names it.
        self.suspected_cause: str | None = None
        self._seq = 0
        self._startup_done = False
        self._escalated = False
        self._load()
        #: the open incident ids last published in an IncidentsChangedEvent
        self._announced = self._open_key()

    # --- public ----------------------------------------------------------------------------------
    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents.values() if i.is_open]

    def incidents_event(self) -> IncidentsChangedEvent:
        """The open incidents, their worst severity and the banner's summary, as of now (a view built
        after the last change starts from this; later changes arrive on the bus)."""
        return incidents_changed(self.clock(), self.open_incidents())

    def _open_key(self) -> tuple[str, ...]:
        return tuple(sorted(i.id for i in self.open_incidents()))

    def _announce(self) -> None:
        """Publish :class:`IncidentsChangedEvent` when the set of open incidents changed."""
        key = self._open_key()
        if key == self._announced:
            return
        self._announced = key
        self.bus.publish(self.incidents_event())

    def restricted_incidents(self) -> list[Incident]:
        """Acknowledged quantity drifts not adopted yet: their symbols trade reduce-only."""
        return [
            i
            for i in self.incidents.values()
            if i.kind is IncidentKind.POSITION_QTY and i.resolution is IncidentResolution.ACKNOWLEDGED
        ]

    def _drift_offsets(self) -> dict[str, Decimal]:
        """Per restricted symbol, broker minus local quantity as the latest acknowledged drift saw it.
        Heron's own later fills move both sides alike, so local + offset stays the broker's quantity."""
        out: dict[str, Decimal] = {}
        for inc in sorted(self.restricted_incidents(), key=lambda i: (i.opened_at, _seq_of(i.id))):
            out[inc.subject] = Decimal(inc.broker_value) - Decimal(inc.local_value)
        return out

    def reduce_only_qty(self, symbol: str) -> Decimal | None:
        """The broker's quantity for a symbol with an acknowledged, unadopted quantity drift (orders
        on it may only reduce that quantity); None when the symbol trades normally."""
        offset = self._drift_offsets().get(symbol)
        if offset is None:
            return None
        return self.store.position_qty(symbol) + offset

    async def startup(self) -> ReconciliationResult:
        """Full comparison; enables trading when clean (call after ``ExecutionEngine.recover``)."""
        found: list[Incident] = []
        calls = 0
        try:
            positions = await self.broker.get_positions()
            self._report_positions(positions)
            open_orders = await self.broker.list_orders(OPEN_ORDERS)
            fills = await self.broker.get_fills(after=self.clock() - self.fills_lookback)
            calls = 3
        except BrokerError as error:
            self.trading.set(
                TradingState.DISABLED, f"start-up reconciliation failed: {error.message}", source=SOURCE
            )
            return ReconciliationResult(False, (), calls, self.clock())
        found += self._compare_positions(positions)
        found += self._compare_open_orders(open_orders)
        found += self._compare_fills(fills)
        result = self._finish(found, calls)
        self._startup_done = True
        if result.clean:
            self.trading.enable()
        else:
            self.trading.set(
                TradingState.DISABLED,
                f"start-up reconciliation found {len(self.open_incidents())} incident(s); operator review",
                source=SOURCE,
            )
        return result

    async def run_cycle(self) -> ReconciliationResult:
        """Continuous reconciliation; at most ``max_calls_per_cycle`` broker calls."""
        found: list[Incident] = []
        calls = 0
        last_fill = self.store.last_fill_at
        now = self.clock()
        quiet = last_fill is None or now - last_fill >= self.quiet
        overdue = self._wait.overdue(now)
        positions: list[Position] | None = None
        try:
            if (quiet or overdue) and calls < self.max_calls:
                positions = await self.broker.get_positions()
                calls += 1
                self._report_positions(positions)
            if calls < self.max_calls:
                open_orders = await self.broker.list_orders(OPEN_ORDERS)
                calls += 1
                found += self._compare_open_orders(open_orders)
                if positions is not None and not overdue:
                    lagging = self._lagging_order(open_orders)
                    if lagging is not None:
                        positions = None
                        self._wait.waiting(lagging)
            if positions is not None and not overdue and self.store.last_fill_at != last_fill:
                positions = None  # a fill was booked while we asked: the snapshot is older than it
            if positions is not None:
                self._wait.compared(now, overdue)
                found += self._compare_positions(positions)
            else:
                self._wait.postponed(now)
        except BrokerError as error:
            # a failed query is not evidence of anything: skip this cycle, never assume flat
            log.info("reconciliation cycle skipped: %s", error.message)
            self.last_skipped = error.message
            return ReconciliationResult(self.last_clean is not False, (), calls, self.clock())
        self.last_skipped = None
        return self._finish(found, calls)

    def _report_positions(self, positions: list[Position]) -> None:
        """Pass the broker's position report on (the positions panel's day P&L comes from it): the
        reconciler reads it anyway, so the figures cost no extra request."""
        self.bus.publish(PositionsEvent(self.clock(), tuple(positions)))

    def acknowledge(self, incident_id: str, operator: str, note: str = "") -> Incident:
        """Operator action: the drift is known. A quantity drift keeps its symbol reduce-only at the
        broker's quantity until adopted (or until local equals broker again)."""
        inc = self.incidents[incident_id]
        if not inc.is_open:
            return inc
        inc = replace(
            inc,
            acknowledged_at=self.clock(),
            acknowledged_by=operator,
            resolution=IncidentResolution.ACKNOWLEDGED,
        )
        self._save(inc)
        self.journal.append("incident_acknowledged", None, f"operator:{operator}", incident=inc.id, note=note)
        self.journal.flush()
        if inc.kind is IncidentKind.POSITION_QTY:
            held = self.reduce_only_qty(inc.subject)
            self.bus.publish(
                NotificationEvent(
                    self.clock(),
                    NotificationLevel.WARNING,
                    SOURCE,
                    f"{inc.subject} stays reduce-only at the broker's quantity {_s(held or ZERO)} "
                    f"(Heron has {_s(self.store.position_qty(inc.subject))}) until the broker's state "
                    "is adopted",
                )
            )
        self._after_operator(operator)
        return inc

    async def adopt_broker_state(self, incident_id: str, operator: str) -> Incident:
        """Operator action: rewrite the local position of the incident's symbol from the broker."""
        inc = self.incidents[incident_id]
        symbol = inc.subject
        pos = await self.broker.get_position(symbol)
        qty = pos.qty if pos else ZERO
        avg = pos.avg_entry_price if pos else ZERO
        local = self.store.positions.get(symbol)
        self.journal.append(
            "operator_adopt_broker_state",
            None,
            f"operator:{operator}",
            incident=inc.id,
            symbol=symbol,
            local_qty=local.qty if local else ZERO,
            local_avg=local.avg_price if local else ZERO,
            broker_qty=qty,
            broker_avg=avg,
        )
        self.journal.flush()
        self.store.book_adjustment(symbol, qty, avg, inc.id)
        inc = replace(
            inc, acknowledged_at=self.clock(), acknowledged_by=operator, resolution=IncidentResolution.ADOPTED
        )
        self._save(inc)
        # any other open or acknowledged incident on the same symbol is settled by the same adoption
        for other in list(self.incidents.values()):
            if (
                other.subject == symbol
                and other.kind.is_position
                and other.resolution in (None, IncidentResolution.ACKNOWLEDGED)
            ):
                self._save(
                    replace(
                        other,
                        acknowledged_at=self.clock(),
                        acknowledged_by=operator,
                        resolution=IncidentResolution.ADOPTED,
                    )
                )
        self._after_operator(operator)
        return self.incidents[inc.id]

    def export_trade_report(self, path: Path) -> int:
        """CSV per symbol: buys, sells, volume, realized P&L (from Heron's fills). Returns rows."""
        return export_trade_report(self.store, path)

    # --- comparisons -----------------------------------------------------------------------------
    def _compare_positions(self, broker_positions: list[Position]) -> list[Incident]:
        out: list[Incident] = []
        broker = {p.symbol: p for p in broker_positions if p.qty != 0}
        self.broker_positions = {s: p.qty for s, p in broker.items()}
        self.broker_position_details = broker
        today = trading_day(self.clock())
        for pos in self.store.positions.values():
            pos.roll(today)  # the broker compresses the previous days' lots at its start of day
        local = {s: p for s, p in self.store.positions.items() if p.qty != 0}
        offsets = self._drift_offsets()
        matched_qty: set[str] = set()
        matched_price: set[str] = set()
        for sym in sorted(set(broker) | set(local) | {i.subject for i in self._position_incidents()}):
            lq = local[sym].qty if sym in local else ZERO
            bq = broker[sym].qty if sym in broker else ZERO
            if lq != bq:
                if offsets.get(sym) == bq - lq:
                    continue  # the acknowledged drift, moved only by Heron's own fills: still reduce-only
                out.append(
                    self._incident(
                        IncidentKind.POSITION_QTY,
                        IncidentSeverity.CRITICAL,
                        sym,
                        _s(lq),
                        _s(bq),
                        f"{sym} quantity differs",
                    )
                )
                continue
            matched_qty.add(sym)
            if sym not in local:
                matched_price.add(sym)
                continue
            ba = broker[sym].avg_entry_price
            accepted = local[sym].accepted_avg_prices()
            if ba == 0 or any(abs(a - ba) / abs(ba) <= PRICE_TOLERANCE for a in accepted):
                matched_price.add(sym)
                continue
            la = local[sym].avg_price
            out.append(
                self._incident(
                    IncidentKind.POSITION_PRICE,
                    IncidentSeverity.WARNING,
                    sym,
                    _s(la),
                    _s(ba),
                    f"{sym} average price differs",
                )
            )
        self._resolve_matched(matched_qty, matched_price)
        return out

    def _position_incidents(self) -> list[Incident]:
        """Position incidents still in force: open, or acknowledged and not adopted."""
        return [
            i
            for i in self.incidents.values()
            if i.kind.is_position and i.resolution in (None, IncidentResolution.ACKNOWLEDGED)
        ]

    def _resolve_matched(self, matched_qty: set[str], matched_price: set[str]) -> None:
        """Close, with a record, the position incidents whose symbol now matches the broker."""
        now = self.clock()
        closed = False
        for inc in self._position_incidents():
            matched = matched_qty if inc.kind is IncidentKind.POSITION_QTY else matched_price
            if inc.subject not in matched:
                continue
            was = inc.resolution or "open"
            inc = replace(
                inc, acknowledged_at=now, acknowledged_by=SOURCE, resolution=IncidentResolution.RESOLVED
            )
            self._save(inc)
            qty = self.broker_positions.get(inc.subject, ZERO)
            self.journal.append(
                "incident_resolved",
                None,
                SOURCE,
                incident=inc.id,
                incident_kind=inc.kind,
                subject=inc.subject,
                was=was,
                qty=qty,
            )
            self.journal.flush()
            what = "quantity" if inc.kind is IncidentKind.POSITION_QTY else "average price"
            self.bus.publish(
                NotificationEvent(
                    now,
                    NotificationLevel.INFO,
                    SOURCE,
                    f"{inc.subject} {what} matches the broker again (qty {_s(qty)}): incident {inc.id} "
                    f"({inc.detail}: local {inc.local_value}, broker {inc.broker_value}) closed",
                )
            )
            log.warning("incident %s closed itself: %s matches the broker again", inc.id, inc.subject)
            closed = True
        if closed:
            self._release(None)

    def _lagging_order(self, broker_open: list[Order]) -> str | None:
        """The client id of an order Heron holds open that is not open at the broker with the same
        filled quantity, or None when every one is. Such an order means an execution Heron has not
        processed yet (a trade update lost in a disconnect or a venue restart, an in-flight submit)
        may already be in the broker's positions: comparing now would report drift that the
        engine's own refresh is about to close, and drift needs an operator. Positions wait for the
        next cycle instead. ``broker_open`` is flat, so a bracket's working legs are in it."""
        by_id = {o.id: o for o in broker_open}
        by_client = {o.client_order_id: o for o in broker_open}
        for rec in self.store.open_orders():
            order = by_id.get(rec.broker_order_id) if rec.broker_order_id else None
            if order is None:
                order = by_client.get(rec.client_order_id)
            if order is None or order.filled_qty != rec.filled_qty:
                return rec.client_order_id
        return None

    def _compare_open_orders(self, broker_open: list[Order]) -> list[Incident]:
        out: list[Incident] = []
        self.broker_open_orders = list(broker_open)
        for order in broker_open:
            rec = self.store.find(client_order_id=order.client_order_id, broker_order_id=order.id)
            if rec is None:
                out.append(
                    self._incident(
                        IncidentKind.UNKNOWN_BROKER_ORDER,
                        IncidentSeverity.WARNING,
                        order.id,
                        "absent",
                        f"{order.side.value} {order.qty} {order.symbol} {order.status.value}",
                        f"open order {order.client_order_id} at the broker is unknown to Heron",
                    )
                )
        return out

    def _compare_fills(self, broker_fills: list[Fill]) -> list[Incident]:
        """Every broker fill of an order Heron knows must be covered by Heron's filled quantity."""
        out: list[Incident] = []
        per_order: dict[str, Decimal] = {}
        for f in broker_fills:
            per_order[f.order_id] = per_order.get(f.order_id, ZERO) + f.qty
        for order_id, qty in sorted(per_order.items()):
            rec = self.store.find(broker_order_id=order_id)
            if rec is None:
                continue  # positions comparison covers outside activity
            leg = rec.legs.get(order_id)
            local = ZERO if leg is None else leg.filled_qty
            if order_id == rec.broker_order_id:
                local += rec.overfill_qty
            if local < qty:
                out.append(
                    self._incident(
                        IncidentKind.MISSING_LOCAL_FILL,
                        IncidentSeverity.CRITICAL,
                        order_id,
                        _s(local),
                        _s(qty),
                        f"fills of {rec.client_order_id} missing locally",
                    )
                )
        return out

    # --- incidents -------------------------------------------------------------------------------
    def _incident(
        self,
        kind: IncidentKind,
        severity: IncidentSeverity,
        subject: str,
        local: str,
        broker: str,
        detail: str,
    ) -> Incident:
        self._seq += 1
        now = self.clock()
        if self.suspected_cause:
            detail = f"{detail} (cause: {self.suspected_cause})"
        return Incident(
            f"inc-{int(now.timestamp())}-{self._seq}", kind, severity, subject, local, broker, detail, now
        )

    def _finish(self, found: list[Incident], calls: int) -> ReconciliationResult:
        now = self.clock()
        known = {i.signature for i in self.incidents.values()}
        new = [i for i in found if i.signature not in known]
        for inc in new:
            self._save(inc)
            self.journal.append(
                "incident_opened",
                None,
                SOURCE,
                incident=inc.id,
                incident_kind=inc.kind,
                subject=inc.subject,
                local=inc.local_value,
                broker=inc.broker_value,
            )
            self.journal.flush()
            self.bus.publish(
                NotificationEvent(
                    now,
                    NotificationLevel.ERROR
                    if inc.severity is IncidentSeverity.CRITICAL
                    else NotificationLevel.WARNING,
                    SOURCE,
                    f"{inc.detail}: local {inc.local_value}, broker {inc.broker_value}",
                )
            )
        open_now = self.open_incidents()
        if open_now and self.trading.state is not TradingState.DISABLED:
            severe = any(i.severity is IncidentSeverity.CRITICAL for i in open_now)
            state = TradingState.HALTED if severe else TradingState.REDUCING
            self.trading.escalate(
                state, f"reconciliation drift: {len(open_now)} open incident(s)", source=SOURCE
            )
            self._escalated = True
        self.last_run = now
        # clean means every quantity matches: an acknowledged drift is not open, but not clean either
        self.last_clean = not open_now and not self.restricted_incidents()
        self._announce()
        return ReconciliationResult(not open_now, tuple(new), calls, now)

    def _after_operator(self, operator: str) -> None:
        self._release(operator)
        self._announce()

    def _release(self, operator: str | None) -> None:
        """Lift what reconciliation imposed once no incident is open (by an operator, or because the
        incidents closed themselves)."""
        if self.open_incidents():
            return
        if self.trading.state is TradingState.DISABLED and self._startup_done:
            self.trading.enable(
                f"start-up incidents dealt with by operator {operator}"
                if operator
                else "start-up incidents closed: local equals broker again"
            )
        elif self._escalated and self.trading.state in (TradingState.REDUCING, TradingState.HALTED):
            if self.trading.reason.startswith("reconciliation drift"):
                if operator:
                    self.trading.operator_resume(operator, "reconciliation incidents acknowledged")
                else:
                    self.trading.set(
                        TradingState.ACTIVE,
                        "reconciliation incidents closed: local equals broker again",
                        source=SOURCE,
                    )
            self._escalated = False
        self.last_clean = not self.restricted_incidents()

    def _save(self, inc: Incident) -> None:
        self.incidents[inc.id] = inc
        if self._db_incidents is not None:
            self._db_incidents.save(inc)

    def _load(self) -> None:
        if self._db_incidents is not None:
            self.incidents.update(self._db_incidents.load())
        self._seq = len(self.incidents)
