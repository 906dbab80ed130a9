"""The simulated market looks like Alpaca's data and stays believable to a trader.

Sources (each test names the one it encodes):
- Extended hours in minute bars: Alpaca real-time stock data docs
  (docs.alpaca.markets/docs/real-time-stock-pricing-data, "Minute Bars": "Trades from pre-market and
  aftermarket are also aggregated and sent out on the bars channel", quoted in Petersoj/alpaca-java
  #166); docs/alpaca-rules.md "Market data": minute bars from iex/sip include
  extended-hours trades (04:00-20:00 ET); Alpaca support "How do you trade in extended hours":
  pre-market 4:00-9:30 am ET, after-hours 4:00-8:00 pm ET.
- Hourly bars: clock-hour buckets with the extended hours in them (alpaca-py #580: "Alpaca's API will
  return all hourly bars (including extended hours)", a 09:00 ET bar mixing pre-market and regular
  trades; Alpaca forum thread 14632: the first bar at 08:00 UTC "is actually 04:00 ET").
- Crypto daily bars start at midnight UTC: Lumiwealth/lumibot PR #826 (July 2025: "Alpaca changed the
  way it returns crypto daily bars, now sending them at midnight UTC"; before that they started at
  midnight America/Chicago, 06:00Z, as alpaca-py #169 and alpacahq/Alpaca-API #227 show).
- Trade corrections (``T: "c"``: x, oi, op, os, oc, ci, cp, cs, cc, t, z) and cancels/errors
  (``T: "x"``: i, x, p, s, a, t, z): Alpaca real-time stock data docs, sections "Trade Corrections" and
  "Trade Cancels/Errors"; docs/alpaca-rules.md: a canceled trade comes out of volume and bars.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from services.domain.calendar import NEW_YORK, MarketCalendar
from services.exchange.market.history import MINUTE_NS, NS, BarPeriod, BarSource, HistoryGenerator, PeriodUnit
from services.exchange.market.simulator import MarketSimulator
from services.exchange.market.universe import build_universe
from services.marketdata.pipeline import MarketDataPipeline
from tests.support.polling import async_wait_for

UNI = build_universe()
START = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)  # a Tuesday, 10:00 New York time
STOCKS = [s for s, i in UNI.items() if not i.is_crypto]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make(
    seed: int = 3, *, now: datetime = START, rate: float = 300.0
) -> tuple[MarketSimulator, Clock, HistoryGenerator]:
    cal = MarketCalendar()
    hist = HistoryGenerator(UNI, cal, seed)
    clock = Clock(now)
    return MarketSimulator(UNI, cal, hist, seed=seed, rate=rate, clock=clock), clock, hist


def steps(sim: MarketSimulator, clock: Clock, seconds: float, step: float) -> list[Any]:
    """The batches of ``seconds`` of simulated time, one step every ``step`` seconds."""
    out = []
    for _ in range(int(seconds / step)):
        clock.now += timedelta(seconds=step)
        out.append(sim.step(int(clock.now.timestamp() * 1e6) * 1000))
    return out


def messages(batches: list[Any]) -> list[dict[str, Any]]:
    return [m for b in batches for m in b.messages()]


def ny(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS, UTC).astimezone(NEW_YORK)


# ------------------------------------------------------------------------------ extended hours


def test_stock_minute_history_covers_the_extended_hours() -> None:
    """Alpaca's minute bars include pre-market and after-hours trades (04:00-20:00 ET; 17:00 on an
    early-close day). Source: real-time stock data docs "Minute Bars"; docs/alpaca-rules.md."""
    g = HistoryGenerator(UNI, MarketCalendar(), 1)
    day = g.day("AAPL", date(2024, 3, 5))
    assert len(day) == 16 * 60
    assert (ny(int(day.t[0])).hour, ny(int(day.t[0])).minute) == (4, 0)
    assert (ny(int(day.t[-1])).hour, ny(int(day.t[-1])).minute) == (19, 59)
    early = g.day("AAPL", date(2024, 11, 29))  # the day after Thanksgiving
    assert ny(int(early.t[-1])).hour == 16 and len(early) == 13 * 60
    # The extended hours trade far less than the session.
    regular = np.array([9 * 60 + 30 <= ny(int(t)).hour * 60 + ny(int(t)).minute < 16 * 60 for t in day.t])
    assert np.median(day.v[~regular]) < 0.2 * np.median(day.v[regular])


def test_hourly_stock_bars_are_clock_hours_from_0400_to_1900_new_york() -> None:
    """Alpaca's hourly stock bars start on the clock hour and include the extended hours: a day has
    bars from 04:00 to 19:00 ET and none outside 04:00-20:00 ET. Source: alpaca-py #580; Alpaca forum
    thread 14632."""
    src = BarSource(HistoryGenerator(UNI, MarketCalendar(), 1))
    lo = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp()) * NS
    hi = int(datetime(2024, 3, 9, tzinfo=UTC).timestamp()) * NS
    for sym in ("AAPL", "SPY"):
        bars = [b for chunk in src.bars(sym, BarPeriod(1, PeriodUnit.HOUR), lo, hi) for b in chunk.t.tolist()]
        hours = defaultdict(set)
        for t in bars:
            local = ny(t)
            assert local.minute == 0 and 4 <= local.hour < 20, local
            hours[local.date()].add(local.hour)
        assert hours and all(h == set(range(4, 20)) for h in hours.values()), hours


def test_live_stocks_trade_in_the_pre_market_but_not_after_20_00() -> None:
    """Stocks trade 04:00-20:00 ET (Alpaca support, extended hours); the minute bars of the pre-market
    reach the stream (real-time stock data docs "Minute Bars")."""
    pre = datetime(2024, 3, 5, 10, 0, 3, tzinfo=UTC)  # 05:00 New York
    sim, clock, _ = make(1, now=pre)
    msgs = messages(steps(sim, clock, 65, 0.5))
    assert any(m["T"] == "t" and m["S"] == "AAPL" for m in msgs)
    assert any(m["T"] == "b" and m["S"] == "AAPL" for m in msgs)
    night = datetime(2024, 3, 6, 1, 30, tzinfo=UTC)  # 20:30 New York
    sim2, clock2, _ = make(1, now=night)
    assert {m["S"] for m in messages(steps(sim2, clock2, 5, 0.5))} <= {"BTC/USD", "ETH/USD"}


# ------------------------------------------------------------------------------ crypto daily bars


def test_crypto_daily_bars_start_at_midnight_utc() -> None:
    """Alpaca's crypto daily bars start at 00:00 UTC and hold that UTC day's minutes. Source:
    Lumiwealth/lumibot PR #826 (Alpaca's change to midnight UTC, July 2025)."""
    g = HistoryGenerator(UNI, MarketCalendar(), 1)
    src = BarSource(g)
    lo = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * NS
    hi = int(datetime(2024, 3, 8, tzinfo=UTC).timestamp()) * NS
    days = next(iter(src.bars("BTC/USD", BarPeriod(1, PeriodUnit.DAY), lo, hi)))
    assert len(days) >= 7
    assert all(int(t) % (86_400 * NS) == 0 for t in days.t)
    d = int(days.t[2])
    minutes = [b for _, b in src.minutes("BTC/USD", d, d + 86_400 * NS)]
    assert sum(len(b) for b in minutes) == 1440
    assert days.v[2] == pytest.approx(sum(float(b.v.sum()) for b in minutes))
    assert days.h[2] == max(float(b.h.max()) for b in minutes)
    # Stocks keep New York midnight.
    stock = next(iter(src.bars("AAPL", BarPeriod(1, PeriodUnit.DAY), lo, hi)))
    assert all(ny(int(t)).hour == 0 for t in stock.t)


def test_the_stream_and_snapshot_crypto_daily_bar_start_at_midnight_utc() -> None:
    """The streamed daily bar (``d``) and the running daily bar of a crypto pair start at midnight UTC
    (lumibot PR #826); a stock's at midnight New York."""
    sim, clock, _ = make(2)
    msgs = messages(steps(sim, clock, 65, 0.5))
    daily = {m["S"]: m["t"].to_unix_nano() for m in msgs if m["T"] == "d"}
    assert daily["BTC/USD"] == int(datetime(2024, 3, 5, tzinfo=UTC).timestamp()) * NS
    assert ny(daily["AAPL"]).hour == 0 and ny(daily["AAPL"]).date() == date(2024, 3, 5)
    run = sim.running_day("BTC/USD")
    assert run is not None and run[0] == daily["BTC/USD"]


# ------------------------------------------------------------------------------ believable volume


def test_live_minute_volume_continues_the_history() -> None:
    """At launch the live per-minute volume carries on from the history's (no cliff on the chart):
    across the stocks, the median live minute volume is within [0.5, 2] of the history's median minute
    volume over the half hour before launch, and each symbol's live minutes trade about what the
    history says those minutes trade."""
    sim, clock, hist = make(3, rate=300)
    start = int(START.timestamp() * NS)
    steps(sim, clock, 300, 0.5)
    first_full = start - start % MINUTE_NS + MINUTE_NS
    live_total = np.zeros(4)
    hist_total = np.zeros(30)
    for sym in STOCKS:
        live = sim.live_bars(sym, first_full, 2**62)
        assert len(live) == 4
        live_total += live.v
        day = hist.day(sym, START.astimezone(NEW_YORK).date())
        hist_total += day.take((day.t < first_full - MINUTE_NS) & (day.t >= first_full - 31 * MINUTE_NS)).v
        same = day.take(np.isin(day.t, live.t))
        assert 0.67 < live.v.sum() / same.v.sum() < 1.5, sym
    ratio = np.median(live_total) / np.median(hist_total)
    assert 0.5 <= ratio <= 2, ratio


def test_live_volume_does_not_depend_on_the_message_rate() -> None:
    """A faster feed means more, smaller prints, not a busier market."""
    calm, c1, _ = make(4, rate=300)
    busy, c2, _ = make(4, rate=3000)
    steps(calm, c1, 125, 0.5)
    steps(busy, c2, 125, 0.5)
    start = int(START.timestamp() * NS)
    first_full = start - start % MINUTE_NS + MINUTE_NS
    for sym in ("AAPL", "SPY", "MSFT"):
        a = calm.live_bars(sym, first_full, 2**62).v.sum()
        b = busy.live_bars(sym, first_full, 2**62).v.sum()
        assert 0.8 < a / b < 1.25, sym


def test_daily_volume_varies_from_day_to_day() -> None:
    """A symbol's daily volume is not the same number every day (coefficient of variation > 0.15)."""
    src = BarSource(HistoryGenerator(UNI, MarketCalendar(), 1))
    lo = int(datetime(2024, 1, 2, tzinfo=UTC).timestamp()) * NS
    hi = int(datetime(2024, 4, 1, tzinfo=UTC).timestamp()) * NS
    for sym in ("AAPL", "BTC/USD"):
        v = np.concatenate([b.v for b in src.bars(sym, BarPeriod(1, PeriodUnit.DAY), lo, hi)])
        assert len(v) > 50
        assert np.std(v) / np.mean(v) > 0.15, sym


# ------------------------------------------------------------------------------ restart


@pytest.mark.parametrize(("run_s", "rel"), [(653.5, 5e-4), (1253.5, 5e-4), (1234.5, 2e-3)])
def test_prices_continue_across_an_exchange_restart(run_s: float, rel: float) -> None:
    """An exchange restarted with the same seed starts every symbol where the previous one left it,
    however long that one ran: within 5 bp (or 3 ticks) just after a minute boundary (653.5 s and
    1253.5 s end half a second into a minute), within the running minute's move otherwise."""
    a, clock, _ = make(5, rate=300)
    steps(a, clock, int(run_s), 1.0)
    steps(a, clock, run_s - int(run_s), run_s - int(run_s))
    before = {s: a.latest_trade(s)[1] for s in a.symbols}
    b = MarketSimulator(UNI, a.calendar, HistoryGenerator(UNI, a.calendar, 5), seed=5, rate=300, clock=clock)
    for s in a.symbols:
        tolerance = max(rel * before[s], 3 * float(UNI[s].tick))
        assert abs(b.latest_trade(s)[1] - before[s]) <= tolerance, (s, b.latest_trade(s)[1], before[s])


# ------------------------------------------------------------------------------ corrections, cancels


def _effective(trades: list[dict[str, Any]], fixes: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """Trade id -> (price, size) after applying the corrections and cancels."""
    out = {t["i"]: (t["p"], t["s"]) for t in trades}
    for f in fixes:
        if f["T"] == "x":
            del out[f["i"]]
        else:
            del out[f["oi"]]
            out[f["ci"]] = (f["cp"], f["cs"])
    return out


def test_corrections_and_cancels_name_real_trades_and_fix_the_bars() -> None:
    """Cancels (``x``) and corrections (``c``) have Alpaca's fields, name a trade the stream sent (same
    id, price, size, time), and the updated bar that follows, the bar the exchange serves and the
    daily bar all leave out the canceled trade and use the corrected one. Source: real-time stock data
    docs "Trade Corrections", "Trade Cancels/Errors"; docs/alpaca-rules.md."""
    sim, clock, _ = make(7, rate=1000)
    sim.correction_rate = 0.5
    msgs = messages(steps(sim, clock, 250, 0.5))
    fixes = [m for m in msgs if m["T"] in ("c", "x")]
    assert {m["T"] for m in fixes} == {"c", "x"}
    by_id = {(m["S"], m["i"]): m for m in msgs if m["T"] == "t"}
    for f in fixes:
        assert not UNI[f["S"]].is_crypto
        if f["T"] == "x":
            assert set(f) == {"T", "S", "i", "x", "p", "s", "a", "t", "z"}
            orig = by_id[(f["S"], f["i"])]
            assert (f["p"], f["s"], f["t"], f["x"]) == (orig["p"], orig["s"], orig["t"], orig["x"])
        else:
            assert set(f) == {"T", "S", "x", "oi", "op", "os", "oc", "ci", "cp", "cs", "cc", "t", "z"}
            orig = by_id[(f["S"], f["oi"])]
            assert (f["op"], f["os"], f["t"], f["oc"]) == (orig["p"], orig["s"], orig["t"], orig["c"])
            assert (f["cp"], f["cs"]) != (f["op"], f["os"]) and (f["S"], f["ci"]) not in by_id
    # The exchange's last word on each fixed minute is the aggregation of the trades that stand.
    start = int(START.timestamp() * NS)
    checked = 0
    for f in fixes:
        sym, minute = f["S"], f["t"].to_unix_nano() // MINUTE_NS * MINUTE_NS
        if minute < start - start % MINUTE_NS + MINUTE_NS:
            continue  # the first minute started before the simulator did
        in_minute = [
            m
            for m in msgs
            if m["T"] == "t" and m["S"] == sym and m["t"].to_unix_nano() // MINUTE_NS * MINUTE_NS == minute
        ]
        fx = [g for g in fixes if g["S"] == sym and g["t"].to_unix_nano() // MINUTE_NS * MINUTE_NS == minute]
        stand = _effective(in_minute, fx)
        v = sum(s for _, s in stand.values())
        vw = sum(p * s for p, s in stand.values()) / v
        after = [
            m
            for m in msgs[msgs.index(f) :]
            if m["T"] == "u" and m["S"] == sym and m["t"].to_unix_nano() == minute
        ]
        assert after, "no updated bar after the fix"
        served = dict(zip(("t", "o", "h", "l", "c", "v", "n", "vw"), _row(sim, sym, minute), strict=True))
        prices = [p for p, _ in stand.values()]
        for bar in (after[-1], served):
            assert bar["v"] == pytest.approx(v) and bar["n"] == len(stand)
            assert bar["vw"] == pytest.approx(vw, abs=1e-4)
            assert bar["h"] == max(prices) and bar["l"] == min(prices)
        checked += 1
    assert checked >= 3


def _row(sim: MarketSimulator, sym: str, minute: int) -> tuple[Any, ...]:
    b = sim.live_bars(sym, minute, minute + 1)
    assert len(b) == 1
    return (
        int(b.t[0]),
        float(b.o[0]),
        float(b.h[0]),
        float(b.l[0]),
        float(b.c[0]),
        float(b.v[0]),
        int(b.n[0]),
        float(b.vw[0]),
    )


def test_corrections_are_rare_at_the_default_rate() -> None:
    """Seeded and rare: well under one fixed minute in a hundred stock minutes."""
    sim, clock, _ = make(8, rate=300)
    steps(sim, clock, 1200, 1.0)
    fixed = sim.stats["corrections"] + sim.stats["cancels"]
    assert 0 < fixed < 0.01 * sim.stats["bars"]


def test_heron_candles_apply_the_exchange_corrections_and_match_its_bars() -> None:
    """Through Heron's own data pipeline, fed the exact msgpack frames the data stream sends: after
    every correction and cancel, Heron's one-minute candle equals the exchange's updated bar."""
    sim, clock, _ = make(9, rate=1000)
    sim.correction_rate = 0.5
    pipe = MarketDataPipeline(wall_clock=lambda: clock.now.timestamp())
    ours: dict[tuple[str, int], Any] = {}
    theirs: dict[tuple[str, int], Any] = {}
    for _ in range(int(200 / 0.5)):
        batch = steps(sim, clock, 0.5, 0.5)[0]
        for frame, _n in batch.frames():
            pipe.process_frame(frame, received=clock.now.timestamp())
        out = pipe.tick(clock.now.timestamp(), force=True)
        if out is None:
            continue
        for b in (*out.bars, *out.corrected_bars):
            ours[(b.symbol, int(b.ts.timestamp()) * NS)] = b
        for eb in out.exchange_bars:
            if eb.kind in ("b", "u"):
                theirs[(eb.bar.symbol, int(eb.bar.ts.timestamp()) * NS)] = eb.bar
    assert pipe.decode_errors == 0
    assert pipe.corrections == sim.stats["corrections"] + sim.stats["cancels"] > 0
    start = int(START.timestamp() * NS)
    first_full = start - start % MINUTE_NS + MINUTE_NS
    common = {k for k in theirs if k[1] >= first_full and k in ours}
    assert len(common) > 20
    mismatched = []
    for k in sorted(common):
        a, b = ours[k], theirs[k]
        same = (a.open, a.high, a.low, a.close, a.volume, a.trade_count) == (
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.trade_count,
        )
        # The exchange rounds vw to 4 decimals.
        if not same or (b.vwap is not None and abs(a.vwap - b.vwap) > Decimal("0.00005")):
            mismatched.append((k, a, b))
    assert not mismatched, mismatched[:3]


def test_corrections_reach_heron_through_its_data_stream_client(tmp_path: Path) -> None:
    """Over a real websocket from the exchange's data stream to Heron's own client
    (services/marketdata/datastream.py, subscribed to trades and bars only), cancels and corrections
    arrive with the trades subscription (Alpaca real-time stock data docs: "subscription to
    corrections and cancelErrors is automatic when you subscribe to the trade channel"), decode
    without error, and Heron's candles end equal to the minute bars the exchange serves afterwards
    (Heron does not subscribe to updatedBars, so the bars it is compared with are the served ones)."""
    from services.exchange.http.server import EXCHANGE, ExchangeConfig, build_app
    from services.marketdata.datastream import DataConnection
    from tests.unit.exchange.test_server_inprocess import KEY, StandInVenue

    clock = Clock(START)
    app = build_app(
        ExchangeConfig(data_dir=tmp_path, key=KEY, seed=11, rate=1000.0),
        venue_factory=StandInVenue,
        venue_routes=lambda app, v: v.add_routes(app),
        clock=clock,
    )  # type: ignore[arg-type]
    sim = app[EXCHANGE].market
    sim.correction_rate = 0.5
    hub = app[EXCHANGE].streams
    hub.flush_interval = 0  # each step goes out at once: the test paces the steps and waits for each
    pipe = MarketDataPipeline(wall_clock=lambda: clock.now.timestamp())
    ours: dict[tuple[str, int], Any] = {}

    def collect() -> None:
        out = pipe.tick(clock.now.timestamp(), force=True)
        if out is None:
            return
        for b in (*out.bars, *out.corrected_bars):
            ours[(b.symbol, int(b.ts.timestamp()) * NS)] = b

    async def main() -> None:
        async with TestServer(app) as server:
            url = f"ws://{server.host}:{server.port}/v2/iex"
            conn = DataConnection(
                "stocks", url, KEY.key_id, KEY.secret, pipe, lambda *a: None, data_timeout=None
            )
            await conn.update({"trades": STOCKS, "bars": STOCKS}, {})
            task = asyncio.create_task(conn.run())
            try:
                await async_wait_for('conn.acknowledged["trades"]', lambda: conn.acknowledged["trades"], 10)
                for _ in range(int(200 / 0.5)):
                    clock.now += timedelta(seconds=0.5)
                    sim.step(int(clock.now.timestamp() * 1e6) * 1000)
                    await async_wait_for(
                        'pipe.messages >= hub.stats["messages"]',
                        lambda: pipe.messages >= hub.stats["messages"],
                        10,
                    )
                    collect()
            finally:
                await conn.stop()
                await task

    asyncio.run(main())
    fixes = sim.stats["corrections"] + sim.stats["cancels"]
    assert fixes > 0 and pipe.corrections == fixes and pipe.decode_errors == 0
    start = int(START.timestamp() * NS)
    first_full = start - start % MINUTE_NS + MINUTE_NS
    compared = 0
    for sym in STOCKS:
        served = sim.live_bars(sym, first_full, 2**62)
        for j in range(len(served)):
            k = (sym, int(served.t[j]))
            if k not in ours:
                continue
            a = ours[k]
            assert (
                float(a.open),
                float(a.high),
                float(a.low),
                float(a.close),
                float(a.volume),
                a.trade_count,
            ) == (served.o[j], served.h[j], served.l[j], served.c[j], served.v[j], served.n[j]), k
            compared += 1
    assert compared > 20
