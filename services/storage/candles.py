"""The candle store: chart history per (symbol, timeframe), kept exact, read back fast.

Table ``candles`` (schema ``candles``, migration 1): primary key (symbol, timeframe, ts); ``ts`` is the
bar's start in UTC; open/high/low/close/volume/vwap are exact decimals (:class:`DecimalText`);
``trade_count`` and ``vwap`` may be NULL. Symbols are stored normalised
(:func:`~services.domain.symbols.normalize_symbol`) and timeframes in Alpaca's spelling
(:class:`~services.domain.enums.Timeframe`).

Ranges are half-open: ``start <= ts < end``; ``None`` leaves that side unbounded.

Threads: every method is synchronous (it blocks on the database) and thread-safe; each call uses its
own connection and transaction. Callers on the event loop run them in a worker thread. Database
failures raise :class:`~services.storage.errors.StorageError`; bad arguments raise ``ValueError``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Float,
    Insert,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    type_coerce,
)
from sqlalchemy import exc as sa_exc

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.domain.symbols import normalize_symbol
from services.storage.engine import Database
from services.storage.errors import translate_errors
from services.storage.schema import Migration, Schema
from services.storage.types import (
    DecimalText,
    UTCDateTime,
    canonical_decimal,
    micros_to_utc,
    to_utc,
    utc_to_micros,
)

BATCH_SIZE: Final = 10_000
PRICE_COLUMNS: Final = ("open", "high", "low", "close", "volume", "vwap")
FRAME_COLUMNS: Final = ("open", "high", "low", "close", "volume", "trade_count", "vwap")


def _candle_columns() -> list[Any]:
    return [
        Column("symbol", String(32), nullable=False),
        Column("timeframe", String(8), nullable=False),
        Column("ts", UTCDateTime(), nullable=False),
        Column("open", DecimalText(), nullable=False),
        Column("high", DecimalText(), nullable=False),
        Column("low", DecimalText(), nullable=False),
        Column("close", DecimalText(), nullable=False),
        Column("volume", DecimalText(), nullable=False),
        Column("trade_count", BigInteger(), nullable=True),
        Column("vwap", DecimalText(), nullable=True),
        PrimaryKeyConstraint("symbol", "timeframe", "ts", name="pk_candles"),
    ]


metadata = MetaData()
# The live table, for queries. WITHOUT ROWID on SQLite stores rows in primary-key order, so a range
# of one symbol's candles is one contiguous read.
candles = Table("candles", metadata, *_candle_columns(), sqlite_with_rowid=False)


def _v1_create_candles(conn: Connection) -> None:
    # Frozen copy of version 1 (see services.storage.schema): never edit; add a migration instead.
    m = MetaData()
    Table(
        "candles",
        m,
        Column("symbol", String(32), nullable=False),
        Column("timeframe", String(8), nullable=False),
        Column("ts", UTCDateTime(), nullable=False),
        Column("open", DecimalText(), nullable=False),
        Column("high", DecimalText(), nullable=False),
        Column("low", DecimalText(), nullable=False),
        Column("close", DecimalText(), nullable=False),
        Column("volume", DecimalText(), nullable=False),
        Column("trade_count", BigInteger(), nullable=True),
        Column("vwap", DecimalText(), nullable=True),
        PrimaryKeyConstraint("symbol", "timeframe", "ts", name="pk_candles"),
        sqlite_with_rowid=False,
    )
    m.create_all(conn)


CANDLES_SCHEMA: Final = Schema(
    "candles", (Migration(1, "candles table", _v1_create_candles),), metadata=metadata
)

_VALUE_COLUMNS: Final = ("open", "high", "low", "close", "volume", "trade_count", "vwap")


class CandleStore:
    """Bulk upserts and range reads of :class:`~services.domain.models.Bar` s in table ``candles``.

    Needs a :class:`Database` opened with :data:`CANDLES_SCHEMA`.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._upsert = _upsert_statement(db.dialect_name)
        self._sqlite_fast_path = db.dialect_name == "sqlite"

    # -- writing -------------------------------------------------------------------------------

    def upsert_bars(self, symbol: str, timeframe: Timeframe | str, bars: Iterable[Bar]) -> int:
        """Insert the bars, replacing stored ones with the same ts; return the number of rows written.

        All or nothing, in one transaction: a bar for another symbol or with an inexact/invalid value
        raises ``ValueError`` and nothing is stored. When the same ts appears twice the later bar wins
        (and is counted once if both fall in the same batch of ``BATCH_SIZE``).
        """
        sym, tf = _key(symbol, timeframe)
        written = 0
        with translate_errors(f"storing {tf} candles of {sym}"), self._db.begin() as conn:
            for chunk in _chunks(bars, BATCH_SIZE):
                distinct = _distinct_bars(sym, chunk)
                try:
                    if self._sqlite_fast_path:
                        conn.exec_driver_sql(_SQLITE_UPSERT, _sqlite_param_tuples(sym, tf, distinct))
                    elif self._upsert is not None:
                        conn.execute(self._upsert, _param_dicts(sym, tf, distinct))
                    else:
                        self._delete_then_insert(conn, _param_dicts(sym, tf, distinct))
                except (TypeError, ValueError) as error:
                    raise ValueError(f"bad {tf} bar for {sym}: {error}; nothing was stored") from error
                except sa_exc.StatementError as error:
                    # A value refused by DecimalText/UTCDateTime while binding: bad input, not a DB fault.
                    if isinstance(error.orig, (TypeError, ValueError)):
                        raise ValueError(
                            f"bad {tf} bar for {sym}: {error.orig}; nothing was stored"
                        ) from error
                    raise
                written += len(distinct)
        return written

    def delete_range(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Delete candles with ``start <= ts < end``; return how many were deleted."""
        sym, tf = _key(symbol, timeframe)
        where = _range_filter(sym, tf, start, end)
        with translate_errors(f"deleting {tf} candles of {sym}"), self._db.begin() as conn:
            return conn.execute(delete(candles).where(where)).rowcount

    # -- reading -------------------------------------------------------------------------------

    def range_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Bar]:
        """Candles with ``start <= ts < end`` in ts order, as exact :class:`Bar` s."""
        sym, tf = _key(symbol, timeframe)
        query = (
            select(*(candles.c[name] for name in ("ts", *_VALUE_COLUMNS)))
            .where(_range_filter(sym, tf, start, end))
            .order_by(candles.c.ts)
        )
        with translate_errors(f"reading {tf} candles of {sym}"), self._db.connect() as conn:
            if not self._sqlite_fast_path:
                return [
                    Bar(sym, ts, o, h, low, c, v, None if n is None else int(n), vw)
                    for ts, o, h, low, c, v, n, vw in conn.execute(query)
                ]
            # SQLite: the stored text and microseconds, decoded here as DecimalText/UTCDateTime would
            # (same functions), without SQLAlchemy's per-value result processing (about 2x faster).
            rows = conn.execute(query).cursor.fetchall()
        dec, when = Decimal, micros_to_utc
        return [
            Bar(sym, when(ts), dec(o), dec(h), dec(low), dec(c), dec(v), n, None if vw is None else dec(vw))
            for ts, o, h, low, c, v, n, vw in rows
        ]

    def range_frame(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Candles with ``start <= ts < end`` as a DataFrame for charts (floats: not for money maths).

        Index: ``DatetimeIndex`` named ``"ts"``, UTC, ascending. Columns: ``open``, ``high``, ``low``,
        ``close``, ``volume``, ``vwap`` as float64 (NaN where vwap is unknown) and ``trade_count`` as
        pandas' nullable ``Int64`` (``<NA>`` where unknown).
        """
        sym, tf = _key(symbol, timeframe)
        sqlite = self._db.dialect_name == "sqlite"
        # Convert in SQL, not per value in Python: a 100k-bar chart range must stay fast.
        ts_col: ColumnElement[Any] = type_coerce(candles.c.ts, BigInteger()) if sqlite else candles.c.ts
        query = (
            select(
                ts_col,
                *(cast(candles.c[name], Float()) for name in PRICE_COLUMNS),
                cast(candles.c.trade_count, Float()),
            )
            .where(_range_filter(sym, tf, start, end))
            .order_by(candles.c.ts)
        )
        with translate_errors(f"reading {tf} candles of {sym}"), self._db.connect() as conn:
            # Every selected value is already a plain number (or a datetime off SQLite), so the DB-API
            # rows are read directly, skipping per-row Result processing.
            rows = conn.execute(query).cursor.fetchall()
        return _frame(rows, micros=sqlite)

    def coverage(self, symbol: str, timeframe: Timeframe | str) -> tuple[datetime, datetime] | None:
        """``(first ts, last ts)`` stored for the pair (both inclusive), or ``None`` if there is none."""
        sym, tf = _key(symbol, timeframe)
        query = select(func.min(candles.c.ts), func.max(candles.c.ts)).where(
            candles.c.symbol == sym, candles.c.timeframe == tf
        )
        with translate_errors(f"reading {tf} candle coverage of {sym}"), self._db.connect() as conn:
            first, last = conn.execute(query).one()
        if first is None or last is None:
            return None
        return first, last

    def count(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """How many candles have ``start <= ts < end``."""
        sym, tf = _key(symbol, timeframe)
        query = select(func.count()).select_from(candles).where(_range_filter(sym, tf, start, end))
        with translate_errors(f"counting {tf} candles of {sym}"), self._db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _delete_then_insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
        # Portable upsert for dialects without ON CONFLICT; correct inside our single transaction.
        conn.execute(
            delete(candles).where(
                candles.c.symbol == bindparam("symbol"),
                candles.c.timeframe == bindparam("timeframe"),
                candles.c.ts == bindparam("ts"),
            ),
            [{"symbol": r["symbol"], "timeframe": r["timeframe"], "ts": r["ts"]} for r in rows],
        )
        conn.execute(candles.insert(), rows)


_ALL_COLUMNS: Final = ("symbol", "timeframe", "ts", *_VALUE_COLUMNS)
# SQLite-only SQL, used only on SQLite (with parameters from _sqlite_param_tuples).
_SQLITE_UPSERT: Final = (
    "INSERT INTO candles ({columns}) VALUES ({marks}) "
    'ON CONFLICT ("symbol", "timeframe", "ts") DO UPDATE SET {updates}'
).format(
    columns=", ".join(f'"{c}"' for c in _ALL_COLUMNS),
    marks=", ".join("?" for _ in _ALL_COLUMNS),
    updates=", ".join(f'"{c}" = excluded."{c}"' for c in _VALUE_COLUMNS),
)


def _upsert_statement(dialect_name: str) -> Insert | None:
    """Dialect upsert through SQLAlchemy (SQLite uses the faster _SQLITE_UPSERT instead)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(candles)
        return pg.on_conflict_do_update(
            constraint="pk_candles",
            set_={name: pg.excluded[name] for name in _VALUE_COLUMNS},
        )
    return None


def _key(symbol: str, timeframe: Timeframe | str) -> tuple[str, str]:
    try:
        tf = Timeframe(timeframe)
    except ValueError:
        known = ", ".join(t.value for t in Timeframe)
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {known}") from None
    return normalize_symbol(symbol), tf.value


def _range_filter(sym: str, tf: str, start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    conditions = [candles.c.symbol == sym, candles.c.timeframe == tf]
    if start is not None:
        conditions.append(candles.c.ts >= to_utc(start, "start"))
    if end is not None:
        conditions.append(candles.c.ts < to_utc(end, "end"))
    return and_(*conditions)


def _chunks(bars: Iterable[Bar], size: int) -> Iterator[list[Bar]]:
    iterator = iter(bars)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _distinct_bars(sym: str, chunk: list[Bar]) -> list[Bar]:
    """Validate the chunk and keep the last bar per ts (PostgreSQL refuses one statement touching a
    row twice, and "later wins" is what sequential upserts would do anyway)."""
    by_ts: dict[datetime, Bar] = {}
    for bar in chunk:
        if not isinstance(bar, Bar):
            raise ValueError(f"expected a Bar, got {type(bar).__name__}; nothing was stored")
        if bar.symbol != sym and _normalized_or_none(bar.symbol) != sym:
            raise ValueError(
                f"bar at {bar.ts.isoformat()} is for {bar.symbol!r}, not {sym!r}; nothing was stored"
            )
        by_ts[bar.ts] = bar
    return list(by_ts.values())


def _trade_count(bar: Bar) -> int | None:
    if bar.trade_count is None:
        return None
    try:
        return operator.index(bar.trade_count)
    except TypeError:
        raise ValueError(
            f"bar at {bar.ts.isoformat()}: trade_count must be an integer, got {bar.trade_count!r}; "
            "nothing was stored"
        ) from None


def _param_dicts(sym: str, tf: str, bars: list[Bar]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": sym,
            "timeframe": tf,
            "ts": bar.ts,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "trade_count": _trade_count(bar),
            "vwap": bar.vwap,
        }
        for bar in bars
    ]


def _sqlite_param_tuples(sym: str, tf: str, bars: list[Bar]) -> list[tuple[Any, ...]]:
    # Exactly what DecimalText and UTCDateTime would bind on SQLite (same functions), without
    # SQLAlchemy's per-value dispatch: this is what makes bulk upserts several times faster.
    dec = canonical_decimal
    micros = utc_to_micros
    return [
        (
            sym,
            tf,
            micros(bar.ts),
            dec(bar.open),
            dec(bar.high),
            dec(bar.low),
            dec(bar.close),
            dec(bar.volume),
            _trade_count(bar),
            None if bar.vwap is None else dec(bar.vwap),
        )
        for bar in bars
    ]


def _normalized_or_none(text: str) -> str | None:
    try:
        return normalize_symbol(text)
    except ValueError:
        return None


def _frame(rows: Sequence[Any], *, micros: bool) -> pd.DataFrame:
    # One C-level pass from DB-API tuples to typed columns; None becomes NaN in the float fields.
    layout = [("ts", np.int64 if micros else object)]
    layout += [(name, np.float64) for name in (*PRICE_COLUMNS, "trade_count")]
    table = np.array(rows, dtype=layout)
    if micros:
        index = pd.to_datetime(table["ts"], unit="us", utc=True)
    else:
        index = pd.to_datetime(list(table["ts"]), utc=True)
    index = pd.DatetimeIndex(index, name="ts")
    counts = table["trade_count"]
    missing = np.isnan(counts)
    data: dict[str, Any] = {name: table[name] for name in PRICE_COLUMNS}
    data["trade_count"] = pd.arrays.IntegerArray(np.where(missing, 0, counts).astype(np.int64), missing)
    return pd.DataFrame(data, index=index, columns=list(FRAME_COLUMNS))


__all__ = ["CANDLES_SCHEMA", "CandleStore", "candles", "metadata"]
