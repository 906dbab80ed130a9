from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.marketdata.history import CancelToken, DownloadCancelled, HistoryService, TTLCache

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_ttl_cache_expires_on_the_fake_clock() -> None:
    clock = Clock()
    cache = TTLCache(30, clock)
    cache.put("k", 1)
    clock.t = 29.9
    assert cache.get("k") == 1
    clock.t = 30.0
    assert cache.get("k") is None
    assert cache.hits == 1 and cache.misses == 1


class FakeStockClient:
    """Serves one-minute bars for any range; records each request's range."""

    def __init__(self) -> None:
        self.requests: list[tuple[datetime, datetime]] = []

    def get_stock_bars(self, req: Any) -> Any:
        self.requests.append((req.start.replace(tzinfo=UTC), req.end.replace(tzinfo=UTC)))  # SDK: naive UTC
        rows = []
        t = req.start
        while t < req.end:
            rows.append(
                SimpleNamespace(
                    timestamp=t,
                    open=10.0,
                    high=11.0,
                    low=9.0,
                    close=10.5,
                    volume=100.0,
                    trade_count=5.0,
                    vwap=10.25,
                )
            )
            t += timedelta(minutes=1)
        return SimpleNamespace(data={"AAPL": rows})


class MemoryStore:
    def __init__(self) -> None:
        self.bars: dict[datetime, Bar] = {}

    def upsert_bars(self, symbol: str, timeframe: Timeframe | str, bars: Iterable[Bar]) -> int:
        n = 0
        for b in bars:
            self.bars[b.ts] = b
            n += 1
        return n

    def range_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Bar]:
        return sorted(
            (
                b
                for b in self.bars.values()
                if (start is None or b.ts >= start) and (end is None or b.ts < end)
            ),
            key=lambda b: b.ts,
        )

    def coverage(self, symbol: str, timeframe: Timeframe | str) -> tuple[datetime, datetime] | None:
        if not self.bars:
            return None
        return min(self.bars), max(self.bars)


def service(
    store: MemoryStore | None, clock: Clock, now: datetime, **kw: Any
) -> tuple[HistoryService, FakeStockClient]:
    stock = FakeStockClient()
    return HistoryService(
        "k", "s", store=store, clock=clock, now=lambda: now, stock_client=stock, crypto_client=object(), **kw
    ), stock


def test_bars_chunked_with_progress_written_back_and_cached() -> None:
    clock = Clock()
    store = MemoryStore()
    hist, stock = service(store, clock, now=T0 + timedelta(days=10))
    progress: list[float] = []
    bars = asyncio.run(
        hist.bars("AAPL", Timeframe.MIN_1, T0, T0 + timedelta(days=5), progress=progress.append)
    )
    assert len(bars) == 5 * 1440 and bars[0].close == Decimal("10.5") and bars[0].trade_count == 5
    assert len(stock.requests) == 3  # 2-day chunks
    assert progress == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert len(store.bars) == 5 * 1440
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, T0, T0 + timedelta(days=5)))
    assert len(stock.requests) == 3  # served from the cache
    clock.t = 31
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, T0, T0 + timedelta(days=5)))
    assert len(stock.requests) == 3  # cache expired, but the store covers the range: no broker call
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, T0, T0 + timedelta(days=6)))
    assert stock.requests[-1] == (T0 + timedelta(days=5), T0 + timedelta(days=6))  # only the missing day


def test_open_bar_is_returned_but_not_stored() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    store = MemoryStore()
    hist, _ = service(store, Clock(), now=now, feed="sip")  # a SIP plan: recent SIP bars are stored
    bars = asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, T0, T0 + timedelta(minutes=11)))
    assert len(bars) == 11 and len(store.bars) == 10


def test_download_can_be_cancelled_between_chunks() -> None:
    hist, stock = service(MemoryStore(), Clock(), now=T0 + timedelta(days=30))
    token = CancelToken()

    def on_progress(f: float) -> None:
        if f > 0.3:
            token.cancel()

    with pytest.raises(DownloadCancelled, match="cancelled after 2 of 5"):
        asyncio.run(
            hist.bars("AAPL", "1Min", T0, T0 + timedelta(days=10), progress=on_progress, cancel=token)
        )
    assert len(stock.requests) == 2
