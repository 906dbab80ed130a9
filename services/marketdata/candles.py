"""``CandleAggregator``: market trades → one-minute OHLCV bars that agree with the exchange's own.

A bar covers ``[minute, minute + 60 s)`` of trade time; it closes when a trade of a later minute
arrives or when :meth:`CandleAggregator.close_due` is called with a wall-clock time past its end
(plus a grace for late prints). Gaps of at most ``max_fill_minutes`` are filled with flat bars
(volume 0) so charts stay continuous; longer gaps are reported as :class:`CandleGap` instead of
inventing a flat line across, say, a halt or a night. Single-threaded: call from one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from services.domain.models import Bar
from services.marketdata.book import fdec

MINUTE_NS = 60_000_000_000


@dataclass(frozen=True, slots=True)
class CandleGap:
    """No trades for ``missing_minutes`` whole minutes between two bars (not filled)."""

    symbol: str
    after: datetime  # start of the last bar before the gap
    before: datetime  # start of the first bar after the gap
    missing_minutes: int


class _Working:
    __slots__ = ("c", "h", "l", "minute", "n", "o", "pv", "v")

    def __init__(self, minute: int, price: float, size: float) -> None:
        self.minute = minute
        self.o = self.h = self.l = self.c = price
        self.v = size
        self.n = 1
        self.pv = price * size


def _minute_dt(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


class CandleAggregator:
    """Feed trades with :meth:`add_trade`; collect closed bars, gaps and partial bars."""

    def __init__(
        self,
        *,
        max_fill_minutes: int = 2,
        grace_seconds: float = 2.0,
        on_bar: Callable[[Bar], None] | None = None,
        on_gap: Callable[[CandleGap], None] | None = None,
    ) -> None:
        self.max_fill_minutes = max_fill_minutes
        self.grace_ns = int(grace_seconds * 1e9)
        self._working: dict[str, _Working] = {}
        self._last_closed: dict[str, tuple[int, float]] = {}  # symbol -> (minute, close)
        self.closed: list[Bar] = []
        self.gaps: list[CandleGap] = []
        self.late_trades = 0
        self._on_bar = on_bar
        self._on_gap = on_gap

    def add_trade(self, symbol: str, price: float, size: float, ts_ns: int) -> None:
        minute = ts_ns // MINUTE_NS
        w = self._working.get(symbol)
        if w is None:
            last = self._last_closed.get(symbol)
            if last is not None and minute <= last[0]:
                self.late_trades += 1  # its bar is already out; the exchange's bar is the truth
                return
            if last is not None:
                self._fill(symbol, last[0], last[1], minute)
            self._working[symbol] = _Working(minute, price, size)
            return
        if minute == w.minute:
            if price > w.h:
                w.h = price
            elif price < w.l:
                w.l = price
            w.c = price
            w.v += size
            w.n += 1
            w.pv += price * size
            return
        if minute < w.minute:
            self.late_trades += 1
            return
        self._close(symbol, w)
        self._fill(symbol, w.minute, w.c, minute)
        self._working[symbol] = _Working(minute, price, size)

    def _close(self, symbol: str, w: _Working) -> None:
        bar = self._bar(symbol, w)
        self._last_closed[symbol] = (w.minute, w.c)
        del self._working[symbol]
        self._emit(bar)

    def _emit(self, bar: Bar) -> None:
        self.closed.append(bar)
        if self._on_bar is not None:
            self._on_bar(bar)

    def _fill(self, symbol: str, last_minute: int, last_close: float, next_minute: int) -> None:
        """Flat bars for a short gap between ``last_minute`` and ``next_minute``; a gap marker otherwise."""
        missing = next_minute - last_minute - 1
        if missing <= 0:
            return
        if missing > self.max_fill_minutes:
            gap = CandleGap(symbol, _minute_dt(last_minute), _minute_dt(next_minute), missing)
            self.gaps.append(gap)
            if self._on_gap is not None:
                self._on_gap(gap)
            return
        c = fdec(last_close)
        for m in range(last_minute + 1, next_minute):
            self._emit(Bar(symbol, _minute_dt(m), c, c, c, c, Decimal(0), 0, None))
        self._last_closed[symbol] = (next_minute - 1, last_close)

    @staticmethod
    def _bar(symbol: str, w: _Working) -> Bar:
        vwap = fdec(round(w.pv / w.v, 6)) if w.v > 0 else None
        return Bar(symbol, _minute_dt(w.minute), fdec(w.o), fdec(w.h), fdec(w.l), fdec(w.c), fdec(w.v), w.n,
                   vwap)

    def close_due(self, now_ns: int) -> None:
        """Close every working bar whose minute ended more than the grace period before ``now_ns``."""
        for symbol, w in list(self._working.items()):
            if (w.minute + 1) * MINUTE_NS + self.grace_ns <= now_ns:
                self._close(symbol, w)

    def partial(self, symbol: str) -> Bar | None:
        """The live, still-open bar for ``symbol``."""
        w = self._working.get(symbol)
        return None if w is None else self._bar(symbol, w)

    def partials(self) -> list[Bar]:
        return [self._bar(s, w) for s, w in self._working.items()]

    def drain(self) -> tuple[list[Bar], list[CandleGap]]:
        """Closed bars and gaps since the last drain."""
        bars, gaps = self.closed, self.gaps
        self.closed, self.gaps = [], []
        return bars, gaps
