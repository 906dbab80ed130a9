"""HistoryGenerator / BarSource: determinism, sessions, continuity, aggregation, live join."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from services.domain.calendar import MarketCalendar
from services.exchange.market.history import (
    MINUTE_NS,
    NS,
    BarPeriod,
    Bars,
    BarSource,
    HistoryGenerator,
    PeriodUnit,
    aggregate,
    parse_timeframe,
    ticks_from_bars,
)
from services.exchange.market.universe import build_universe

UNI = build_universe()


def gen(seed: int = 1, always_open: bool = False) -> HistoryGenerator:
    return HistoryGenerator(UNI, MarketCalendar(always_open=always_open), seed)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS


def test_deterministic_and_independent_of_generation_order() -> None:
    a = gen(1).day("AAPL", date(2024, 3, 5))
    g = gen(1)
    g.day("AAPL", date(2024, 3, 4))
    b = g.day("AAPL", date(2024, 3, 5))
    assert np.array_equal(a.c, b.c) and np.array_equal(a.v, b.v)
    assert not np.array_equal(a.c, gen(2).day("AAPL", date(2024, 3, 5)).c)


def test_stock_minutes_follow_the_nyse_calendar_and_crypto_trades_all_day() -> None:
    """Stock minutes run 04:00-20:00 New York time (17:00 on an early close): Alpaca's minute bars
    include the pre-market and after-hours (real-time stock data docs, "Minute Bars")."""
    g = gen()
    assert len(g.day("AAPL", date(2024, 3, 5))) == 960
    assert len(g.day("AAPL", date(2024, 3, 9))) == 0  # Saturday
    assert len(g.day("AAPL", date(2024, 7, 4))) == 0  # Independence Day
    assert len(g.day("AAPL", date(2024, 11, 29))) == 780  # early close
    assert len(g.day("BTC/USD", date(2024, 3, 9))) == 1440
    assert len(gen(always_open=True).day("AAPL", date(2024, 3, 9))) == 1440


def test_ohlc_invariants_and_continuity_between_days() -> None:
    g = gen()
    for sym in ("AAPL", "BTC/USD", "HTBX"):
        d1, d2 = g.day(sym, date(2024, 3, 5)), g.day(sym, date(2024, 3, 6))
        for b in (d1, d2):
            assert np.all(b.l <= np.minimum(b.o, b.c)) and np.all(b.h >= np.maximum(b.o, b.c))
            assert np.all((b.vw >= b.l) & (b.vw <= b.h)) and np.all(b.n >= 1) and np.all(b.v > 0)
            assert np.all(b.o[1:] == b.c[:-1])
        assert abs(d2.o[0] - d1.c[-1]) / d1.c[-1] < 0.002
    # A year of levels stays in a plausible band around the base price.
    closes = [g.day("AAPL", date(2023, m, 15)).c for m in range(1, 13)]
    levels = [c[-1] for c in closes if len(c)]
    assert all(60 < x < 600 for x in levels)


def test_aggregation_matches_the_minutes() -> None:
    src = BarSource(gen(always_open=True))
    lo, hi = ns(datetime(2024, 3, 5, 14, 30, tzinfo=UTC)), ns(datetime(2024, 3, 5, 15, 29, tzinfo=UTC))
    minutes = Bars.concat([b for _, b in src.minutes("MSFT", lo, hi + MINUTE_NS)])
    five = Bars.concat(list(src.bars("MSFT", parse_timeframe("5Min"), lo, hi)))
    assert len(five) == 12 and np.all(five.t % (5 * MINUTE_NS) == 0)
    first = minutes.take(slice(0, 5))
    assert five.o[0] == first.o[0] and five.c[0] == first.c[4]
    assert five.h[0] == first.h.max() and five.l[0] == first.l.min() and five.n[0] == first.n.sum()
    assert five.v[0] == pytest.approx(first.v.sum())
    one_day = BarPeriod(1, PeriodUnit.DAY)
    day = Bars.concat(list(src.bars("MSFT", one_day, lo - 3600 * NS * 12, hi + 3600 * NS * 12)))
    assert len(day) == 1
    keys = np.zeros(len(minutes), dtype=np.int64)
    assert aggregate(minutes, keys).h[0] <= day.h[0]


def test_parse_timeframe() -> None:
    assert str(parse_timeframe("15Min")) == "15Min" and parse_timeframe("1H") == BarPeriod(1, PeriodUnit.HOUR)
    assert parse_timeframe("1Day").unit == "Day" and parse_timeframe("3Month").amount == 3
    for bad in ("", "0Min", "60Min", "2Day", "5Parsec", "Min", "-1Min"):
        with pytest.raises(ValueError):
            parse_timeframe(bad)


class FakeLive:
    def __init__(self, since: int, bars: Bars, now: int) -> None:
        self.since, self.bars, self.now = since, bars, now

    def live_since_ns(self, symbol: str) -> int | None:
        return self.since

    def live_bars(self, symbol: str, lo_ns: int, hi_ns: int) -> Bars:
        return self.bars.take((self.bars.t >= lo_ns) & (self.bars.t < hi_ns))

    def now_ns(self) -> int:
        return self.now


def test_bar_source_serves_generated_then_live_minutes_and_never_the_running_one() -> None:
    g = gen(always_open=True)
    since = ns(datetime(2024, 3, 5, 15, 0, tzinfo=UTC))
    live = Bars.from_rows([(since + i * MINUTE_NS, 1.0, 2.0, 0.5, 1.5, 10.0, 3, 1.2) for i in range(3)])
    now = since + 3 * MINUTE_NS + 5 * NS
    src = BarSource(g, FakeLive(since, live, now))
    got = Bars.concat([b for _, b in src.minutes("AAPL", since - 10 * MINUTE_NS, now + 10 * MINUTE_NS)])
    assert len(got) == 13
    assert np.all(got.c[-3:] == 1.5) and got.t[-1] == since + 2 * MINUTE_NS
    assert np.array_equal(
        got.c[:10],
        g.day("AAPL", date(2024, 3, 5))
        .take(
            (g.day("AAPL", date(2024, 3, 5)).t >= since - 10 * MINUTE_NS)
            & (g.day("AAPL", date(2024, 3, 5)).t < since)
        )
        .c,
    )


def test_ticks_stay_inside_their_bars() -> None:
    bars = gen().day("NVDA", date(2024, 3, 5)).take(slice(0, 30))
    tr = ticks_from_bars(bars, seed=1, symbol="NVDA", tick=0.01, quotes=False, crypto=False)
    owner = (tr.t - bars.t[0]) // MINUTE_NS
    assert np.all(tr.a >= bars.l[owner] - 1e-9) and np.all(tr.a <= bars.h[owner] + 1e-9)
    assert np.all(np.diff(tr.t) > 0)
    q = ticks_from_bars(bars, seed=1, symbol="NVDA", tick=0.01, quotes=True, crypto=False)
    assert np.all(q.a < q.c)


def test_a_day_served_partly_generated_and_partly_live_is_one_daily_bar() -> None:
    """The day the exchange started streaming holds generated minutes before the live ones: its
    daily bar is one bar (Alpaca labels a stock's daily bar New York midnight: XOM 2024-05-16 →
    2024-05-16T04:00:00Z, Alpaca forum "Open/Close Daily Bar Prices vs. Open/Close Auction Prices",
    2024; docs/alpaca-rules.md, "Market data"), never a generated bar and a live bar with one label."""
    g = gen(always_open=True)
    since = ns(datetime(2024, 3, 5, 15, 0, tzinfo=UTC))
    live = Bars.from_rows([(since + i * MINUTE_NS, 1.0, 2.0, 0.5, 1.5, 10.0, 3, 1.2) for i in range(3)])
    now = since + 3 * MINUTE_NS + 5 * NS
    src = BarSource(g, FakeLive(since, live, now))
    one_day = BarPeriod(1, PeriodUnit.DAY)
    days = Bars.concat(list(src.bars("AAPL", one_day, ns(datetime(2024, 3, 1, tzinfo=UTC)), now)))
    assert np.all(np.diff(days.t) > 0)
    today = ns(datetime(2024, 3, 5, 5, 0, tzinfo=UTC))  # New York midnight (EST)
    assert days.t[-1] == today
    generated = g.day("AAPL", date(2024, 3, 5))
    before = generated.take(generated.t < since)
    assert days.o[-1] == before.o[0] and days.c[-1] == 1.5
    assert days.h[-1] == max(before.h.max(), 2.0) and days.l[-1] == min(before.l.min(), 0.5)
    assert days.v[-1] == pytest.approx(before.v.sum() + 30.0)
    minutes = [d for d, _ in src.minutes("AAPL", since - 10 * MINUTE_NS, now)]
    assert minutes == [date(2024, 3, 5)]  # one chunk per day, as the docstring promises
