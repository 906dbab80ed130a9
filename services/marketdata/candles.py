"""``CandleAggregator``: market trades → one-minute OHLCV bars that agree with the exchange's own.

A bar covers ``[minute, minute + 60 s)`` of trade time; it closes when a trade of a later minute
arrives or when :meth:`CandleAggregator.close_due` is called with a wall-clock time past its end
(plus a grace for late prints). Gaps of at most ``max_fill_minutes`` are filled with flat bars
(volume 0) so charts stay continuous; longer gaps are reported as :class:`CandleGap` instead of
inventing a flat line across, say, a halt or a night. Single-threaded: call from one thread.

Trades can be corrected or canceled after they were sent (Alpaca's ``T: "c"`` / ``T: "x"``): the
working bar and the last ``keep_minutes`` closed bars keep their trades, so :meth:`correct` and
:meth:`cancel` rebuild the bar without the wrong print; a closed bar rebuilt that way comes out of
:meth:`drain_corrected`. Older bars cannot be rebuilt (counted in ``uncorrected``).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

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


#: One trade kept for corrections: (identity, price, size, ts_ns). Identity is (exchange, trade id).
TradeRow = tuple[Any, float, float, int]


_WHOLE = -2  # tid marker: ``ex`` holds the whole identity (not an (exchange, int id) pair)
_NO_ID = -1  # tid marker: the trade came without an identity


class _Working:
    """One bar and the trades it is built from, kept for corrections and cancels.

    The trades are stored column-wise in typed arrays (about 40 bytes a trade instead of ~250 for
    a tuple of Python objects): at thousands of trades a second the few minutes of trades kept for
    corrections would otherwise cost hundreds of megabytes.
    """

    __slots__ = ("c", "ex", "h", "l", "minute", "n", "o", "price", "pv", "size", "tid", "ts", "v")

    def __init__(self, minute: int, price: float, size: float, row: TradeRow) -> None:
        self.minute = minute
        self.o = self.h = self.l = self.c = price
        self.v = size
        self.n = 1
        self.pv = price * size
        self.ex: list[Any] = []
        self.tid = array("q")
        self.price = array("d")
        self.size = array("d")
        self.ts = array("q")
        self.push(row)

    def push(self, row: TradeRow) -> None:
        ident, price, size, ts = row
        ex, tid = _split(ident)
        self.ex.append(ex)
        self.tid.append(tid)
        self.price.append(price)
        self.size.append(size)
        self.ts.append(ts)

    def __len__(self) -> int:
        return len(self.price)

    def row(self, k: int) -> TradeRow:
        tid = self.tid[k]
        ident = self.ex[k] if tid == _WHOLE else None if tid == _NO_ID else (self.ex[k], tid)
        return (ident, self.price[k], self.size[k], self.ts[k])

    def index(self, ident: Any) -> int | None:
        """Position of the newest trade with this identity, or None."""
        ex, tid = _split(ident)
        if tid == _NO_ID:
            return None
        tids, exs = self.tid, self.ex
        for k in range(len(tids) - 1, -1, -1):
            if tids[k] == tid and exs[k] == ex:
                return k
        return None

    def replace(self, k: int, ident: Any, price: float, size: float) -> None:
        self.ex[k], self.tid[k] = _split(ident)
        self.price[k] = price
        self.size[k] = size

    def remove(self, k: int) -> None:
        del self.ex[k], self.tid[k], self.price[k], self.size[k], self.ts[k]

    def rebuild(self) -> None:
        prices, sizes = self.price, self.size
        self.o, self.c = prices[0], prices[-1]
        self.h, self.l = max(prices), min(prices)
        self.v = sum(sizes)
        self.n = len(prices)
        self.pv = sum(p * q for p, q in zip(prices, sizes, strict=True))


def _split(ident: Any) -> tuple[Any, int]:
    """(exchange, trade id) identities go into two compact columns; anything else is kept whole."""
    if ident is None:
        return None, _NO_ID
    if ident.__class__ is tuple and len(ident) == 2 and ident[1].__class__ is int and 0 <= ident[1] < 2**63:
        return ident[0], ident[1]
    return ident, _WHOLE


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
        keep_minutes: int = 5,
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
        self.keep_minutes = keep_minutes
        self._recent: dict[str, deque[_Working]] = {}  # closed bars still open to corrections
        self.corrected: list[Bar] = []
        self.corrections = 0
        self.uncorrected = 0

    def add_trade(self, symbol: str, price: float, size: float, ts_ns: int, ident: Any = None) -> None:
        """``ident`` (exchange, trade id) lets a later correction or cancel find this trade."""
        minute = ts_ns // MINUTE_NS
        w = self._working.get(symbol)
        if w is None:
            last = self._last_closed.get(symbol)
            if last is not None and minute <= last[0]:
                self.late_trades += 1  # its bar is already out; the exchange's bar is the truth
                return
            if last is not None:
                self._fill(symbol, last[0], last[1], minute)
            self._working[symbol] = _Working(minute, price, size, (ident, price, size, ts_ns))
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
            w.push((ident, price, size, ts_ns))
            return
        if minute < w.minute:
            self.late_trades += 1
            return
        self._close(symbol, w)
        self._fill(symbol, w.minute, w.c, minute)
        self._working[symbol] = _Working(minute, price, size, (ident, price, size, ts_ns))

    def _close(self, symbol: str, w: _Working) -> None:
        bar = self._bar(symbol, w)
        self._last_closed[symbol] = (w.minute, w.c)
        del self._working[symbol]
        if self.keep_minutes > 0:
            recent = self._recent.get(symbol)
            if recent is None:
                recent = self._recent[symbol] = deque(maxlen=self.keep_minutes)
            recent.append(w)
        self._emit(bar)

    # -- corrections and cancels -------------------------------------------------------------------

    def _find(self, symbol: str, ident: Any) -> tuple[_Working, int] | None:
        w = self._working.get(symbol)
        candidates = ([w] if w is not None else []) + list(reversed(self._recent.get(symbol, ())))
        for bar in candidates:
            k = bar.index(ident)
            if k is not None:
                return bar, k
        return None

    def correct(self, symbol: str, ident: Any, new_ident: Any, price: float, size: float) -> bool:
        """Replace the trade ``ident`` with the corrected one; False if it is not held any more."""
        return self._change(symbol, ident, (new_ident, price, size))

    def cancel(self, symbol: str, ident: Any) -> bool:
        """Take the trade ``ident`` out of its bar; False if it is not held any more."""
        return self._change(symbol, ident, None)

    def _change(self, symbol: str, ident: Any, new: tuple[Any, float, float] | None) -> bool:
        found = self._find(symbol, ident) if ident is not None else None
        if found is None:
            self.uncorrected += 1
            return False
        bar, k = found
        old = bar.row(k)
        if new is None:
            bar.remove(k)
        else:
            bar.replace(k, new[0], new[1], new[2])
        self.corrections += 1
        working = self._working.get(symbol) is bar
        if len(bar):
            bar.rebuild()
        elif working:
            del self._working[symbol]  # its only trade was canceled: no bar for that minute yet
            return True
        else:
            # Every trade of a closed minute canceled: a flat bar with no volume at the close before.
            prev = self._close_before(symbol, bar.minute)
            bar.o = bar.h = bar.l = bar.c = old[1] if prev is None else prev
            bar.v, bar.n, bar.pv = 0.0, 0, 0.0
        if not working:
            last = self._last_closed.get(symbol)
            if last is not None and last[0] == bar.minute:
                self._last_closed[symbol] = (bar.minute, bar.c)
            self.corrected.append(self._bar(symbol, bar))
        return True

    def _close_before(self, symbol: str, minute: int) -> float | None:
        before = [b for b in self._recent.get(symbol, ()) if b.minute < minute and len(b)]
        return before[-1].c if before else None

    def latest_trade(self, symbol: str) -> TradeRow | None:
        """The newest trade still held for ``symbol`` (after corrections), or None."""
        w = self._working.get(symbol)
        if w is not None and len(w):
            return w.row(len(w) - 1)
        for bar in reversed(self._recent.get(symbol, ())):
            if len(bar):
                return bar.row(len(bar) - 1)
        return None

    def drain_corrected(self) -> list[Bar]:
        """Closed bars rebuilt after a correction or cancel since the last drain."""
        out, self.corrected = self.corrected, []
        return out

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
        vwap = fdec(round(w.pv / w.v, 6)) if w.v > 0 and w.n > 0 else None
        return Bar(
            symbol, _minute_dt(w.minute), fdec(w.o), fdec(w.h), fdec(w.l), fdec(w.c), fdec(w.v), w.n, vwap
        )

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
