"""MarketSimulator: determinism, bars = aggregation of the trades sent, sessions, halts, rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.calendar import MarketCalendar
from services.exchange.market.history import MINUTE_NS, NS, HistoryGenerator
from services.exchange.market.simulator import MarketSimulator
from services.exchange.market.universe import build_universe

START = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)  # a Tuesday, NYSE open


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make(
    seed: int = 3, *, always_open: bool = False, now: datetime = START, rate: float = 3000.0
) -> tuple[MarketSimulator, Clock, HistoryGenerator]:
    uni = build_universe()
    cal = MarketCalendar(always_open=always_open)
    hist = HistoryGenerator(uni, cal, seed)
    clock = Clock(now)
    return MarketSimulator(uni, cal, hist, seed=seed, rate=rate, clock=clock), clock, hist


def run(sim: MarketSimulator, clock: Clock, seconds: float, step: float = 0.02) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(int(seconds / step)):
        clock.now += timedelta(seconds=step)
        out.extend(sim.step(int(clock.now.timestamp() * 1e6) * 1000).messages())
    return out


def test_same_seed_same_stream_and_different_seed_differs() -> None:
    a, ca, _ = make(1)
    b, cb, _ = make(1)
    c, cc, _ = make(2)
    ma, mb, mc = run(a, ca, 1), run(b, cb, 1), run(c, cc, 1)
    assert len(ma) > 100
    assert ma == mb
    assert ma != mc


def test_minute_bars_are_the_aggregation_of_the_trades_sent() -> None:
    sim, clock, _ = make(5, rate=200)
    msgs = run(sim, clock, 125, step=0.5)
    minute_of = lambda m: m["t"].to_unix_nano() // MINUTE_NS * MINUTE_NS  # noqa: E731
    final_bars: dict[tuple[str, int], dict[str, Any]] = {}
    for m in msgs:
        if m["T"] in ("b", "u"):
            final_bars[(m["S"], m["t"].to_unix_nano())] = m
    assert final_bars, "no bar closed in two minutes"
    checked = 0
    for (sym, t0), bar in final_bars.items():
        trades = [m for m in msgs if m["T"] == "t" and m["S"] == sym and minute_of(m) == t0]
        if not trades:
            continue
        first_minute = t0 == min(k[1] for k in final_bars if k[0] == sym)
        if first_minute:
            continue  # the first minute started before the simulator did
        prices = [t["p"] for t in trades]
        in_order = sorted(trades, key=lambda t: t["t"].to_unix_nano())
        assert bar["o"] == in_order[0]["p"] or bar["T"] == "u"
        assert bar["h"] == max(prices) and bar["l"] == min(prices)
        assert bar["c"] == in_order[-1]["p"] or bar["T"] == "u"
        assert bar["n"] == len(trades)
        assert bar["v"] == pytest.approx(sum(t["s"] for t in trades))
        vw = sum(t["p"] * t["s"] for t in trades) / sum(t["s"] for t in trades)
        assert bar["vw"] == pytest.approx(vw, abs=1e-4)
        checked += 1
    assert checked >= 5
    assert any(m["T"] == "d" for m in msgs)


def test_stocks_do_not_trade_outside_the_session_but_crypto_does() -> None:
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    sim, clock, _ = make(1, now=saturday)
    msgs = run(sim, clock, 1)
    assert msgs and {m["S"] for m in msgs} <= {"BTC/USD", "ETH/USD"}
    sim2, clock2, _ = make(1, now=saturday, always_open=True)
    assert any(m["S"] == "AAPL" for m in run(sim2, clock2, 1))


def test_quotes_sit_on_the_tick_grid_and_notify_the_venue() -> None:
    sim, clock, _ = make(2)
    changed: list[str] = []
    sim.on_nbbo(changed.append)
    msgs = run(sim, clock, 0.5)
    quotes = [m for m in msgs if m["T"] == "q"]
    assert quotes
    for q in quotes:
        assert q["bp"] < q["ap"]
        if q["S"] == "AAPL":
            assert round(q["bp"] * 100) == pytest.approx(q["bp"] * 100, abs=1e-6)
    assert set(changed) == {q["S"] for q in quotes}
    last = [q for q in quotes if q["S"] == "MSFT"][-1]
    nbbo = sim.nbbo("MSFT")
    assert nbbo is not None and float(nbbo.bid) == last["bp"] and float(nbbo.ask) == last["ap"]
    assert sim.nbbo("NOPE") is None


def test_halt_stops_a_symbol_and_emits_statuses() -> None:
    sim, clock, _ = make(4)
    sim.halt("AAPL", True)
    assert sim.is_halted("AAPL")
    msgs = run(sim, clock, 1)
    assert msgs[0]["T"] == "s" and msgs[0]["S"] == "AAPL" and msgs[0]["sc"] == "H"
    assert not any(m["S"] == "AAPL" and m["T"] in "tq" for m in msgs)
    sim.halt("AAPL", False)
    msgs = run(sim, clock, 1)
    assert msgs[0]["sc"] == "T" and any(m["S"] == "AAPL" and m["T"] == "q" for m in msgs)


def test_rate_scales_from_calm_to_storm() -> None:
    sim, clock, _ = make(1, rate=300)
    calm = [m for m in run(sim, clock, 1) if m["T"] in "tq"]
    sim.set_rate(100_000)
    storm = [m for m in run(sim, clock, 0.2) if m["T"] in "tq"]
    assert 200 < len(calm) < 400
    assert 17_000 < len(storm) < 23_000
    with pytest.raises(ValueError):
        sim.set_rate(-1)


def test_starts_at_the_history_close_and_serves_live_minutes() -> None:
    sim, clock, hist = make(6, rate=100)
    now_ns = int(START.timestamp() * NS)
    t_last, close = hist.last_minute_before("AAPL", now_ns)  # type: ignore[misc]
    assert sim.live_since_ns("AAPL") == t_last + MINUTE_NS
    assert float(sim.latest_trade("AAPL")[1]) == pytest.approx(close)
    run(sim, clock, 130, step=1.0)
    live = sim.live_bars("AAPL", 0, 2**62)
    assert len(live) >= 2 and live.t[0] >= t_last + MINUTE_NS
