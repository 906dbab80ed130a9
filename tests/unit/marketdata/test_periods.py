"""The forming bar of a coarser timeframe, built from one-minute bars (services/marketdata/periods.py).

Period labels follow Alpaca's bars (docs/alpaca-rules.md, "Market data"): intraday bars aligned to
the clock in UTC, hourly bars on the hour with extended hours included (alpaca-py #580; Alpaca
forum "Candles do not fully respect start and end parameters", 4H bars start at 4 x n hours UTC);
a stock's daily bar labelled New York midnight (XOM 2024-05-16 -> 2024-05-16T04:00Z, Alpaca forum
"Open/Close Daily Bar Prices vs. Open/Close Auction Prices"); a crypto daily bar labelled UTC
midnight (Lumiwealth/lumibot #826: Alpaca moved crypto daily bars from Chicago to UTC midnight).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.domain.enums import Timeframe
from services.marketdata.periods import PeriodBar, PeriodBarBuilder, period_start

T = datetime(2026, 3, 9, 14, 37, 0, tzinfo=UTC)  # 10:37 New York (EDT since 2026-03-08)


def minute(ts: datetime, o: float, h: float, low: float, c: float, v: float) -> PeriodBar:
    return PeriodBar(ts, o, h, low, c, v)


@pytest.mark.parametrize(
    ("tf", "at", "start"),
    [
        (Timeframe.MIN_5, T + timedelta(seconds=42), datetime(2026, 3, 9, 14, 35, tzinfo=UTC)),
        (Timeframe.MIN_15, T, datetime(2026, 3, 9, 14, 30, tzinfo=UTC)),
        (Timeframe.HOUR_1, T, datetime(2026, 3, 9, 14, 0, tzinfo=UTC)),
        (Timeframe.MIN_1, T + timedelta(seconds=59), T),
    ],
)
def test_intraday_periods_are_aligned_to_the_clock(tf: Timeframe, at: datetime, start: datetime) -> None:
    assert period_start(tf, at, crypto=False) == start
    assert period_start(tf, at, crypto=True) == start


def test_a_stock_day_is_the_new_york_day_and_a_crypto_day_the_utc_day() -> None:
    # 21:30 New York on 9 March (EDT) is 01:30 UTC on 10 March.
    evening = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)
    assert period_start(Timeframe.DAY_1, evening, crypto=False) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    assert period_start(Timeframe.DAY_1, evening, crypto=True) == datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    # In winter (EST) New York midnight is 05:00 UTC.
    winter = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)
    assert period_start(Timeframe.DAY_1, winter, crypto=False) == datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_start(Timeframe.DAY_1, datetime(2026, 1, 15), crypto=False)


def test_the_forming_bar_merges_its_minutes_and_follows_the_minute_in_progress() -> None:
    b = PeriodBarBuilder(Timeframe.MIN_5, crypto=False)
    t0 = datetime(2026, 3, 9, 14, 35, tzinfo=UTC)
    seeded = b.seed(
        [minute(t0, 10, 11, 9.5, 10.5, 100), minute(t0 + timedelta(minutes=1), 10.5, 10.8, 10.2, 10.6, 50)]
    )
    assert seeded == PeriodBar(t0, 10, 11, 9.5, 10.6, 150)
    # The stream's partial bar of the third minute, then the same minute grown.
    m2 = t0 + timedelta(minutes=2)
    assert b.add(minute(m2, 10.6, 10.7, 10.6, 10.7, 5)) == PeriodBar(t0, 10, 11, 9.5, 10.7, 155)
    assert b.add(minute(m2, 10.6, 11.4, 10.6, 11.3, 9)) == PeriodBar(t0, 10, 11.4, 9.5, 11.3, 159)
    m3 = t0 + timedelta(minutes=3)
    assert b.add(minute(m3, 11.3, 11.35, 11.2, 11.25, 4)) == PeriodBar(t0, 10, 11.4, 9.5, 11.25, 163)
    # A later report of an earlier minute (a trade correction rebuilt it) replaces it, counted once.
    assert b.add(minute(m2, 10.6, 11.4, 9.0, 11.3, 6)) == PeriodBar(t0, 10, 11.4, 9.0, 11.25, 160)
    # The next period starts from its first minute alone.
    t5 = t0 + timedelta(minutes=5)
    assert b.add(minute(t5, 11.3, 11.5, 11.2, 11.4, 7)) == PeriodBar(t5, 11.3, 11.5, 11.2, 11.4, 7)
    assert b.start == t5
    # A late report of the finished period changes nothing.
    assert b.add(minute(m2, 10.6, 12, 10.6, 11.9, 20)) is None
    assert b.bar() == PeriodBar(t5, 11.3, 11.5, 11.2, 11.4, 7)


def test_the_streams_first_minute_does_not_undercount_what_history_already_held() -> None:
    # Heron subscribed mid-minute: the stream's bar of that minute lacks the trades before.
    b = PeriodBarBuilder(Timeframe.MIN_15, crypto=False)
    t0 = datetime(2026, 3, 9, 14, 30, tzinfo=UTC)
    m = t0 + timedelta(minutes=7)
    b.seed([minute(t0, 10, 10.4, 9.9, 10.2, 300), minute(m, 10.2, 10.9, 10.1, 10.8, 80)])
    assert b.add(minute(m, 10.75, 10.85, 10.7, 10.7, 12)) == PeriodBar(t0, 10, 10.9, 9.9, 10.7, 380)
    assert b.add(minute(m, 10.75, 11.0, 10.7, 10.95, 95)) == PeriodBar(t0, 10, 11.0, 9.9, 10.95, 395)


def test_a_stock_daily_bar_takes_the_evening_minute_into_the_new_york_day() -> None:
    b = PeriodBarBuilder(Timeframe.DAY_1, crypto=False)
    day = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    b.seed([minute(datetime(2026, 3, 9, 13, 30, tzinfo=UTC), 50, 51, 49, 50.5, 1000)])
    after_hours = datetime(2026, 3, 9, 23, 59, tzinfo=UTC)  # 19:59 New York, same trading day
    assert b.add(minute(after_hours, 50.5, 52, 50.5, 51.8, 10)) == PeriodBar(day, 50, 52, 49, 51.8, 1010)
    crypto = PeriodBarBuilder(Timeframe.DAY_1, crypto=True)
    crypto.seed([minute(datetime(2026, 3, 9, 13, 30, tzinfo=UTC), 50, 51, 49, 50.5, 1000)])
    # The same minute is already the next UTC day's first for crypto.
    nxt = datetime(2026, 3, 10, 0, 1, tzinfo=UTC)
    assert crypto.add(minute(nxt, 50.5, 52, 50.5, 51.8, 10)) == PeriodBar(
        datetime(2026, 3, 10, tzinfo=UTC), 50.5, 52, 50.5, 51.8, 10
    )
