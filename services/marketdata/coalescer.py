"""``Coalescer``: turns a torrent of updates into at most ``max_rate`` flushes a second.

- Quotes are conflated: the latest per symbol wins.
- Trades are merged per symbol (last price, high, low, volume, count) between flushes.
- Bars and other market-data items sit in a bounded buffer that drops its OLDEST entries when
  full; every drop is counted and exposed.
- Execution events are never dropped: they sit in their own queue, whose high-water mark is
  watched and logged, and every flush hands them to the consumer BEFORE any market data.

Single-threaded: producer and flusher run on the same thread (the market-data thread in the
streaming pipeline, or the loop thread in replays and tests).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TradeStats:
    """Trades of one symbol merged since the last flush."""

    last: float
    high: float
    low: float
    volume: float
    count: int
    ts_ns: int

    def add(self, price: float, size: float, ts_ns: int) -> None:
        self.last = price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += size
        self.count += 1
        self.ts_ns = ts_ns


@dataclass(frozen=True, slots=True)
class Flush:
    """One frame's worth of updates. Consumers handle ``executions`` first."""

    executions: tuple[Any, ...]
    quotes: dict[str, Any]
    trades: dict[str, TradeStats]
    items: tuple[Any, ...]
    dropped_total: int
    seq: int

    @property
    def market_data_count(self) -> int:
        return len(self.quotes) + len(self.trades) + len(self.items)


@dataclass
class CoalescerStats:
    flushes: int = 0
    quotes_in: int = 0
    quotes_conflated: int = 0
    trades_in: int = 0
    items_in: int = 0
    dropped_quotes: int = 0
    dropped_items: int = 0
    executions_in: int = 0
    execution_high_water: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.dropped_quotes + self.dropped_items


class Coalescer:
    """See the module docstring. ``clock`` is monotonic seconds (injected in tests)."""

    def __init__(
        self,
        *,
        max_rate: float = 30.0,
        max_symbols: int = 10_000,
        max_items: int = 10_000,
        execution_warn_at: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.min_interval = 1.0 / max_rate
        self.max_symbols = max_symbols
        self.execution_warn_at = execution_warn_at
        self._clock = clock
        self._quotes: OrderedDict[str, Any] = OrderedDict()
        self._trades: dict[str, TradeStats] = {}
        self._items: deque[Any] = deque(maxlen=max_items)
        self._executions: deque[Any] = deque()
        self._last_flush = float("-inf")
        self._seq = 0
        self.stats = CoalescerStats()

    # -- producers ---------------------------------------------------------------------------------

    def put_quote(self, symbol: str, quote: Any) -> None:
        self.stats.quotes_in += 1
        q = self._quotes
        if symbol in q:
            self.stats.quotes_conflated += 1
            q[symbol] = quote
            return
        if len(q) >= self.max_symbols:
            q.popitem(last=False)  # the symbol waiting longest goes; its next quote will come
            self.stats.dropped_quotes += 1
        q[symbol] = quote

    def put_trade(self, symbol: str, price: float, size: float, ts_ns: int) -> None:
        self.stats.trades_in += 1
        s = self._trades.get(symbol)
        if s is None:
            self._trades[symbol] = TradeStats(price, price, price, size, 1, ts_ns)
        else:
            s.add(price, size, ts_ns)

    def put_item(self, item: Any) -> None:
        """Other market data (closed bars, gap markers): bounded, oldest dropped first."""
        self.stats.items_in += 1
        if len(self._items) == self._items.maxlen:
            self.stats.dropped_items += 1
        self._items.append(item)

    def put_execution(self, event: Any) -> None:
        """Never dropped. The queue is watched: a growing backlog is logged, not discarded."""
        self.stats.executions_in += 1
        self._executions.append(event)
        n = len(self._executions)
        if n > self.stats.execution_high_water:
            self.stats.execution_high_water = n
            if n >= self.execution_warn_at and n % self.execution_warn_at == 0:
                log.warning("execution events backing up: %d waiting for the consumer", n)

    # -- consumer side -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._quotes) + len(self._trades) + len(self._items) + len(self._executions)

    @property
    def backlog(self) -> int:
        """Items waiting, counting trades per symbol (a bounded figure by construction)."""
        return self.pending

    def due(self, now: float | None = None) -> bool:
        t = self._clock() if now is None else now
        return t - self._last_flush >= self.min_interval - 1e-9

    def next_due_in(self, now: float | None = None) -> float:
        t = self._clock() if now is None else now
        return max(0.0, self._last_flush + self.min_interval - t)

    def flush(self, now: float | None = None, *, force: bool = False) -> Flush | None:
        """Hand over everything collected, or None when too soon (rate limit) or nothing waits."""
        t = self._clock() if now is None else now
        if not force and not self.due(t):
            return None
        if not self.pending:
            return None
        self._last_flush = t
        self._seq += 1
        executions = tuple(self._executions)
        self._executions.clear()
        quotes = dict(self._quotes)
        self._quotes.clear()
        trades = self._trades
        self._trades = {}
        items = tuple(self._items)
        self._items.clear()
        self.stats.flushes += 1
        return Flush(executions, quotes, trades, items, self.stats.dropped, self._seq)
