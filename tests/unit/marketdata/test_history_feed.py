"""Which feed historical stock bars come from.

Sources:
- Alpaca market-data OpenAPI (docs.alpaca.markets/reference, ``feed`` parameter):
  ``iex``, ``sip`` or ``otc``; ``sip`` "only available to those with a subscription".
- Alpaca Market Data FAQ (docs.alpaca.markets/docs/market-data-faq): "to query any SIP trades or
  quotes in the last 15 minutes, you need the Algo Trader Plus subscription"; a free plan asking
  for recent SIP data gets "subscription does not permit querying recent SIP data".
- docs/alpaca-rules.md "Market data": free plans get SIP history older than 15 minutes; IEX volume is a
  few percent of consolidated volume (AAPL 1.65M on IEX against 46.6M SIP,
  bennycode/trading-signals PR #1375), so IEX history understates volume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.marketdata.history import HistoryService

NOW = datetime(2024, 3, 1, 15, 7, 30, tzinfo=UTC)
VOLUME = {"sip": 46_600.0, "iex": 1_650.0}  # per bar; the feed each bar came from shows in its volume


class FeedClient:
    """Serves one-minute bars; the volume says which feed was asked; records (feed, start, end)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, datetime, datetime]] = []

    def get_stock_bars(self, req: Any) -> Any:
        feed = req.feed.value
        start, end = req.start.replace(tzinfo=UTC), req.end.replace(tzinfo=UTC)  # the SDK keeps naive UTC
        self.requests.append((feed, start, end))
        rows, t = [], start
        while t < end:
            rows.append(
                SimpleNamespace(
                    timestamp=t,
                    open=10.0,
                    high=11.0,
                    low=9.0,
                    close=10.5,
                    volume=VOLUME[feed],
                    trade_count=5.0,
                    vwap=10.25,
                )
            )
            t += timedelta(minutes=1)
        return SimpleNamespace(data={"AAPL": rows})


class Store:
    def __init__(self) -> None:
        self.bars: dict[datetime, Bar] = {}

    def upsert_bars(self, symbol: str, timeframe: Timeframe | str, bars: Iterable[Bar]) -> int:
        for b in bars:
            self.bars[b.ts] = b
        return len(self.bars)

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
        return (min(self.bars), max(self.bars)) if self.bars else None


def make(**kw: Any) -> tuple[HistoryService, FeedClient, Store]:
    client, store = FeedClient(), Store()
    hist = HistoryService(
        "k", "s", store=store, now=lambda: NOW, stock_client=client, crypto_client=object(), **kw
    )
    return hist, client, store


def test_free_plan_history_is_sip_up_to_15_minutes_ago_and_the_live_feed_after() -> None:
    hist, client, store = make()  # defaults: live feed iex (the free plan), history feed sip
    start = NOW - timedelta(hours=1)
    bars = asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, start, NOW))
    cutoff = datetime(2024, 3, 1, 14, 52, tzinfo=UTC)  # 15 minutes ago, on a bar boundary
    assert client.requests == [("sip", start, cutoff), ("iex", cutoff, NOW)]
    assert all(b.volume == Decimal("46600.0") for b in bars if b.ts < cutoff)
    assert all(b.volume == Decimal("1650.0") for b in bars if b.ts >= cutoff)
    assert len(bars) == 61
    # Only SIP bars are kept: the recent IEX minutes are fetched again (from SIP once old enough).
    assert store.bars and max(store.bars) < cutoff
    assert all(b.volume == Decimal("46600.0") for b in store.bars.values())


def test_old_history_is_one_sip_request() -> None:
    hist, client, _ = make()
    end = NOW - timedelta(days=1)
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, end - timedelta(hours=2), end))
    assert [feed for feed, _, _ in client.requests] == ["sip"]


def test_sip_live_feed_means_sip_history_to_now() -> None:
    """A plan with the SIP stream (Algo Trader Plus) may query recent SIP data (Market Data FAQ)."""
    hist, client, _ = make(feed="sip")
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, NOW - timedelta(hours=1), NOW))
    assert [feed for feed, _, _ in client.requests] == ["sip"]


def test_iex_history_feed_is_honoured() -> None:
    hist, client, _ = make(history_feed="iex")
    asyncio.run(hist.bars("AAPL", Timeframe.MIN_1, NOW - timedelta(hours=1), NOW))
    assert [feed for feed, _, _ in client.requests] == ["iex"]


def test_an_unknown_feed_is_refused() -> None:
    for kw in ({"feed": "nasdaq"}, {"history_feed": "delayed"}):
        try:
            make(**kw)
        except ValueError as exc:
            assert "feed" in str(exc)
        else:
            raise AssertionError(f"{kw} was accepted")
