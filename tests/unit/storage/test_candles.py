"""CandleStore: exact bulk upserts, half-open range reads (bars and chart frames), coverage, deletes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.storage import Database, StorageError, schema_drift
from services.storage import candles as candles_module
from services.storage.candles import CANDLES_SCHEMA, CandleStore, candles, metadata

T0 = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def bar(i: int, symbol: str = "AAPL", *, close: str | None = None, count: int | None = 10) -> Bar:
    base = Decimal("187.1") + Decimal(i) / 100
    return Bar(
        symbol=symbol,
        ts=T0 + i * MINUTE,
        open=base,
        high=base + Decimal("0.25"),
        low=base - Decimal("0.000000001"),
        close=Decimal(close) if close is not None else base + Decimal("0.1"),
        volume=Decimal("1234.5678") * (i + 1),
        trade_count=count,
        vwap=None if count is None else base + Decimal("0.05"),
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(None, tmp_path, [CANDLES_SCHEMA])
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database) -> CandleStore:
    return CandleStore(db)


def test_migration_creates_the_live_table(db: Database) -> None:
    assert schema_drift(db.engine, metadata) == []


def test_upsert_inserts_then_updates_the_same_keys(store: CandleStore) -> None:
    assert store.upsert_bars("AAPL", Timeframe.MIN_1, [bar(i) for i in range(5)]) == 5
    changed = [bar(1, close="999.123456789", count=None), bar(3, close="-0.00000001")]
    assert store.upsert_bars("AAPL", "1Min", changed) == 2
    stored = store.range_bars("AAPL", "1Min")
    assert stored == [bar(0), changed[0], bar(2), changed[1], bar(4)]
    assert stored[1].trade_count is None and stored[1].vwap is None
    assert store.count("AAPL", "1Min") == 5


def test_bars_come_back_exact(store: CandleStore) -> None:
    tricky = Bar(
        "AAPL",
        T0,
        Decimal("0.1"),
        Decimal("123456789.123456789"),
        Decimal("1e-9"),
        Decimal("-0.00000001"),
        Decimal("0"),
        2**40,
        Decimal("99999999999999999999.99999999"),
    )
    store.upsert_bars("AAPL", "1Min", [tricky])
    (back,) = store.range_bars("AAPL", "1Min")
    assert back == tricky
    assert all(isinstance(v, Decimal) for v in (back.open, back.high, back.low, back.close, back.volume))
    assert back.ts.tzinfo is UTC


def test_ranges_are_half_open_and_unbounded_sides_are_none(store: CandleStore) -> None:
    store.upsert_bars("AAPL", "1Min", [bar(i) for i in range(10)])
    ts = [b.ts for b in store.range_bars("AAPL", "1Min", T0 + 2 * MINUTE, T0 + 5 * MINUTE)]
    assert ts == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]  # start inclusive, end exclusive
    assert len(store.range_bars("AAPL", "1Min", start=T0 + 8 * MINUTE)) == 2
    assert len(store.range_bars("AAPL", "1Min", end=T0 + 1 * MINUTE)) == 1
    assert store.range_bars("AAPL", "1Min", T0 + 3 * MINUTE, T0 + 3 * MINUTE) == []
    eastern = (T0 + 2 * MINUTE).astimezone(datetime.now().astimezone().tzinfo)
    assert store.range_bars("AAPL", "1Min", start=eastern)[0].ts == T0 + 2 * MINUTE
    assert store.count("AAPL", "1Min", T0 + 2 * MINUTE, T0 + 5 * MINUTE) == 3
    with pytest.raises(ValueError, match="timezone-aware"):
        store.range_bars("AAPL", "1Min", start=datetime(2024, 3, 8, 14, 30))


def test_symbols_and_timeframes_are_separate_and_normalised(store: CandleStore) -> None:
    store.upsert_bars("aapl", "1Min", [bar(0, "AAPL")])
    store.upsert_bars("AAPL", "5Min", [bar(0), bar(5)])
    store.upsert_bars("btcusd", "1Min", [bar(0, "BTC/USD"), bar(1, "btc/usd")])
    assert store.count("AAPL", "1Min") == 1
    assert store.count("AAPL", "5Min") == 2
    assert [b.symbol for b in store.range_bars("BTC/USD", "1Min")] == ["BTC/USD", "BTC/USD"]
    with pytest.raises(ValueError, match="unknown timeframe '2Min'"):
        store.upsert_bars("AAPL", "2Min", [bar(0)])


def test_a_wrong_bar_anywhere_stores_nothing(store: CandleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(candles_module, "BATCH_SIZE", 2)  # the bad bar lands in a later batch
    with pytest.raises(ValueError, match="is for 'MSFT', not 'AAPL'; nothing was stored"):
        store.upsert_bars("AAPL", "1Min", [bar(0), bar(1), bar(2), bar(3, "MSFT")])
    float_bar = Bar("AAPL", T0, 1.5, Decimal(2), Decimal(1), Decimal(1), Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not float \(floats are inexact.*nothing was stored"):
        store.upsert_bars("AAPL", "1Min", [bar(1), bar(2), float_bar])
    assert store.coverage("AAPL", "1Min") is None


def test_repeated_ts_in_one_call_keeps_the_later_bar(store: CandleStore) -> None:
    assert store.upsert_bars("AAPL", "1Min", [bar(0, close="1"), bar(0, close="2")]) == 1
    assert store.range_bars("AAPL", "1Min")[0].close == Decimal("2")


def test_portable_path_stores_exactly_what_the_sqlite_fast_path_stores(db: Database) -> None:
    fast, portable = CandleStore(db), CandleStore(db)
    portable._sqlite_fast_path = False  # the path other dialects take (SQLAlchemy-bound values)
    fast.upsert_bars("AAPL", "1Min", [bar(i) for i in range(3)] + [bar(3, count=None)])
    portable.upsert_bars("MSFT", "1Min", [bar(i, "MSFT") for i in range(3)] + [bar(3, "MSFT", count=None)])
    portable.upsert_bars("MSFT", "1Min", [bar(1, "MSFT", close="5")])  # delete-then-insert update
    with db.connect() as conn:
        raw = conn.exec_driver_sql("SELECT * FROM candles ORDER BY symbol, ts").all()
    aapl = [r[2:] for r in raw if r[0] == "AAPL"]
    msft = [r[2:] for r in raw if r[0] == "MSFT"]
    assert msft[1][4] == "5"
    assert [r for i, r in enumerate(msft) if i != 1] == [r for i, r in enumerate(aapl) if i != 1]
    assert isinstance(aapl[0][0], int) and isinstance(aapl[0][1], str)
    for symbol in ("AAPL", "MSFT"):  # both read paths decode the same rows to the same Bars
        assert portable.range_bars(symbol, "1Min") == fast.range_bars(symbol, "1Min")
    assert fast.range_bars("AAPL", "1Min")[3] == bar(3, count=None)
    float_bar = Bar("MSFT", T0, 1.5, Decimal(2), Decimal(1), Decimal(1), Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"not float \(floats are inexact.*nothing was stored"):
        portable.upsert_bars("MSFT", "1Min", [float_bar])


def test_postgresql_upsert_compiles_to_on_conflict_on_the_primary_key() -> None:
    statement = candles_module._upsert_statement("postgresql")
    assert statement is not None
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT ON CONSTRAINT pk_candles DO UPDATE SET" in sql
    assert "vwap = excluded.vwap" in sql


def test_range_frame_has_chart_dtypes_and_utc_index(store: CandleStore) -> None:
    store.upsert_bars("AAPL", "1Min", [bar(0), bar(1, count=None), bar(2)])
    frame = store.range_frame("AAPL", "1Min", T0, T0 + 10 * MINUTE)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "trade_count", "vwap"]
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "ts"
    assert str(frame.index.tz) == "UTC"
    assert list(frame.index) == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    for name in ("open", "high", "low", "close", "volume", "vwap"):
        assert frame[name].dtype == np.float64
    assert frame["trade_count"].dtype == pd.Int64Dtype()
    assert frame["close"].tolist() == [float(bar(i).close) for i in range(3)]
    assert frame["trade_count"].tolist()[0] == 10 and frame["trade_count"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert np.isnan(frame["vwap"].iloc[1])


def test_empty_range_frame_keeps_its_shape(store: CandleStore) -> None:
    frame = store.range_frame("AAPL", "1Min", None, None)
    assert frame.empty
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "trade_count", "vwap"]
    assert frame["open"].dtype == np.float64 and frame["trade_count"].dtype == pd.Int64Dtype()
    assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"


def test_coverage_and_delete_range(store: CandleStore) -> None:
    assert store.coverage("AAPL", "1Min") is None
    store.upsert_bars("AAPL", "1Min", [bar(i) for i in range(10)])
    store.upsert_bars("MSFT", "1Min", [bar(i, "MSFT") for i in range(3)])
    assert store.coverage("AAPL", "1Min") == (T0, T0 + 9 * MINUTE)
    assert store.delete_range("AAPL", "1Min", T0, T0 + 3 * MINUTE) == 3
    assert store.coverage("AAPL", "1Min") == (T0 + 3 * MINUTE, T0 + 9 * MINUTE)
    assert store.delete_range("AAPL", "1Min", start=T0 + 8 * MINUTE) == 2
    assert store.delete_range("AAPL", "1Min") == 5
    assert store.coverage("AAPL", "1Min") is None
    assert store.coverage("MSFT", "1Min") == (T0, T0 + 2 * MINUTE)


def test_threads_can_write_and_read_at_once(db: Database) -> None:
    store = CandleStore(db)
    errors: list[BaseException] = []
    symbols = ["AAPL", "MSFT", "NVDA", "SPY"]

    def work(symbol: str) -> None:
        try:
            for start in range(0, 200, 50):
                store.upsert_bars(symbol, "1Min", [bar(i, symbol) for i in range(start, start + 50)])
                store.range_frame(symbol, "1Min", None, None)
        except BaseException as error:  # reported below, in the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert [store.count(s, "1Min") for s in symbols] == [200] * 4


def test_database_failures_surface_as_storage_errors(db: Database) -> None:
    store = CandleStore(db)
    with db.begin() as conn:
        conn.exec_driver_sql("DROP TABLE candles")
    with pytest.raises(StorageError, match="reading 1Min candles of AAPL failed: no such table"):
        store.range_bars("AAPL", "1Min")
    with pytest.raises(StorageError, match="storing 1Min candles of AAPL failed"):
        store.upsert_bars("AAPL", "1Min", [bar(0)])


def test_live_table_matches_select_columns() -> None:
    # Guards the raw fast-path column order against the table definition.
    assert [c.name for c in select(candles).selected_columns] == list(candles_module._ALL_COLUMNS)


def test_frame_from_datetime_rows_as_other_dialects_return_them() -> None:
    rows = [
        (T0, 1.0, 2.0, 0.5, 1.5, 100.0, None, 7.0),
        (T0 + MINUTE, 1.5, 2.5, 1.0, 2.0, 50.0, 1.75, None),
    ]
    frame = candles_module._frame(rows, micros=False)
    assert list(frame.index) == [T0, T0 + MINUTE] and str(frame.index.tz) == "UTC"
    assert frame["trade_count"].tolist()[0] == 7 and frame["trade_count"].isna().tolist() == [False, True]
    assert frame["vwap"].isna().tolist() == [True, False]
