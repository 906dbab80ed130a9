"""SQLite persistence for the venue: account, orders, positions, activities, equity series.

Every state change is written in one transaction before the venue answers or publishes the trade
update (WAL, synchronous=NORMAL: a SIGKILL of the exchange loses nothing that was committed; only
an OS crash could lose the last commits). Orders are stored as JSON records plus the columns the
venue looks them up by; the client_order_id column is UNIQUE, so used ids survive restarts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .ledger import Holding
from .matching import VenueOrder

SCHEMA_VERSION = 1

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
        self._db.execute(
            "INSERT OR IGNORE INTO kv(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        self._db.close()

    def load(self) -> Snapshot:
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
        """Apply one batch of changes atomically. ``positions`` maps a symbol to None when it closed."""
        db = self._db
        db.execute("BEGIN")
        try:
            if kv:
                db.executemany("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", list(kv.items()))
            rows = [
                (
                    o.id,
                    o.client_order_id,
                    o.symbol,
                    o.status,
                    o.created_at.isoformat(),
                    json.dumps(o.to_record()),
                )
                for o in orders
            ]
            if rows:
                db.executemany(
                    "INSERT OR REPLACE INTO orders(id, client_order_id, symbol, status, created_at, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            for sym, h in (positions or {}).items():
                if h is None:
                    db.execute("DELETE FROM positions WHERE symbol = ?", (sym,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO positions(symbol, qty, avg_entry_price, lots) "
                        "VALUES (?, ?, ?, ?)",
                        (sym, str(h.qty), str(h.avg_entry_price), json.dumps(h.to_record())),
                    )
            acts = [(json.dumps(a),) for a in activities]
            if acts:
                db.executemany("INSERT INTO activities(data) VALUES (?)", acts)
            points = [(ts, str(e)) for ts, e in equity]
            if points:
                db.executemany("INSERT OR REPLACE INTO equity(ts, equity) VALUES (?, ?)", points)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
