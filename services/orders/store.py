"""OrderStore: orders, fills and per-symbol positions as Heron believes them, persisted as they change.

- Orders are indexed by logical client id, every client id they used, and every broker order id.
- Positions are computed from fills only (Decimal, :mod:`services.orders.positions`): signed qty,
  average price, realized P&L; unrealized P&L comes from a :class:`MarkSource`. Reconciliation
  adjustments adopted by an operator are booked as internal adjustment fills, so positions stay
  derivable from the fills table. Rows are encoded and decoded in :mod:`services.orders.rows`.
- Every change is written to the database (synchronously, on the caller's thread) and published on
  the bus: :class:`OrderChangedEvent` per order change, :class:`FillEvent` per booked fill, plus
  :class:`NotificationEvent` for anomalies and alerts.
- Memory is bounded: open orders plus the ``keep_closed`` most recent closed ones; older history
  lives in the database.

Runs on the event-loop thread of its owner; not thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderStatus
from services.domain.events import FillEvent, NotificationEvent, OrderChangedEvent
from services.domain.models import Fill, Order
from services.orders.journal import ROW_ERRORS, sane_amount
from services.orders.positions import LocalPosition
from services.orders.records import Anomaly, ApplyResult, FillMatch, OrderMeta, OrderRecord
from services.orders.rows import fill_from_row, fill_row, order_from_row, order_row
from services.orders.tables import anomalies_table, fills_table, orders_table
from services.orders.transitions import OrderState
from services.orders.writes import WriteBatch
from services.storage import Database
from services.storage.errors import DamagedRowError

log = logging.getLogger(__name__)
ZERO = Decimal(0)


class MarkSource(Protocol):
    def last_price(self, symbol: str) -> Decimal | None: ...


_STATE_TO_STATUS = {
    OrderState.INITIALIZED: OrderStatus.PENDING_NEW,
    OrderState.SUBMITTED: OrderStatus.PENDING_NEW,
    OrderState.ACCEPTED: OrderStatus.NEW,
    OrderState.PENDING_UPDATE: OrderStatus.PENDING_REPLACE,
    OrderState.PENDING_CANCEL: OrderStatus.PENDING_CANCEL,
    OrderState.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.CANCELED: OrderStatus.CANCELED,
    OrderState.EXPIRED: OrderStatus.EXPIRED,
    OrderState.REJECTED: OrderStatus.REJECTED,
    OrderState.DENIED: OrderStatus.REJECTED,
    OrderState.LOST: OrderStatus.REJECTED,
}


class OrderStore:
    """See the module docstring."""

    def __init__(
        self,
        bus: EventBus,
        db: Database | None,
        clock: Callable[[], datetime],
        *,
        marks: MarkSource | None = None,
        keep_closed: int = 500,
        batch: WriteBatch | None = None,
    ) -> None:
        self._bus = bus
        self._db = db
        # share the journal's batch so order rows and fills commit with the journal records
        self._own_batch = batch is None
        self._batch = batch if batch is not None else (WriteBatch(db) if db is not None else None)
        # (order id, execution id) of the fills booked or loaded by this process; anything else is
        # looked up in the database (its primary key) before it is booked: see fill_booked()
        self._fill_keys: set[tuple[str, str]] = set()
        self._clock = clock
        self._marks = marks
        self._keep_closed = keep_closed
        self._records: dict[str, OrderRecord] = {}
        self._meta: dict[str, OrderMeta] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._by_client: dict[str, str] = {}
        self._by_broker: dict[str, str] = {}
        self.positions: dict[str, LocalPosition] = {}
        self.anomalies: list[Anomaly] = []  # the most recent ones (bounded)
        self.fill_count = 0
        self.last_fill_at: datetime | None = None
        # Inferred fill rows this process wrote (and their later reductions), by (order id, execution
        # id): a real execution replaces them without reading rows a refused write left queued.
        self._inferred: OrderedDict[tuple[str, str], tuple[Decimal, Decimal]] = OrderedDict()
        #: symbols whose position must be replayed from the fills table once the queued rows are in
        self.deferred: set[str] = set()

    # --- index -----------------------------------------------------------------------------------
    def add(self, rec: OrderRecord, meta: OrderMeta) -> None:
        self._records[rec.client_order_id] = rec
        self._meta[rec.client_order_id] = meta
        self.index(rec)
        self._persist_order(rec)

    def index(self, rec: OrderRecord) -> None:
        self._by_client[rec.client_order_id] = rec.client_order_id
        self._by_client[rec.current_client_order_id] = rec.client_order_id
        for leg in rec.legs.values():
            self._by_broker[leg.broker_order_id] = rec.client_order_id
            self._by_client[leg.client_order_id] = rec.client_order_id
        if rec.broker_order_id:
            self._by_broker[rec.broker_order_id] = rec.client_order_id
        if rec.pending_replace_client_id:
            self._by_client[rec.pending_replace_client_id] = rec.client_order_id

    def alias(
        self, rec: OrderRecord, *, client_order_id: str | None = None, broker_order_id: str | None = None
    ) -> None:
        if client_order_id:
            self._by_client[client_order_id] = rec.client_order_id
        if broker_order_id:
            self._by_broker[broker_order_id] = rec.client_order_id

    def find(
        self, *, client_order_id: str | None = None, broker_order_id: str | None = None
    ) -> OrderRecord | None:
        key = None
        if broker_order_id:
            key = self._by_broker.get(broker_order_id)
        if key is None and client_order_id:
            key = self._by_client.get(client_order_id)
        return self._records.get(key) if key else None

    def get(self, logical_id: str) -> OrderRecord | None:
        return self._records.get(logical_id)

    def meta(self, logical_id: str) -> OrderMeta | None:
        return self._meta.get(logical_id)

    def orders(self) -> list[OrderRecord]:
        return list(self._records.values())

    def open_orders(self) -> list[OrderRecord]:
        return [r for r in self._records.values() if r.state.is_open or r.state is OrderState.INITIALIZED]

    def counts_by_status(self) -> dict[str, int]:
        """In-memory orders by Alpaca-style status (what the report and blotter show)."""
        out: dict[str, int] = {}
        for r in self._records.values():
            key = self.status_of(r).value
            out[key] = out.get(key, 0) + 1
        return out

    @staticmethod
    def status_of(rec: OrderRecord) -> OrderStatus:
        if rec.broker_status and rec.state not in (OrderState.SUBMITTED, OrderState.INITIALIZED):
            try:
                status = OrderStatus(rec.broker_status)
            except ValueError:
                status = _STATE_TO_STATUS[rec.state]
            if status.is_terminal == rec.state.is_terminal:
                return status
        return _STATE_TO_STATUS[rec.state]

    # --- changes ---------------------------------------------------------------------------------
    def commit(self, rec: OrderRecord, result: ApplyResult) -> None:
        """Book what one state-machine step produced: persist, update positions, publish."""
        now = self._clock()
        self.index(rec)
        # matches before fills: a rest of the same execution is booked under the row written here
        replay = {m.fill.symbol for m in result.matches if self._match_fill(rec, m)}
        for fill in result.fills:
            self._book_fill(rec, fill)
        for symbol in sorted(replay):
            self._replay_position(symbol)
        for anomaly in result.anomalies:
            self._record_anomaly(anomaly)
        if result.alert:
            self._bus.publish(NotificationEvent(now, "warning", "orders", result.alert))
        if result.changed or result.fills:
            self._persist_order(rec)
            self._bus.publish(OrderChangedEvent(now, self.view(rec), rec.source))
        if rec.state.is_terminal and rec.state is not OrderState.LOST:
            self._closed[rec.client_order_id] = None
            self._trim()

    def fill_booked(self, order_id: str, execution_id: str) -> bool:
        """Whether this execution was booked before: by this process (memory) or ever (the database)."""
        key = (order_id, execution_id)
        if key in self._fill_keys:
            return True
        if self._db is None:
            return False
        with self._db.connect() as conn:
            row = conn.execute(
                select(fills_table.c.order_id).where(
                    fills_table.c.order_id == order_id, fills_table.c.execution_id == execution_id
                )
            ).first()
        if row is not None:
            self._fill_keys.add(key)
        return row is not None

    def _book_fill(self, rec: OrderRecord, fill: Fill) -> None:
        if self.fill_booked(fill.order_id, fill.execution_id):
            # an execution booked before (a redelivery for an order no longer held in memory, or
            # replayed after a restart): positions and the fills table already have it
            log.info("duplicate execution %s on %s not booked again", fill.execution_id, fill.order_id)
            return
        pos = self.positions.setdefault(fill.symbol, LocalPosition(fill.symbol))
        pos.apply(fill.side, fill.qty, fill.price, at=fill.ts)
        self.fill_count += 1
        self.last_fill_at = self._clock()
        inferred = fill.execution_id.startswith("inferred:")
        key = (fill.order_id, fill.execution_id)
        if key not in self._fill_keys:
            self._fill_keys.add(key)
            self._write(fill_row(fill, rec.client_order_id, inferred=inferred))
            if inferred:
                self._remember_inferred(key, fill.qty, fill.price)
        self._bus.publish(FillEvent(self._clock(), fill))

    def _match_fill(self, rec: OrderRecord, match: FillMatch) -> bool:
        """Replace the confirmed part of inferred fills by the real execution (see FillMatch).

        The positions already hold the confirmed quantity; only its price may differ from the
        inferred one. Returns True when it does: the caller then replays the symbol's position from
        the fills table, so memory and a restart agree.
        """
        real = match.fill
        key = (real.order_id, real.execution_id)
        if key in self._fill_keys:
            return False
        self._fill_keys.add(key)
        if self._db is None:
            return False
        repriced = False
        for inferred_id, qty in match.inferred:
            row = self._inferred_row(real.order_id, inferred_id)
            if row is None:
                continue
            row_qty, row_price = row
            repriced = repriced or row_price != real.price
            c = fills_table.c
            where = (c.order_id == real.order_id) & (c.execution_id == inferred_id)
            left = row_qty - qty
            if left > 0:
                self._write(update(fills_table).where(where).values(qty=left))
                self._remember_inferred((real.order_id, inferred_id), left, row_price)
            else:
                self._write(delete(fills_table).where(where))
                self._inferred.pop((real.order_id, inferred_id), None)
        self._write(fill_row(real, rec.client_order_id, inferred=False))
        return repriced

    def _remember_inferred(self, key: tuple[str, str], qty: Decimal, price: Decimal) -> None:
        self._inferred[key] = (qty, price)
        self._inferred.move_to_end(key)
        while len(self._inferred) > 5000:  # older ones were committed long ago: read from the table
            self._inferred.popitem(last=False)

    def _inferred_row(self, order_id: str, execution_id: str) -> tuple[Decimal, Decimal] | None:
        """(qty, price) of an inferred fill row: this process's own record of it, else the table's."""
        mine = self._inferred.get((order_id, execution_id))
        if mine is not None or self._db is None:
            return mine
        self.try_flush()
        with self._db.connect() as conn:
            row = conn.execute(
                select(fills_table.c.qty, fills_table.c.price).where(
                    fills_table.c.order_id == order_id, fills_table.c.execution_id == execution_id
                )
            ).first()
        return None if row is None else (row.qty, row.price)

    def _replay_position(self, symbol: str) -> None:
        """Rebuild one symbol's position from its fills rows (as :meth:`load` does for all).

        While the database refuses writes (a full disk) the fills table lacks the queued rows: the
        position in memory (which holds every fill) stays as it is, and the replay waits for
        :meth:`settle_deferred` after the queued rows are committed."""
        if self._db is None:
            return
        if not self.try_flush():
            self.deferred.add(symbol)
            return
        self.deferred.discard(symbol)
        with self._db.connect() as conn:
            rows = conn.execute(
                select(fills_table).where(fills_table.c.symbol == symbol).order_by(fills_table.c.ts)
            ).all()
        pos = LocalPosition(symbol)
        for row in rows:
            m = row._mapping
            volume = m["logical_id"] != "adjustment"
            pos.apply(OrderSide(m["side"]), m["qty"], m["price"], count_volume=volume)
        self.positions[symbol] = pos

    def book_adjustment(self, symbol: str, qty: Decimal, avg_price: Decimal, reference: str) -> None:
        """Set the local position to the broker's (operator's "adopt broker state"). Never sent."""
        pos = self.positions.setdefault(symbol, LocalPosition(symbol))
        fills: list[Fill] = []
        now = self._clock()
        if pos.qty != 0:
            side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
            fills.append(
                Fill(
                    f"adjust:{reference}:close",
                    "adjustment",
                    "adjustment",
                    symbol,
                    side,
                    abs(pos.qty),
                    pos.avg_price,
                    now,
                )
            )
        if qty != 0:
            side = OrderSide.BUY if qty > 0 else OrderSide.SELL
            fills.append(
                Fill(
                    f"adjust:{reference}:open",
                    "adjustment",
                    "adjustment",
                    symbol,
                    side,
                    abs(qty),
                    avg_price,
                    now,
                )
            )
        for f in fills:
            pos.apply(f.side, f.qty, f.price, count_volume=False, at=f.ts)
            self._fill_keys.add((f.order_id, f.execution_id))
            self._write(
                insert(fills_table).values(
                    order_id=f.order_id,
                    execution_id=f.execution_id,
                    client_order_id=f.client_order_id,
                    logical_id="adjustment",
                    symbol=symbol,
                    side=f.side.value,
                    qty=f.qty,
                    price=f.price,
                    ts=f.ts,
                    inferred=True,
                )
            )
        self.flush()  # an operator action: durable at once

    def _write(self, *statements: Any) -> None:
        if self._batch is None:
            return
        self._batch.add(*statements)
        if self._own_batch:
            # a refused write (a full disk, a lock) keeps the rows queued, in order, for the next
            # write that gets through: never an exception out of a fill or an order update
            self._batch.try_flush()

    def flush(self) -> None:
        if self._batch is not None:
            self._batch.flush()

    @property
    def pending(self) -> int:
        """Rows of this store's own write batch not committed yet (0 when it shares the journal's)."""
        return self._batch.pending if self._batch is not None and self._own_batch else 0

    @property
    def failing(self) -> str | None:
        return self._batch.failing if self._batch is not None else None

    def try_flush(self) -> bool:
        """Commit the queued order and fill rows if the database takes them (False: kept queued)."""
        return self._batch.try_flush() if self._batch is not None else True

    def settle_deferred(self) -> None:
        """Replay the positions a refused write left waiting (see :meth:`_replay_position`)."""
        for symbol in sorted(self.deferred):
            self._replay_position(symbol)

    def _record_anomaly(self, anomaly: Anomaly) -> None:
        # A fill booked from an order snapshot before its execution report arrives is routine (the
        # local exchange fills market orders within the POST; a REST poll after a stream outage
        # does the same): recorded and logged, but not pushed at the trader like a real anomaly.
        # An answer older than what the stream already said (the POST's answer, taken at acceptance,
        # arriving after the fill event: Alpaca fills asynchronously) shows a lower filled_qty; fills
        # are never taken back, so it is ignored as the stale view it is.
        routine = anomaly.kind in ("inferred_fill", "filled_qty_regressed")
        if anomaly.kind == "inferred_fill":  # a trader reading "anomaly" on every fill stops reading
            log.info("fill booked from the order snapshot on %s: %s", anomaly.order_key, anomaly.detail)
        elif routine:
            log.info("an older view of %s ignored: %s", anomaly.order_key, anomaly.detail)
        else:
            log.warning("order anomaly %s on %s: %s", anomaly.kind, anomaly.order_key, anomaly.detail)
        self.anomalies.append(anomaly)
        del self.anomalies[:-200]
        self._write(
            insert(anomalies_table).values(
                ts=anomaly.ts, kind=anomaly.kind, client_order_id=anomaly.order_key, detail=anomaly.detail
            )
        )
        if not routine:
            text = f"{anomaly.kind}: {anomaly.order_key}: {anomaly.detail}"
            self._bus.publish(NotificationEvent(self._clock(), "warning", "orders", text))

    def _trim(self) -> None:
        while len(self._closed) > self._keep_closed:
            key, _ = self._closed.popitem(last=False)
            rec = self._records.pop(key, None)
            self._meta.pop(key, None)
            if rec is None:
                continue
            for cid in [c for c, k in self._by_client.items() if k == key]:
                del self._by_client[cid]
            for bid in [b for b, k in self._by_broker.items() if k == key]:
                del self._by_broker[bid]

    def forget(self, logical_id: str) -> None:
        """Drop an order from memory (it stays in the database)."""
        self._closed[logical_id] = None
        keep, self._keep_closed = self._keep_closed, 0
        try:
            self._trim_one(logical_id)
        finally:
            self._keep_closed = keep

    def _trim_one(self, key: str) -> None:
        self._closed.pop(key, None)
        self._records.pop(key, None)
        self._meta.pop(key, None)
        for cid in [c for c, k in self._by_client.items() if k == key]:
            del self._by_client[cid]
        for bid in [b for b, k in self._by_broker.items() if k == key]:
            del self._by_broker[bid]

    # --- views -----------------------------------------------------------------------------------
    def view(self, rec: OrderRecord) -> Order:
        """A domain :class:`Order` for UIs: Heron's belief, with Alpaca's status spelling."""
        meta = self._meta.get(rec.client_order_id) or OrderMeta(created_at=self._clock())
        snap = rec.snapshot
        updated = rec.updated_at or meta.created_at
        limit, stop = (snap.limit_price, snap.stop_price) if snap else meta.shown_prices()
        return Order(
            id=rec.broker_order_id or "",
            client_order_id=rec.current_client_order_id,
            symbol=rec.symbol,
            side=rec.side,
            type=snap.type if snap else meta.type,
            time_in_force=snap.time_in_force if snap else meta.time_in_force,
            status=self.status_of(rec),
            qty=rec.qty,
            filled_qty=rec.filled_qty,
            filled_avg_price=rec.avg_fill_price,
            limit_price=limit,
            stop_price=stop,
            created_at=meta.created_at,
            updated_at=max(updated, meta.created_at),
            submitted_at=meta.created_at,
            notional=snap.notional if snap else None,
            trail_price=snap.trail_price if snap else None,
            trail_percent=snap.trail_percent if snap else None,
            hwm=snap.hwm if snap else None,
            order_class=snap.order_class if snap else meta.order_class,
        )

    def position_qty(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.qty if pos else ZERO

    def unrealized(self, symbol: str) -> Decimal | None:
        pos = self.positions.get(symbol)
        if pos is None or self._marks is None:
            return None
        return pos.unrealized(self._marks.last_price(symbol))

    def realized_total(self) -> Decimal:
        return sum((p.realized_pl for p in self.positions.values()), ZERO)

    # --- persistence -----------------------------------------------------------------------------
    def _persist_order(self, rec: OrderRecord) -> None:
        if self._db is None:
            return
        meta = self._meta.get(rec.client_order_id) or OrderMeta(created_at=self._clock())
        self._write(
            delete(orders_table).where(orders_table.c.client_order_id == rec.client_order_id),
            insert(orders_table).values(**order_row(rec, meta, self._clock())),
        )

    def load(self) -> int:
        """Rebuild open orders (and the recent closed ones) and all positions from the database.

        A row that cannot be read back (damaged JSON, a missing field, an absurd amount) raises
        :class:`DamagedRowError` naming the database, the table and the row; nothing is half-loaded
        into the positions the caller sees.
        """
        if self._db is None:
            return 0
        self.flush()
        with self._db.connect() as conn:
            fill_rows = self._fetch(conn, fills_table, fills_table.c.ts, ("order_id", "execution_id"))
            order_rows = self._fetch(conn, orders_table, orders_table.c.created_at, ("client_order_id",))
        positions: dict[str, LocalPosition] = {}
        fill_keys: set[tuple[str, str]] = set()
        exec_ids: dict[str, set[tuple[str, str]]] = {}
        for row in fill_rows:
            m = row._mapping
            try:
                side = OrderSide(m["side"])
                sane_amount("qty", m["qty"])
                if m["price"] != 0:
                    sane_amount("price", m["price"])
                pos = positions.setdefault(m["symbol"], LocalPosition(m["symbol"]))
                counted = m["logical_id"] != "adjustment"
                pos.apply(side, m["qty"], m["price"], count_volume=counted, at=m["ts"])
            except ROW_ERRORS as error:
                raise self._damaged("order_fills", f"{m['order_id']}/{m['execution_id']}", error) from error
            exec_ids.setdefault(m["logical_id"], set()).add((m["order_id"], m["execution_id"]))
            fill_keys.add((m["order_id"], m["execution_id"]))
        loaded: list[tuple[OrderRecord, OrderMeta]] = []
        for row in order_rows:
            m = row._mapping
            try:
                rec, meta = order_from_row(m)
            except ROW_ERRORS as error:
                raise self._damaged("orders", repr(m["client_order_id"]), error) from error
            rec.exec_ids = exec_ids.get(rec.client_order_id, set())
            loaded.append((rec, meta))
        self.positions.clear()
        self.positions.update(positions)
        self._fill_keys |= fill_keys
        self.fill_count += len(fill_rows)
        for rec, meta in loaded:
            self._records[rec.client_order_id] = rec
            self._meta[rec.client_order_id] = meta
            self.index(rec)
            if rec.state.is_terminal and rec.state is not OrderState.LOST:
                self._closed[rec.client_order_id] = None
        self._trim()
        return len(self._records)

    def _fetch(self, conn: Any, table: Any, order: Any, key: tuple[str, ...]) -> list[Any]:
        """Every row of ``table``; a typed column that cannot be decoded (a damaged time or amount)
        fails the fetch itself, so the row is then found by reading the keys alone."""
        ordering = (order, *(table.c[k] for k in key))
        try:
            return list(conn.execute(select(table).order_by(*ordering)).all())
        except ROW_ERRORS as error:
            bad = "?"
            good = 0
            with contextlib.suppress(*ROW_ERRORS):
                for _row in conn.execute(select(table).order_by(*ordering)):
                    good += 1
            keys = conn.execute(select(*(table.c[k] for k in key)).order_by(*ordering)).all()
            if good < len(keys):
                bad = "/".join(str(v) for v in keys[good])
            raise self._damaged(table.name, bad, error) from error

    def _damaged(self, table: str, key: str, error: BaseException) -> DamagedRowError:
        problem = (
            f"the field {error} is missing"
            if isinstance(error, KeyError)
            else (str(error) or type(error).__name__)
        )
        where = self._db.display_url if self._db is not None else "(none)"
        return DamagedRowError(
            f"the database {where} is damaged: {table} row {key} is unreadable ({problem})"
        )

    def fills_history(self, symbols: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every stored fill (for the trade report), oldest first."""
        if self._db is None:
            return []
        wanted = set(symbols) if symbols is not None else None
        self.flush()
        with self._db.connect() as conn:
            rows = conn.execute(select(fills_table).order_by(fills_table.c.ts)).all()
        return [dict(r._mapping) for r in rows if wanted is None or r._mapping["symbol"] in wanted]

    def recent_fills(self, limit: int, since: datetime | None = None) -> list[Fill]:
        """The newest ``limit`` stored fills (at or after ``since``), oldest first: what a panel
        shows at start. Raises the database's errors."""
        if self._db is None or limit <= 0:
            return []
        self.flush()
        query = select(fills_table).order_by(fills_table.c.ts.desc()).limit(limit)
        if since is not None:
            query = query.where(fills_table.c.ts >= since)
        with self._db.connect() as conn:
            rows = conn.execute(query).all()
        return [fill_from_row(r._mapping) for r in reversed(rows)]
