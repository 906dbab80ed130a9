"""SQLite persistence for the venue: account, orders, positions, activities, equity series.

Every state change is written in one transaction before the venue answers or publishes the trade
update (WAL, synchronous=NORMAL: a SIGKILL of the exchange loses nothing that was committed; only
an OS crash could lose the last commits). Orders are stored as JSON records plus the columns the
venue looks them up by; the client_order_id column is UNIQUE, so used ids survive restarts.

Each store that opens the file claims the next writer number (``writer_epoch`` in kv); a write
checks, inside its transaction, that no newer store has opened the file since, so an exchange left
running beside a newer one on the same file writes nothing more. Within its own claim, a write never
puts back a row it did not change, and never overwrites a row another process
changed: the store remembers what it last read or wrote of every account key, position and order
(an order by its ``version`` column), skips a value that is unchanged, and updates a row only where
it still holds that remembered value. A row changed under it (a second exchange on the same file,
which the data-directory lock of ``__main__`` already forbids) makes the whole batch roll back with
:class:`StaleStateError`; nothing of it is written. Activities and equity points are appended.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.exchange.ledger import Holding
from services.exchange.orders import VenueOrder

SCHEMA_VERSION = 1

_PositionRow = tuple[str, str, str | None]  # qty, avg_entry_price, lots (JSON) as stored


class StaleStateError(RuntimeError):
    """A row this store meant to update was changed by another writer since it last read it."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_created ON orders(created_at);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY, qty TEXT NOT NULL, avg_entry_price TEXT NOT NULL, lots TEXT
);
CREATE TABLE IF NOT EXISTS activities (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS equity (ts INTEGER PRIMARY KEY, equity TEXT NOT NULL);
"""


@dataclass
class Snapshot:
    """Everything the venue needs to resume."""

    kv: dict[str, str] = field(default_factory=dict)
    orders: list[VenueOrder] = field(default_factory=list)
    positions: list[Holding] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    equity: list[tuple[int, Decimal]] = field(default_factory=list)


class VenueStore:
    """One SQLite file, ``venue.sqlite3`` under the exchange's data directory. Loop thread only."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "venue.sqlite3"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(positions)")}
        if "lots" not in columns:  # a file written before positions kept their lots
            self._db.execute("ALTER TABLE positions ADD COLUMN lots TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}
        if "version" not in columns:  # a file written before orders carried their version
            self._db.execute("ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
        self._db.execute(
            "INSERT OR IGNORE INTO kv(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        # What this store last read or wrote: a write updates a row only where it still holds this.
        self._kv: dict[str, str] = {}
        self._positions: dict[str, _PositionRow] = {}
        self._versions: dict[str, int] = {}
        self._epoch = self._claim()
        self._remember()

    def _claim(self) -> int:
        """Become the file's writer: the next writer number, committed before anything else."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM kv WHERE key = 'writer_epoch'").fetchone()
            epoch = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES ('writer_epoch', ?)", (str(epoch),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        return epoch

    def _remember(self) -> None:
        db = self._db
        self._kv = dict(db.execute("SELECT key, value FROM kv").fetchall())
        self._positions = {
            sym: (q, p, lots)
            for sym, q, p, lots in db.execute("SELECT symbol, qty, avg_entry_price, lots FROM positions")
        }
        self._versions = dict(db.execute("SELECT id, version FROM orders").fetchall())

    def close(self) -> None:
        self._db.close()

    def load(self) -> Snapshot:
        self._remember()
        snap = Snapshot()
        snap.kv = dict(self._db.execute("SELECT key, value FROM kv").fetchall())
        snap.orders = [
            VenueOrder.from_record(json.loads(data))
            for (data,) in self._db.execute("SELECT data FROM orders ORDER BY created_at")
        ]
        # a position stored without its lots is one lot carried from an earlier day
        snap.positions = [
            Holding.from_record(sym, json.loads(lots)) if lots else Holding(sym, Decimal(q), Decimal(p))
            for sym, q, p, lots in self._db.execute(
                "SELECT symbol, qty, avg_entry_price, lots FROM positions"
            )
        ]
        snap.activities = [
            json.loads(d) for (d,) in self._db.execute("SELECT data FROM activities ORDER BY seq")
        ]
        snap.equity = [
            (ts, Decimal(e)) for ts, e in self._db.execute("SELECT ts, equity FROM equity ORDER BY ts")
        ]
        return snap

    def write(
        self,
        *,
        kv: dict[str, str] | None = None,
        orders: Iterable[VenueOrder] = (),
        positions: dict[str, Holding | None] | None = None,
        activities: Iterable[dict[str, Any]] = (),
        equity: Iterable[tuple[int, Decimal]] = (),
    ) -> None:
        """Apply one batch of changes atomically. ``positions`` maps a symbol to None when it closed.

        Unchanged account keys and positions are not written; a row changed by another writer since
        this store last saw it raises :class:`StaleStateError` and nothing of the batch is written."""
        db = self._db
        kv_new = {k: v for k, v in (kv or {}).items() if self._kv.get(k) != v}
        pos_new: dict[str, _PositionRow | None] = {}
        for sym, h in (positions or {}).items():
            row = None if h is None else (str(h.qty), str(h.avg_entry_price), json.dumps(h.to_record()))
            if self._positions.get(sym) != row:
                pos_new[sym] = row
        order_rows = [
            (o.id, o.client_order_id, o.symbol, o.status, o.created_at.isoformat(), json.dumps(o.to_record()))
            for o in orders
        ]
        db.execute("BEGIN IMMEDIATE")
        try:
            self._check_writer()
            self._write_kv(kv_new)
            self._write_positions(pos_new)
            versions = self._write_orders(order_rows)
            acts = [(json.dumps(a),) for a in activities]
            if acts:
                db.executemany("INSERT INTO activities(data) VALUES (?)", acts)
            points = [(ts, str(e)) for ts, e in equity]
            if points:
                db.executemany("INSERT OR REPLACE INTO equity(ts, equity) VALUES (?, ?)", points)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        self._kv.update(kv_new)
        for sym, new in pos_new.items():
            if new is None:
                self._positions.pop(sym, None)
            else:
                self._positions[sym] = new
        self._versions.update(versions)

    def _check_writer(self) -> None:
        """Refuse to write when another exchange opened the database since this one."""
        row = self._db.execute("SELECT value FROM kv WHERE key = 'writer_epoch'").fetchone()
        if row is None or row[0] != str(self._epoch):
            raise StaleStateError(
                f"{self.path} was opened by another exchange since this one (writer "
                f"{row[0] if row else 'unknown'}, this is writer {self._epoch}); refusing to write"
            )

    def _write_kv(self, kv_new: dict[str, str]) -> None:
        for key, value in kv_new.items():
            old = self._kv.get(key)
            if old is None:
                self._insert("INSERT INTO kv(key, value) VALUES (?, ?)", (key, value), f"account key {key!r}")
            else:
                self._update(
                    "UPDATE kv SET value = ? WHERE key = ? AND value = ?",
                    (value, key, old),
                    f"account key {key!r}",
                )

    def _write_positions(self, pos_new: dict[str, _PositionRow | None]) -> None:
        for sym, new in pos_new.items():
            prev = self._positions.get(sym)
            what = f"position {sym}"
            if new is None:
                if prev is not None:
                    self._update(
                        "DELETE FROM positions WHERE symbol = ? AND qty = ? AND avg_entry_price = ? "
                        "AND lots IS ?",
                        (sym, *prev),
                        what,
                    )
            elif prev is None:
                self._insert(
                    "INSERT INTO positions(symbol, qty, avg_entry_price, lots) VALUES (?, ?, ?, ?)",
                    (sym, *new),
                    what,
                )
            else:
                self._update(
                    "UPDATE positions SET qty = ?, avg_entry_price = ?, lots = ? WHERE symbol = ? "
                    "AND qty = ? AND avg_entry_price = ? AND lots IS ?",
                    (*new, sym, *prev),
                    what,
                )

    def _write_orders(self, order_rows: Sequence[tuple[str, str, str, str, str, str]]) -> dict[str, int]:
        """Insert new orders, update changed ones where their version is still the one seen; the
        orders' new versions."""
        versions: dict[str, int] = {}
        for oid, coid, sym, status, created, data in order_rows:
            version = self._versions.get(oid)
            what = f"order {oid}"
            if version is None:
                self._insert(
                    "INSERT INTO orders(id, client_order_id, symbol, status, created_at, data, version) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (oid, coid, sym, status, created, data),
                    what,
                )
                versions[oid] = 1
            else:
                self._update(
                    "UPDATE orders SET client_order_id = ?, symbol = ?, status = ?, created_at = ?, "
                    "data = ?, version = ? WHERE id = ? AND version = ?",
                    (coid, sym, status, created, data, version + 1, oid, version),
                    what,
                )
                versions[oid] = version + 1
        return versions

    def _stale(self, what: str) -> StaleStateError:
        return StaleStateError(
            f"{what} in {self.path} was changed by another process; refusing to overwrite it"
        )

    def _insert(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.IntegrityError:  # the row exists: another writer created it
            raise self._stale(what) from None

    def _update(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        if self._db.execute(sql, params).rowcount != 1:
            raise self._stale(what)
