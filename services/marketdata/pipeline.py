"""The market-data pipeline shared by the live stream and the replayer.

raw msgpack frame → decode (``timestamp=2``: int nanoseconds, no pydantic) → QuoteBook, candle
aggregator, coalescer. :meth:`MarketDataPipeline.tick` hands out at most one
:class:`MarketDataBatch` per frame interval. Single-threaded: frames and ticks come from the same
thread (the market-data thread live, any one thread in a replay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgpack

from services.domain.events import Event
from services.domain.models import Bar
from services.marketdata.book import QuoteBook, fdec
from services.marketdata.candles import CandleAggregator, CandleGap
from services.marketdata.coalescer import Coalescer, TradeStats

log = logging.getLogger(__name__)
_NUMS = frozenset({int, float})  # wire numbers; bool is its own class, so True/False are refused


class RawQuote(NamedTuple):
    """A conflated quote as floats (converting 500 symbols x 30 frames to Decimal is waste)."""

    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_ns: int


@dataclass(frozen=True, slots=True)
class ExchangeBar:
    """A bar message from the stream (``T`` b: minute, u: updated, d: daily)."""

    kind: str
    bar: Bar


@dataclass(frozen=True, slots=True)
class CorrectedBar:
    """A closed one-minute bar of ours rebuilt after a trade correction or cancel (same ``ts``)."""

    bar: Bar


@dataclass(frozen=True, slots=True)
class MarketDataBatch:
    """One frame of market data for the UI: conflated quotes, merged trades, bars, gaps."""

    quotes: dict[str, RawQuote]
    trades: dict[str, TradeStats]
    bars: tuple[Bar, ...]  # closed one-minute bars from our aggregator
    exchange_bars: tuple[ExchangeBar, ...]
    partial_bars: tuple[Bar, ...]
    gaps: tuple[CandleGap, ...]
    dropped_total: int
    seq: int
    messages: int  # market-data messages decoded since the previous batch
    corrected_bars: tuple[Bar, ...] = ()  # closed one-minute bars rebuilt after a trade correction/cancel


@dataclass(frozen=True, slots=True)
class MarketDataBatchEvent(Event):
    batch: MarketDataBatch


def _wire_number(v: Any) -> float:
    kind = v.__class__  # not isinstance: a bool is an int, and is refused
    if kind is not int and kind is not float:
        raise TypeError(f"{v!r:.40} is not a number")
    return float(v)


def _bar_from_msg(m: dict[str, Any]) -> Bar:
    t = m["t"]
    ts = t if isinstance(t, datetime) else datetime.fromtimestamp(t / 1e9, tz=UTC)
    vw = m.get("vw")
    return Bar(
        m["S"],
        ts,
        fdec(m["o"]),
        fdec(m["h"]),
        fdec(m["l"]),
        fdec(m["c"]),
        fdec(float(m["v"])),
        m.get("n"),
        fdec(vw) if vw is not None else None,
    )


class MarketDataPipeline:
    """Decode frames and feed book, candles and coalescer. ``control`` receives non-data messages."""

    def __init__(
        self,
        book: QuoteBook | None = None,
        candles: CandleAggregator | None = None,
        coalescer: Coalescer | None = None,
        *,
        control: Callable[[dict[str, Any]], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        partial_bars: bool = True,
    ) -> None:
        self.book = book or QuoteBook()
        self.candles = candles or CandleAggregator()
        self.coalescer = coalescer or Coalescer()
        self._control = control
        self._wall = wall_clock
        self.partial_bars = partial_bars
        self.messages = 0
        self.frames = 0
        self.decode_errors = 0
        self.corrections = 0  # trade corrections and cancels applied
        self._since_batch = 0
        self._dirty_partials: set[str] = set()
        self.taps: list[Callable[[bytes, float], None]] = []  # e.g. the session recorder

    def process_frame(
        self,
        data: bytes,
        received: float | None = None,
        *,
        control: Callable[[dict[str, Any]], None] | None = None,
    ) -> int:
        """Decode one websocket frame (a msgpack array of messages); returns messages handled.

        ``control`` (the connection the frame came from) receives its non-data messages, in place
        of the pipeline-wide ``control``."""
        r = self._wall() if received is None else received
        for tap in self.taps:
            tap(data, r)
        self.frames += 1
        try:
            msgs = msgpack.unpackb(data, timestamp=2)
        except Exception as exc:
            self.decode_errors += 1
            log.warning("undecodable market-data frame (%d bytes): %s", len(data), exc)
            return 0
        if not isinstance(msgs, list):
            msgs = [msgs]
        return self.process_messages(msgs, r, control=control)

    def process_messages(
        self,
        msgs: list[Any],
        received: float,
        *,
        control: Callable[[dict[str, Any]], None] | None = None,
    ) -> int:
        book, candles, co = self.book, self.candles, self.coalescer
        ctl = control or self._control
        n = 0
        dirty = self._dirty_partials
        for m in msgs:
            try:
                kind = m["T"]
                if kind == "q":
                    s = m["S"]
                    bp, bs, ap, asz, t = m["bp"], m["bs"], m["ap"], m["as"], m["t"]
                    wrong = (
                        s.__class__ is not str
                        or t.__class__ is not int
                        or bp.__class__ not in _NUMS
                        or bs.__class__ not in _NUMS
                        or ap.__class__ not in _NUMS
                        or asz.__class__ not in _NUMS
                    )
                    if wrong:
                        raise TypeError("quote fields have the wrong types")
                    book.apply_quote(s, bp, bs, ap, asz, t, received)
                    co.put_quote(s, RawQuote(bp, bs, ap, asz, t))
                    n += 1
                elif kind == "t":
                    s = m["S"]
                    p, sz, t = m["p"], m["s"], m["t"]
                    i = m.get("i")
                    ident = None if i is None else (m.get("x"), i)
                    wrong = (
                        s.__class__ is not str
                        or t.__class__ is not int
                        or p.__class__ not in _NUMS
                        or sz.__class__ not in _NUMS
                    )
                    if wrong:
                        # A bool or text price would poison the candle builder and fail every tick.
                        raise TypeError("trade fields have the wrong types")
                    book.apply_trade(s, p, sz, t, received, ident)
                    candles.add_trade(s, p, sz, t, ident)
                    co.put_trade(s, p, sz, t)
                    dirty.add(s)
                    n += 1
                elif kind == "x" or kind == "c":
                    self._correction(m, kind)
                    n += 1
                elif kind in ("b", "u", "d"):
                    co.put_item(ExchangeBar(kind, _bar_from_msg(m)))
                    book.guard._last[m["S"]] = received
                    n += 1
                elif ctl is not None:
                    ctl(m)
            except (KeyError, TypeError, ValueError, ArithmeticError, OSError) as exc:
                # ArithmeticError: decimal.InvalidOperation / OverflowError from a bad bar field or
                # timestamp; OSError: an out-of-range timestamp on some platforms.
                self.decode_errors += 1
                log.warning("malformed market-data message %r: %s", m, exc)
        self.messages += n
        self._since_batch += n
        return n

    def _correction(self, m: dict[str, Any], kind: str) -> None:
        """Alpaca trade cancel/error (``T: "x"``: S, i, x, p, s, a, t) or correction (``T: "c"``: S, x,
        oi, op, os, ci, cp, cs, t), real-time stock data docs: applied to last price, volume, candles."""
        s = m["S"]
        if s.__class__ is not str:
            raise TypeError("correction symbol is not text")
        if kind == "x":
            i = m["i"]
            if i.__class__ is not int:
                raise TypeError("trade cancel id is not a whole number")
            ident = (m.get("x"), i)
            size = _wire_number(m["s"])
            self.candles.cancel(s, ident)
            self.book.cancel_trade(s, ident, size, self.candles.latest_trade(s))
        else:
            oi, ci = m["oi"], m["ci"]
            if oi.__class__ is not int or ci.__class__ is not int:
                raise TypeError("trade correction ids are not whole numbers")
            old_size, price, size = _wire_number(m["os"]), _wire_number(m["cp"]), _wire_number(m["cs"])
            x = m.get("x")
            self.candles.correct(s, (x, oi), (x, ci), price, size)
            self.book.correct_trade(s, (x, oi), old_size, (x, ci), price, size)
        self.corrections += 1
        self._dirty_partials.add(s)

    def tick(self, now: float | None = None, *, force: bool = False) -> MarketDataBatch | None:
        """Close due candles and, if a frame is due, return one batch (else None)."""
        wall = self._wall() if now is None else now
        self.candles.close_due(int(wall * 1e9))
        bars, gaps = self.candles.drain()
        for fixed in self.candles.drain_corrected():
            self.coalescer.put_item(CorrectedBar(fixed))
        for b in bars:
            self.coalescer.put_item(b)
        for g in gaps:
            self.coalescer.put_item(g)
        flush = self.coalescer.flush(now, force=force)  # replay: recording time; live: monotonic
        if flush is None:
            return None
        closed = tuple(i for i in flush.items if isinstance(i, Bar))
        partials: tuple[Bar, ...] = ()
        if self.partial_bars and self._dirty_partials:
            partials = tuple(p for s in self._dirty_partials if (p := self.candles.partial(s)) is not None)
            self._dirty_partials = set()
        batch = MarketDataBatch(
            quotes=flush.quotes,
            trades=flush.trades,
            bars=closed,
            exchange_bars=tuple(i for i in flush.items if isinstance(i, ExchangeBar)),
            partial_bars=partials,
            gaps=tuple(i for i in flush.items if isinstance(i, CandleGap)),
            dropped_total=flush.dropped_total,
            seq=flush.seq,
            messages=self._since_batch,
            corrected_bars=tuple(i.bar for i in flush.items if isinstance(i, CorrectedBar)),
        )
        self._since_batch = 0
        return batch
