"""Bars of a configurable interval (e.g. 1 or 5 seconds) built from the live trades, for strategies
and the shadow tracker.

Why: the stream's own aggregation is one-minute bars; a strategy or model on the always-open local
exchange would need half an hour of one-minute bars before it acts. With ``--bar-seconds N`` (the
default in local mode is :data:`LOCAL_DEFAULT_SECONDS`) strategies and the shadow tracker consume
N-second bars built here from the per-frame trade statistics of each market-data batch.

Bar rules (documented because they differ slightly from exchange bars):
- a bar covers ``[k*N, (k+1)*N)`` seconds of *receive* time (the frame the trades arrived in);
- high, low, close and volume are exact over the trades merged into the frames of that interval;
- the open is the previous bar's close for that symbol (the first bar opens at the close of the
  first frame), because per-frame statistics do not keep the first trade's price;
- an interval without trades produces no bar (no flat bars are invented).

Thread: the event-loop thread (bus handler and a timer task owned by whoever calls :meth:`start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from services.domain.models import Bar
from services.marketdata.book import fdec
from services.marketdata.coalescer import TradeStats
from services.marketdata.pipeline import MarketDataBatchEvent

log = logging.getLogger(__name__)

LOCAL_DEFAULT_SECONDS = 1.0


@dataclass(slots=True)
class _Working:
    bucket: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int


class IntervalBarBuilder:
    """Feed :meth:`on_batch` (or :meth:`add`); closed bars go to every ``sinks`` callable in order."""

    def __init__(
        self,
        seconds: float,
        sinks: list[Callable[[list[Bar]], None]] | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if seconds <= 0:
            raise ValueError("the bar interval must be positive")
        self.seconds = seconds
        self.sinks: list[Callable[[list[Bar]], None]] = list(sinks or [])
        self._wall = wall
        self._working: dict[str, _Working] = {}
        self._last_close: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.bars_emitted = 0

    @property
    def timeframe(self) -> str:
        s = self.seconds
        return f"{int(s)}Sec" if s == int(s) else f"{s:g}Sec"

    def _bucket(self, at: float) -> int:
        return int(at // self.seconds)

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler (loop thread): merge one frame's trade statistics."""
        now = self._wall()
        self.close_due(now)
        for symbol, stats in event.batch.trades.items():
            self.add(symbol, stats, now)

    def add(self, symbol: str, stats: TradeStats, received: float) -> None:
        bucket = self._bucket(received)
        w = self._working.get(symbol)
        if w is not None and w.bucket != bucket:
            self._emit([self._close(symbol, w)])
            w = None
        if w is None:
            first = self._last_close.get(symbol, stats.last)
            self._working[symbol] = _Working(
                bucket,
                first,
                max(first, stats.high),
                min(first, stats.low),
                stats.last,
                stats.volume,
                stats.count,
            )
            return
        w.high = max(w.high, stats.high)
        w.low = min(w.low, stats.low)
        w.close = stats.last
        w.volume += stats.volume
        w.count += stats.count

    def close_due(self, now: float | None = None) -> None:
        """Close every working bar whose interval has ended."""
        bucket = self._bucket(self._wall() if now is None else now)
        done = [self._close(s, w) for s, w in list(self._working.items()) if w.bucket < bucket]
        if done:
            self._emit(done)

    def _close(self, symbol: str, w: _Working) -> Bar:
        del self._working[symbol]
        self._last_close[symbol] = w.close
        ts = datetime.fromtimestamp(w.bucket * self.seconds, UTC)
        return Bar(
            symbol,
            ts,
            fdec(w.open),
            fdec(w.high),
            fdec(w.low),
            fdec(w.close),
            fdec(w.volume) if w.volume else Decimal(0),
            w.count,
            None,
        )

    def _emit(self, bars: list[Bar]) -> None:
        self.bars_emitted += len(bars)
        for sink in self.sinks:
            try:
                sink(bars)
            except Exception:
                log.exception("a bar consumer failed; the others still get the bars")

    # -- timer: closes bars even when no further trades arrive ------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="interval-bars")

    async def _tick(self) -> None:
        while True:
            now = self._wall()
            await asyncio.sleep(self.seconds - (now % self.seconds) + 0.05)
            self.close_due()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
