"""Trade corrections (``T: "c"``) and cancels/errors (``T: "x"``) reach last price, volume and candles.

Source: Alpaca real-time stock data docs (docs.alpaca.markets/docs/real-time-stock-pricing-data),
sections "Trade Corrections" ("a previously sent trade was incorrect and they contain the corrected
trade"; fields x, oi, op, os, oc, ci, cp, cs, cc, t, z) and "Trade Cancels/Errors" ("a previously
sent trade was canceled"; fields i, x, p, s, a, t, z). Subscription to both is automatic with the
trades channel. The two messages below are the documented examples, verbatim; the trades before
them are the documented trade shape (T, S, i, x, p, s, c, t, z) carrying the ids those examples
refer to. docs/alpaca-rules.md "Market data": a canceled trade must come out of volume, last price and
bars built from trades.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack

from services.marketdata.pipeline import MarketDataPipeline

# Documented examples (Alpaca real-time stock data docs).
CORRECTION = {
    "T": "c",
    "S": "EEM",
    "x": "M",
    "oi": 52983525033527,
    "op": 39.1582,
    "os": 440000,
    "oc": [" ", "7"],
    "ci": 52983525034326,
    "cp": 39.1809,
    "cs": 440000,
    "cc": [" ", "7"],
    "z": "B",
    "t": "2023-04-06T14:25:06.542305024Z",
}
CANCEL = {
    "T": "x",
    "S": "GOOGL",
    "i": 465,
    "x": "D",
    "p": 105.31,
    "s": 300,
    "a": "C",
    "z": "C",
    "t": "2023-04-06T13:15:42.83540958Z",
}


def ts(text: str) -> msgpack.Timestamp:
    """An RFC-3339 time as the msgpack Timestamp the stream sends with the msgpack content type."""
    head, _, frac = text.rstrip("Z").partition(".")
    sec = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
    return msgpack.Timestamp(sec, int(frac.ljust(9, "0")[:9]) if frac else 0)


def wire(msg: dict[str, Any]) -> dict[str, Any]:
    out = dict(msg)
    out["t"] = ts(msg["t"])
    return out


def trade(sym: str, i: int, x: str, p: float, s: int, t: str) -> dict[str, Any]:
    return {"T": "t", "S": sym, "i": i, "x": x, "p": p, "s": s, "c": ["@"], "z": "C", "t": t}


def feed(pipe: MarketDataPipeline, *msgs: dict[str, Any]) -> None:
    pipe.process_frame(msgpack.packb([wire(m) for m in msgs]), received=0.0)


def partial(pipe: MarketDataPipeline, sym: str) -> Any:
    bar = pipe.candles.partial(sym)
    assert bar is not None
    return bar


def test_a_canceled_last_trade_leaves_last_price_volume_and_candle() -> None:
    pipe = MarketDataPipeline()
    feed(
        pipe,
        trade("GOOGL", 464, "D", 105.20, 100, "2023-04-06T13:15:40.1Z"),
        trade("GOOGL", 465, "D", 105.31, 300, "2023-04-06T13:15:42.83540958Z"),
    )
    assert pipe.book.last_price("GOOGL") == Decimal("105.31")
    feed(pipe, CANCEL)
    entry = pipe.book.entry("GOOGL")
    assert entry.last == Decimal("105.2")  # the trade before the canceled one
    assert entry.volume == Decimal("100")
    bar = partial(pipe, "GOOGL")
    assert (bar.high, bar.close, bar.volume, bar.trade_count) == (
        Decimal("105.2"),
        Decimal("105.2"),
        Decimal("100"),
        1,
    )
    assert pipe.decode_errors == 0


def test_a_canceled_earlier_trade_keeps_last_price_and_fixes_high_and_volume() -> None:
    pipe = MarketDataPipeline()
    feed(
        pipe,
        trade("GOOGL", 465, "D", 105.31, 300, "2023-04-06T13:15:42.83540958Z"),
        trade("GOOGL", 470, "D", 105.10, 50, "2023-04-06T13:15:50Z"),
    )
    feed(pipe, CANCEL)
    entry = pipe.book.entry("GOOGL")
    assert entry.last == Decimal("105.1")
    assert entry.volume == Decimal("50")
    bar = partial(pipe, "GOOGL")
    assert (bar.open, bar.high, bar.volume) == (Decimal("105.1"), Decimal("105.1"), Decimal("50"))


def test_a_correction_replaces_the_trade_in_last_price_and_candle() -> None:
    pipe = MarketDataPipeline()
    feed(
        pipe,
        trade("EEM", 52983525033000, "M", 39.15, 100, "2023-04-06T14:25:01Z"),
        trade("EEM", 52983525033527, "M", 39.1582, 440000, "2023-04-06T14:25:06.542305024Z"),
    )
    feed(pipe, CORRECTION)
    entry = pipe.book.entry("EEM")
    assert entry.last == Decimal("39.1809")
    assert entry.volume == Decimal("440100")
    bar = partial(pipe, "EEM")
    assert (bar.high, bar.close, bar.volume) == (Decimal("39.1809"), Decimal("39.1809"), Decimal("440100"))


def test_a_correction_of_the_size_changes_the_volume() -> None:
    """Same documented shape, a corrected size (``cs``) different from the original (``os``)."""
    pipe = MarketDataPipeline()
    feed(pipe, trade("EEM", 52983525033527, "M", 39.1582, 440000, "2023-04-06T14:25:06.542305024Z"))
    feed(pipe, dict(CORRECTION, cs=40000))
    assert pipe.book.entry("EEM").volume == Decimal("40000")
    assert partial(pipe, "EEM").volume == Decimal("40000")


def test_a_cancel_for_a_closed_bar_reissues_that_bar() -> None:
    pipe = MarketDataPipeline()
    feed(
        pipe,
        trade("GOOGL", 460, "D", 105.00, 200, "2023-04-06T13:15:10Z"),
        trade("GOOGL", 465, "D", 105.31, 300, "2023-04-06T13:15:42.83540958Z"),
        trade("GOOGL", 480, "D", 105.05, 10, "2023-04-06T13:16:05Z"),
    )  # closes the 13:15 bar
    first = pipe.tick(now=datetime(2023, 4, 6, 13, 16, 6, tzinfo=UTC).timestamp(), force=True)
    assert first is not None and [b.high for b in first.bars] == [Decimal("105.31")]
    feed(pipe, CANCEL)
    batch = pipe.tick(now=datetime(2023, 4, 6, 13, 16, 7, tzinfo=UTC).timestamp(), force=True)
    assert batch is not None
    (fixed,) = batch.corrected_bars
    assert fixed.ts == datetime(2023, 4, 6, 13, 15, tzinfo=UTC)
    assert (fixed.high, fixed.close, fixed.volume, fixed.trade_count) == (
        Decimal("105"),
        Decimal("105"),
        Decimal("200"),
        1,
    )
    assert pipe.book.entry("GOOGL").volume == Decimal("210")
    assert pipe.book.last_price("GOOGL") == Decimal("105.05")


def test_a_cancel_of_an_unknown_trade_still_fixes_volume() -> None:
    """A trade from before Heron connected is in the day's volume (seeded from a snapshot): its
    cancel still takes its size out; last price and candles, which never had it, are untouched."""
    pipe = MarketDataPipeline()
    pipe.book.set_day_volume("GOOGL", Decimal("1000"))
    feed(pipe, trade("GOOGL", 900, "D", 106.0, 5, "2023-04-06T13:15:50Z"))
    feed(pipe, CANCEL)
    assert pipe.book.entry("GOOGL").volume == Decimal("705")
    assert pipe.book.last_price("GOOGL") == Decimal("106.0")
    assert partial(pipe, "GOOGL").volume == Decimal("5")
