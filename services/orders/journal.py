"""Journal before wire: every intent is durably committed before its POST leaves the process.

``record_intent`` commits the intent row and its journal record in one transaction (SQLite in WAL
mode with ``synchronous=FULL``, or any SQLAlchemy database) and only then returns; the engine sends
the POST after it returns. Every later step (sent, acked, rejected, ambiguous, resolved, lost,
fills, state changes, operator actions, trading-state changes, kill switch) is appended as a
record; nothing is ever updated in ``order_journal``. ``in_flight()`` lists the intents whose
outcome the broker has not yet told us, which start-up resolves by client-id lookup.

Client order ids are deterministic and carry their source: ``hr-<source>-<base32 ms>-<counter>``
with source ``m`` (manual ticket), ``s-<strategy>`` or ``k`` (kill switch); replacements are
``<base>-r<n>``. All ids are at most 48 characters (Alpaca's limit).

Calls are synchronous and block for one commit (about a millisecond on a local SSD); they run on
the event-loop thread of the owner, which is what orders the write before the POST.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select, update

from services.domain.enums import JournalKind, OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.orders.tables import intents_table, journal_table
from services.orders.writes import WriteBatch
from services.storage import Database
from services.storage.errors import DamagedRowError

#: What a damaged stored row raises while it is decoded (bad JSON, a missing field, a bad value).
ROW_ERRORS: Final = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
#: Quantities and prices read back from the database must lie in (0, STORED_MAX]; anything else
#: is damage, not an order Heron wrote.
STORED_MAX: Final = Decimal(10) ** 12


class IntentStatus(StrEnum):
    """An intent's status in ``order_intents``; each settlement is also journaled under the same
    :class:`JournalKind`. Stored values, like the kinds: never change one."""

    IN_FLIGHT = "in_flight"
    ACKED = "acked"
    REJECTED = "rejected"
    RESOLVED = "resolved"
    LOST = "lost"


def sane_amount(name: str, value: Decimal | None) -> None:
    """Raise ValueError unless ``value`` is None or a finite amount in (0, STORED_MAX]."""
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value <= STORED_MAX:
        raise ValueError(f"{name} {value!r} is not a sane amount")


MAX_CLIENT_ID: Final = 48
#: With no intent in flight here, how often :meth:`OrderJournal.in_flight` still reads the table (s).
REREAD_S: Final = 30.0
_REPLACE_SUFFIX: Final = re.compile(r"-r(\d+)$")
_B32: Final = "0123456789abcdefghijklmnopqrstuv"
_SOURCE_OK: Final = re.compile(r"[^a-z0-9]+")


def _b32(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 32)
        out.append(_B32[r])
    return "".join(reversed(out))


def source_tag(source: str) -> str:
    """``manual`` → ``m``, ``strategy:NAME`` → ``s-name``, ``kill-switch`` → ``k``; else ``x-...``."""
    if source == "manual":
        return "m"
    if source == "kill-switch":
        return "k"
    if source.startswith("strategy:"):
        name = _SOURCE_OK.sub("", source.removeprefix("strategy:").lower())[:16] or "anon"
        return f"s-{name}"
    return "x-" + (_SOURCE_OK.sub("", source.lower())[:12] or "other")


def source_from_client_id(client_order_id: str) -> str:
    """Inverse of :func:`source_tag` for the report ("external" for ids Heron did not make)."""
    if not client_order_id.startswith("hr-"):
        return "external"
    rest = client_order_id[3:]
    if rest.startswith("m-"):
        return "manual"
    if rest.startswith("k-"):
        return "kill-switch"
    if rest.startswith("s-"):
        return "strategy:" + rest[2:].split("-", 1)[0]
    return "external"


def replace_client_id(current: str, logical: str) -> str:
    """Deterministic id of the next replacement: ``<logical>-r<n+1>``, kept within 48 characters."""
    m = _REPLACE_SUFFIX.search(current)
    n = int(m.group(1)) + 1 if m and current.startswith(logical) else 1
    suffix = f"-r{n}"
    return logical[: MAX_CLIENT_ID - len(suffix)] + suffix


def request_to_json(request: OrderRequest) -> dict[str, Any]:
    def leg(spec: OrderLegSpec | None) -> dict[str, str | None] | None:
        if spec is None:
            return None
        return {"limit_price": _s(spec.limit_price), "stop_price": _s(spec.stop_price)}

    return {
        "symbol": request.symbol,
        "side": request.side.value,
        "type": request.type.value,
        "time_in_force": request.time_in_force.value,
        "qty": _s(request.qty),
        "notional": _s(request.notional),
        "limit_price": _s(request.limit_price),
        "stop_price": _s(request.stop_price),
        "trail_price": _s(request.trail_price),
        "trail_percent": _s(request.trail_percent),
        "extended_hours": request.extended_hours,
        "order_class": request.order_class.value,
        "take_profit": leg(request.take_profit),
        "stop_loss": leg(request.stop_loss),
        "client_order_id": request.client_order_id,
    }


def request_from_json(data: dict[str, Any]) -> OrderRequest:
    def d(key: str, src: dict[str, Any] | None = None) -> Decimal | None:
        v = (src if src is not None else data).get(key)
        return Decimal(v) if v is not None else None

    def leg(key: str) -> OrderLegSpec | None:
        v = data.get(key)
        return None if v is None else OrderLegSpec(d("limit_price", v), d("stop_price", v))

    return OrderRequest(
        symbol=data["symbol"],
        side=OrderSide(data["side"]),
        type=OrderType(data["type"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        qty=d("qty"),
        notional=d("notional"),
        limit_price=d("limit_price"),
        stop_price=d("stop_price"),
        trail_price=d("trail_price"),
        trail_percent=d("trail_percent"),
        extended_hours=bool(data.get("extended_hours", False)),
        order_class=OrderClass(data.get("order_class", "simple")),
        take_profit=leg("take_profit"),
        stop_loss=leg("stop_loss"),
        client_order_id=data.get("client_order_id"),
    )


def _s(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class IntentRow:
    """One journaled intent whose outcome is (or was) in question."""

    client_order_id: str
    logical_id: str
    source: str
    created_at: datetime
    request: OrderRequest
    status: str  # an IntentStatus value, as stored
    broker_order_id: str | None
    post_deadline: datetime
    not_found_count: int
    last_not_found_at: datetime | None


class OrderJournal:
    """Append-only, durable record of intents and everything that happened to them."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        post_timeout_s: float = 10.0,
        batch: WriteBatch | None = None,
    ) -> None:
        self._db = db
        self.batch = batch or WriteBatch(db)
        self._status: dict[str, str] = {}  # intent status cache for this process
        #: the intents in flight as this process knows them, once the journal was read (None before):
        #: the engine asks every poll, and with none in flight the answer needs no query; the table
        #: is still read every REREAD_S, for a writer other than this journal
        self._open: set[str] | None = None
        self._read_at = 0.0
        self._clock = clock
        self._post_timeout = timedelta(seconds=post_timeout_s)
        self._counter = 0
        self._last_ms = -1

    # --- ids -------------------------------------------------------------------------------------
    def new_client_order_id(self, source: str) -> str:
        """``hr-<source>-<base32 ms>-<counter>``; unique per journal (checked at record_intent)."""
        now_ms = int(self._clock().timestamp() * 1000)
        if now_ms != self._last_ms:
            self._last_ms = now_ms
            self._counter = 0
        self._counter += 1
        tag = source_tag(source)
        cid = f"hr-{tag}-{_b32(now_ms)}-{_b32(self._counter)}"
        # leave room for "-r<n>" replacement suffixes
        return cid[: MAX_CLIENT_ID - 5]

    # --- writes ----------------------------------------------------------------------------------
    def record_intent(self, request: OrderRequest, source: str, *, logical_id: str | None = None) -> None:
        """Durably write the intent (committed) before the POST. Raises if the id was used before."""
        cid = request.client_order_id
        if not cid or len(cid) > MAX_CLIENT_ID:
            raise ValueError(f"client_order_id must be 1-{MAX_CLIENT_ID} characters, got {cid!r}")
        now = self._clock()
        payload = request_to_json(request)
        with self.batch.transaction() as conn:  # queued records first, then the intent: one commit
            conn.execute(
                intents_table.insert().values(
                    client_order_id=cid,
                    logical_id=logical_id or cid,
                    source=source,
                    created_at=now,
                    request=json.dumps(payload),
                    status=IntentStatus.IN_FLIGHT.value,
                    broker_order_id=None,
                    post_deadline=now + self._post_timeout,
                    not_found_count=0,
                    last_not_found_at=None,
                )
            )
            conn.execute(
                journal_table.insert().values(
                    ts=now,
                    kind=JournalKind.INTENT.value,
                    client_order_id=cid,
                    source=source,
                    payload=json.dumps(payload),
                )
            )
        self._status[cid] = IntentStatus.IN_FLIGHT
        if self._open is not None:
            self._open.add(cid)

    def append(
        self, kind: JournalKind | str, client_order_id: str | None, source: str, **payload: Any
    ) -> None:
        """Queue one record (sent, acked, fill, state, operator action, trading state, kill switch...).

        ``kind``: a :class:`JournalKind` (a plain string is stored as it is).

        Committed with the next intent or the next :meth:`flush`; operator and trading-state
        records are flushed at once by their callers (``durable=True`` semantics via :meth:`flush`).
        """
        self.batch.add(
            journal_table.insert().values(
                ts=self._clock(),
                kind=str(kind),
                client_order_id=client_order_id,
                source=source,
                payload=json.dumps(_jsonable(payload)),
            )
        )

    def flush(self) -> None:
        """Commit every queued record now."""
        self.batch.flush()

    def settle(
        self,
        client_order_id: str,
        status: IntentStatus,
        *,
        broker_order_id: str | None = None,
        **payload: Any,
    ) -> None:
        """Record the broker's answer for an intent (acked / rejected / resolved / lost), journaled
        under the kind of the same name."""
        values: dict[str, Any] = {"status": str(status)}
        if broker_order_id is not None:
            values["broker_order_id"] = broker_order_id
        self.batch.add(
            update(intents_table).where(intents_table.c.client_order_id == client_order_id).values(**values),
            journal_table.insert().values(
                ts=self._clock(),
                kind=str(status),
                client_order_id=client_order_id,
                source="engine",
                payload=json.dumps(_jsonable({"broker_order_id": broker_order_id, **payload})),
            ),
        )
        if len(self._status) > 20_000:
            self._status.clear()  # a cache only; misses fall back to the database
        self._status[client_order_id] = status
        if self._open is not None:
            if status == IntentStatus.IN_FLIGHT:
                self._open.add(client_order_id)
            else:
                self._open.discard(client_order_id)

    def note_not_found(self, client_order_id: str) -> IntentRow | None:
        """Count one authoritative "not found" answer for an in-flight intent."""
        now = self._clock()
        with self.batch.transaction() as conn:
            conn.execute(
                update(intents_table)
                .where(intents_table.c.client_order_id == client_order_id)
                .values(not_found_count=intents_table.c.not_found_count + 1, last_not_found_at=now)
            )
            conn.execute(
                journal_table.insert().values(
                    ts=now,
                    kind=JournalKind.NOT_FOUND.value,
                    client_order_id=client_order_id,
                    source="engine",
                    payload="{}",
                )
            )
        return self.intent(client_order_id)

    # --- reads -----------------------------------------------------------------------------------
    def is_in_flight(self, client_order_id: str) -> bool:
        """Cheap check (cached for intents this process has seen)."""
        status = self._status.get(client_order_id)
        if status is None:
            row = self.intent(client_order_id)
            status = row.status if row is not None else "none"
            self._status[client_order_id] = status
        return status == IntentStatus.IN_FLIGHT

    def has_intent(self, client_order_id: str) -> bool:
        """Whether an intent with this id was ever journaled. Intents are committed by
        :meth:`record_intent` itself, so the answer never depends on the queued rows: a database
        that refuses writes (a full disk) does not stop this read."""
        self.batch.try_flush()
        with self._db.connect() as conn:
            row = conn.execute(
                select(intents_table.c.client_order_id).where(
                    intents_table.c.client_order_id == client_order_id
                )
            ).first()
        return row is not None

    def intent(self, client_order_id: str) -> IntentRow | None:
        """The intent's row; its status is this process's latest (a settle may still be queued when
        the database refuses writes)."""
        self.batch.try_flush()
        with self._db.connect() as conn, self._reading("order_intents", repr(client_order_id)):
            row = conn.execute(
                select(intents_table).where(intents_table.c.client_order_id == client_order_id)
            ).first()
        return None if row is None else self._current(self._row(row._mapping))

    def in_flight(self) -> list[IntentRow]:
        """Intents sent (or about to be) whose outcome the broker has not settled, oldest first."""
        self.batch.try_flush()
        if self._open is not None and not self._open and time.monotonic() - self._read_at < REREAD_S:
            return []  # read lately, and every intent since has been settled
        with self._db.connect() as conn, self._reading("order_intents", "of an in-flight intent"):
            rows = conn.execute(
                select(intents_table)
                .where(intents_table.c.status == IntentStatus.IN_FLIGHT.value)
                .order_by(intents_table.c.created_at)
            ).all()
        out = [self._current(self._row(r._mapping)) for r in rows]
        flying = [r for r in out if r.status == IntentStatus.IN_FLIGHT]
        self._open = {r.client_order_id for r in flying}
        self._read_at = time.monotonic()
        return flying

    def _current(self, row: IntentRow) -> IntentRow:
        status = self._status.get(row.client_order_id)
        if status is None or status == row.status or self.batch.pending == 0:
            return row
        return replace(row, status=status)  # settled here, the row's update still queued

    @contextmanager
    def _reading(self, table: str, key: str) -> Iterator[None]:
        """A typed column that cannot be decoded (a damaged time or amount) fails the fetch itself."""
        try:
            yield
        except ROW_ERRORS as error:
            raise self._damaged(table, key, error) from error

    def _damaged(self, table: str, key: str, error: BaseException) -> DamagedRowError:
        problem = str(error) or type(error).__name__
        if isinstance(error, KeyError):
            problem = f"the field {error} is missing"
        return DamagedRowError(
            f"the database {self._db.display_url} is damaged: {table} row {key} is unreadable ({problem})"
        )

    def records(self) -> Iterator[dict[str, Any]]:
        self.batch.flush()
        with self._db.connect() as conn:
            for row in conn.execute(select(journal_table).order_by(journal_table.c.seq)):
                yield self._decode_record(row._mapping)

    def last_record(self, kinds: tuple[JournalKind, ...]) -> dict[str, Any] | None:
        """The newest record of one of ``kinds`` (same shape as :meth:`records`), or None."""
        self.batch.flush()
        with self._db.connect() as conn, self._reading("order_journal", f"of kind {'/'.join(kinds)}"):
            row = conn.execute(
                select(journal_table)
                .where(journal_table.c.kind.in_([str(k) for k in kinds]))
                .order_by(journal_table.c.seq.desc())
                .limit(1)
            ).first()
        return None if row is None else self._decode_record(row._mapping)

    def export_ndjson(self, path: Path) -> int:
        """Write every journal record, one JSON object per line, for audit; returns the count."""
        count = 0
        with Path(path).open("w", encoding="utf-8") as fh:
            for rec in self.records():
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                count += 1
        return count

    def _decode_record(self, m: Any) -> dict[str, Any]:
        try:
            return _record(m)
        except ROW_ERRORS as error:
            raise self._damaged("order_journal", f"seq {m['seq']}", error) from error

    def _row(self, m: Any) -> IntentRow:
        try:
            return self._intent_row(m)
        except ROW_ERRORS as error:
            raise self._damaged("order_intents", repr(m["client_order_id"]), error) from error

    @staticmethod
    def _intent_row(m: Any) -> IntentRow:
        data = json.loads(m["request"])
        if not isinstance(data, dict):
            raise ValueError(f"the request is a JSON {type(data).__name__}, not an object")
        request = request_from_json(data)
        for name in ("qty", "notional", "limit_price", "stop_price", "trail_price", "trail_percent"):
            sane_amount(name, getattr(request, name))
        return IntentRow(
            client_order_id=m["client_order_id"],
            logical_id=m["logical_id"],
            source=m["source"],
            created_at=m["created_at"],
            request=request,
            status=m["status"],
            broker_order_id=m["broker_order_id"],
            post_deadline=m["post_deadline"],
            not_found_count=int(m["not_found_count"]),
            last_not_found_at=m["last_not_found_at"],
        )


def _record(m: Any) -> dict[str, Any]:
    """One journal row as the dict :meth:`OrderJournal.records` yields."""
    payload = json.loads(m["payload"])
    if not isinstance(payload, dict):
        raise ValueError(f"the payload is a JSON {type(payload).__name__}, not an object")
    return {
        "seq": m["seq"],
        "ts": m["ts"].isoformat(),
        "kind": m["kind"],
        "client_order_id": m["client_order_id"],
        "source": m["source"],
        "payload": payload,
    }
