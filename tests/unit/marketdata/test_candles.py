from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.marketdata.candles import MINUTE_NS, CandleAggregator

M0 = int(datetime(2024, 3, 1, 15, 0, tzinfo=UTC).timestamp()) // 60


def ns(minute: int, second: float = 0.0) -> int:
    return (M0 + minute) * MINUTE_NS + int(second * 1e9)


def test_ohlcv_n_and_vwap() -> None:
    agg = CandleAggregator()
    agg.add_trade("AAPL", 10.0, 100, ns(0, 1))
    agg.add_trade("AAPL", 12.0, 50, ns(0, 20))
    agg.add_trade("AAPL", 9.5, 10, ns(0, 40))
    agg.add_trade("AAPL", 11.0, 40, ns(0, 59.9))
    partial = agg.partial("AAPL")
    assert partial is not None and partial.close == Decimal("11.0")
    agg.add_trade("AAPL", 11.5, 1, ns(1, 0))  # next minute closes the first bar
    bars, gaps = agg.drain()
    assert gaps == [] and len(bars) == 1
    b = bars[0]
    assert (b.open, b.high, b.low, b.close) == (Decimal(10), Decimal(12), Decimal("9.5"), Decimal(11))
    assert b.volume == Decimal("200") and b.trade_count == 4
    assert b.vwap == Decimal(str(round((1000 + 600 + 95 + 440) / 200, 6)))
    assert b.ts == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def test_short_gap_filled_with_flat_bars() -> None:
    agg = CandleAggregator(max_fill_minutes=2)
    agg.add_trade("AAPL", 10.0, 1, ns(0))
    agg.add_trade("AAPL", 11.0, 1, ns(3))  # minutes 1 and 2 had no trades
    bars, gaps = agg.drain()
    assert gaps == []
    assert [b.ts.minute for b in bars] == [0, 1, 2]
    flat = bars[1]
    assert flat.volume == 0 and flat.trade_count == 0
    assert flat.open == flat.high == flat.low == flat.close == Decimal("10.0")


def test_long_gap_is_marked_not_filled() -> None:
    gaps_seen = []
    agg = CandleAggregator(max_fill_minutes=2, on_gap=gaps_seen.append)
    agg.add_trade("AAPL", 10.0, 1, ns(0))
    agg.add_trade("AAPL", 11.0, 1, ns(4))  # 3 empty minutes
    bars, gaps = agg.drain()
    assert len(bars) == 1 and len(gaps) == 1 and gaps_seen == gaps
    assert gaps[0].missing_minutes == 3 and gaps[0].after.minute == 0 and gaps[0].before.minute == 4


def test_close_due_by_wall_clock_and_late_trades_counted() -> None:
    agg = CandleAggregator(grace_seconds=2)
    agg.add_trade("AAPL", 10.0, 1, ns(0, 5))
    agg.close_due(ns(1, 1))
    assert agg.drain()[0] == []
    agg.close_due(ns(1, 2))
    bars, _ = agg.drain()
    assert len(bars) == 1
    agg.add_trade("AAPL", 9.0, 1, ns(0, 59))  # arrives after its bar closed
    assert agg.late_trades == 1 and agg.partial("AAPL") is None
    agg.add_trade("AAPL", 9.0, 1, ns(1, 30))
    assert agg.partial("AAPL") is not None


def test_symbols_are_independent() -> None:
    agg = CandleAggregator()
    agg.add_trade("A", 1.0, 1, ns(0))
    agg.add_trade("B", 2.0, 1, ns(0))
    agg.add_trade("A", 1.5, 1, ns(1))
    bars, _ = agg.drain()
    assert [b.symbol for b in bars] == ["A"]
    assert {b.symbol for b in agg.partials()} == {"A", "B"}


def test_closed_bars_equal_the_exchange_simulators_final_bars_late_prints_included() -> None:
    """Fed the simulator's stream in order, every closed bar equals the exchange's last word on it.

    A late print arrives after the exchange's minute bar ("b"), before any trade of the next minute,
    and is followed by an updated bar ("u"): the aggregator's bar must equal the "u" one then. A trade
    cancel ("x") or correction ("c", Alpaca real-time stock data docs) is applied as Heron's pipeline
    applies it, and the "u" that follows it is the exchange's last word too.
    """
    from datetime import timedelta

    from services.domain.calendar import MarketCalendar
    from services.exchange.market.history import HistoryGenerator
    from services.exchange.market.simulator import MarketSimulator
    from services.exchange.market.universe import build_universe

    uni, cal = build_universe(), MarketCalendar(always_open=True)
    now = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)
    sim = MarketSimulator(uni, cal, HistoryGenerator(uni, cal, 3), seed=3, rate=400, clock=lambda: now)
    agg = CandleAggregator()
    final: dict[tuple[str, datetime], tuple[str, dict]] = {}
    first_minute: dict[str, int] = {}
    for _ in range(int(185 / 0.5)):
        now += timedelta(seconds=0.5)
        for m in sim.step(int(now.timestamp() * 1e6) * 1000).messages():
            if m["T"] == "t":
                t = m["t"].to_unix_nano()
                first_minute.setdefault(m["S"], t // MINUTE_NS)
                agg.add_trade(m["S"], m["p"], m["s"], t, (m.get("x"), m["i"]))
            elif m["T"] == "x":
                assert agg.cancel(m["S"], (m["x"], m["i"]))
            elif m["T"] == "c":
                assert agg.correct(m["S"], (m["x"], m["oi"]), (m["x"], m["ci"]), m["cp"], m["cs"])
            elif m["T"] in ("b", "u"):
                ts = datetime.fromtimestamp(m["t"].to_unix_nano() / 1e9, UTC)
                final[(m["S"], ts)] = (m["T"], m)
    ours, _gaps = agg.drain()
    compared: list[str] = []
    for bar in ours:
        key = (bar.symbol, bar.ts)
        if key not in final or int(bar.ts.timestamp()) // 60 == first_minute[bar.symbol]:
            continue  # a flat fill, or the first minute, which began before the simulator did
        kind, m = final[key]
        assert (bar.open, bar.high, bar.low, bar.close) == tuple(Decimal(str(m[k])) for k in "ohlc"), key
        assert bar.trade_count == m["n"] and float(bar.volume) == m["v"], (key, kind)
        assert bar.vwap is not None and abs(float(bar.vwap) - m["vw"]) <= 1e-4, (key, kind)
        compared.append(kind)
    assert compared.count("b") >= 20
    assert "u" in compared, "no late print in the run: choose a seed or a longer run that has one"
