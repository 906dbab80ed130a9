"""The exchange's bars through real alpaca-py, shaped as Alpaca's: extended hours and day alignment.

Sources: Alpaca real-time stock data docs "Minute Bars" (pre-market and after-hours trades are
aggregated into the minute bars) and docs/alpaca-rules.md (minute bars from iex/sip include 04:00-20:00 ET);
alpaca-py #580 (hourly bars include the extended hours, on the clock hour); Lumiwealth/lumibot PR #826
(crypto daily bars start at midnight UTC since July 2025).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alpaca.data.enums import DataFeed
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from tests.support.exchange import ExchangeProcess

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def session_exchange() -> Iterator[ExchangeProcess]:
    ex = ExchangeProcess.start(always_open=False)  # the NYSE calendar, extended hours and all
    try:
        yield ex
    finally:
        ex.stop()


def bars(got: Any, symbol: str) -> list[Any]:
    """alpaca-py answers a BarSet (its type also allows a raw dict when raw_data is set)."""
    data: list[Any] = got.data[symbol]
    return data


def test_hourly_stock_bars_run_from_0400_to_1900_new_york(session_exchange: ExchangeProcess) -> None:
    """alpaca-py #580: hourly bars include the extended hours; none starts outside 04:00-20:00 ET."""
    c = StockHistoricalDataClient(
        session_exchange.key_id, session_exchange.secret, url_override=session_exchange.url
    )
    end = datetime.now(UTC)
    got = c.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Hour,
            start=end - timedelta(days=10),
            end=end,
            feed=DataFeed.IEX,
        )
    )
    hours: dict[date, set[int]] = defaultdict(set)
    for bar in bars(got, "AAPL"):
        local = bar.timestamp.astimezone(NEW_YORK)
        assert local.minute == 0 and 4 <= local.hour < 20, local
        hours[local.date()].add(local.hour)
    today = end.astimezone(NEW_YORK).date()
    past = sorted(d for d in hours if d != today)[1:]  # the first day began before the request's start
    assert len(past) >= 4
    # A full day (an early close ends the after-hours at 17:00 ET).
    assert all(hours[d] in (set(range(4, 20)), set(range(4, 17))) for d in past), dict(hours)


def test_crypto_daily_bars_start_at_midnight_utc(session_exchange: ExchangeProcess) -> None:
    """lumibot PR #826: Alpaca's crypto daily bars start at 00:00 UTC; a day is that UTC day's minutes."""
    c = CryptoHistoricalDataClient(url_override=session_exchange.url)
    end = datetime.now(UTC)
    days = bars(
        c.get_crypto_bars(
            CryptoBarsRequest(
                symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Day, start=end - timedelta(days=6), end=end
            )
        ),
        "BTC/USD",
    )
    assert len(days) >= 5
    assert all((b.timestamp.hour, b.timestamp.minute) == (0, 0) for b in days)
    day = days[-3]
    minutes = bars(
        c.get_crypto_bars(
            CryptoBarsRequest(
                symbol_or_symbols="BTC/USD",
                timeframe=TimeFrame.Minute,
                start=day.timestamp,
                end=day.timestamp + timedelta(days=1) - timedelta(minutes=1),
                limit=5000,
            )
        ),
        "BTC/USD",
    )
    assert len(minutes) == 1440
    assert day.volume == pytest.approx(sum(m.volume for m in minutes), rel=1e-6)
    assert day.high == max(m.high for m in minutes) and day.low == min(m.low for m in minutes)
