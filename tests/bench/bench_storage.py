"""Storage benchmark: the candle store on a temporary SQLite database (WAL, synchronous=FULL).

- storage_candle_upsert_per_s: bulk upsert of 100k one-minute bars into an empty table, one call
  (one transaction); the median of 3 fresh databases. Goal ≥ 50k bars/s.
- storage_candle_update_per_s: the same 100k bars upserted again (every row hits ON CONFLICT).
- storage_candle_range_ms_100k: ``range_frame`` of all 100k bars to a pandas DataFrame (median of 5).
- storage_candle_range_bars_ms_100k: ``range_bars`` of the same, as exact Decimal Bars (median of 3).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.domain.models import Bar
from services.storage.candles import CANDLES_SCHEMA, CandleStore
from services.storage.engine import Database

N_BARS = 100_000


def _bars(n: int) -> list[Bar]:
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    minute = timedelta(minutes=1)
    bars = []
    price = Decimal("187.25")
    for i in range(n):
        step = Decimal((i * 7919) % 41 - 20) / 100
        high, low = price + Decimal("0.37"), price - Decimal("0.29")
        close = price + step
        bars.append(
            Bar("AAPL", t0 + i * minute, price, high, low, close, Decimal(1000 + i % 977), 40 + i % 13, price)
        )
        price = close
    return bars


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run() -> dict[str, dict[str, Any]]:
    bars = _bars(N_BARS)
    inserts, updates, frames, exact = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="heron-bench-storage-") as tmp:
        for attempt in range(3):
            db = Database.open(None, Path(tmp) / f"db{attempt}", [CANDLES_SCHEMA])
            try:
                store = CandleStore(db)
                seconds, written = _timed(lambda: store.upsert_bars("AAPL", "1Min", bars))  # noqa: B023
                assert written == N_BARS
                inserts.append(N_BARS / seconds)
                seconds, _ = _timed(lambda: store.upsert_bars("AAPL", "1Min", bars))  # noqa: B023
                updates.append(N_BARS / seconds)
                if attempt == 0:
                    for _ in range(5):
                        seconds, frame = _timed(lambda: store.range_frame("AAPL", "1Min", None, None))  # noqa: B023
                        assert len(frame) == N_BARS
                        frames.append(seconds * 1000)
                    for _ in range(3):
                        seconds, got = _timed(lambda: store.range_bars("AAPL", "1Min"))  # noqa: B023
                        assert got[-1] == bars[-1]
                        exact.append(seconds * 1000)
            finally:
                db.dispose()
    return {
        "storage_candle_upsert_per_s": {
            "value": round(statistics.median(inserts)),
            "unit": "bars/s",
            "goal": ">= 50000",
        },
        "storage_candle_update_per_s": {"value": round(statistics.median(updates)), "unit": "bars/s"},
        "storage_candle_range_ms_100k": {"value": statistics.median(frames), "unit": "ms"},
        "storage_candle_range_bars_ms_100k": {"value": statistics.median(exact), "unit": "ms"},
    }
