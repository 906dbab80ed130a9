"""What feeds the trading panels beyond the services' own events: the chart's history and live
one-minute bars, the watchlist's previous closes and day volumes, the account's equity curve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.domain.enums import Timeframe
from services.marketdata.pipeline import MarketDataBatchEvent

if TYPE_CHECKING:
    from services.broker.base import Broker, PortfolioHistory
    from services.domain.bus import EventBus
    from services.marketdata.book import QuoteBook
    from services.marketdata.history import HistoryService
    from widgets.chart.panel import ChartPanel

log = logging.getLogger("heron.app.panels")

CHART_HISTORY = {Timeframe.MIN_1: timedelta(days=3), Timeframe.MIN_5: timedelta(days=10),
                 Timeframe.MIN_15: timedelta(days=30), Timeframe.HOUR_1: timedelta(days=90),
                 Timeframe.DAY_1: timedelta(days=730)}  # fmt: skip


async def equity_history(broker: Broker) -> PortfolioHistory:
    """The account's equity curve: a month of daily points, or, while the account has fewer than
    two days of history (a new account), today in one-minute points."""
    daily = await broker.get_portfolio_history("1M", "1D")
    if sum(e is not None for e in daily.equity) >= 2:
        return daily
    return await broker.get_portfolio_history("1D", "1Min")


class ChartFeeder:
    """Loads history for the chart's symbol and timeframe and feeds live one-minute bars.

    History comes from ``services.history`` (candle store first, then the broker, on worker
    threads); live bars from the pipeline's partial and closed bars in each batch. Loop (= GUI)
    thread.
    """

    def __init__(self, chart: ChartPanel, history: HistoryService, bus: EventBus) -> None:
        self.chart = chart
        self.history = history
        self.symbol = ""
        self.timeframe = Timeframe.MIN_1
        self._task: asyncio.Future[Any] | None = None
        self._live_ok = False
        self._sub = bus.subscribe(MarketDataBatchEvent, self.on_batch)
        chart.symbolRequested.connect(self.show)
        chart.timeframeRequested.connect(lambda tf: self.show(self.symbol, tf))

    def show(self, symbol: str, timeframe: str | None = None) -> None:
        if not symbol:
            return
        self.symbol = symbol
        if timeframe is not None:
            self.timeframe = Timeframe(timeframe)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._live_ok = False
        self.chart.set_loading(0.0)
        self._task = asyncio.ensure_future(self._load(symbol, self.timeframe))

    async def _load(self, symbol: str, tf: Timeframe) -> None:
        import numpy as np

        end = datetime.now(UTC) + timedelta(seconds=tf.seconds)
        try:
            bars = await self.history.bars(symbol, tf, end - CHART_HISTORY[tf], end,
                                           progress=self.chart.set_loading)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("chart history for %s %s failed: %s", symbol, tf, exc)
            self.chart.set_loading(None)
            return
        if symbol != self.symbol or len(bars) < 1:
            self.chart.set_loading(None)
            return
        arrays = {
            "t": np.array([int(b.ts.timestamp() * 1e9) for b in bars], dtype=np.int64),
            "o": np.array([float(b.open) for b in bars]),
            "h": np.array([float(b.high) for b in bars]),
            "l": np.array([float(b.low) for b in bars]),
            "c": np.array([float(b.close) for b in bars]),
            "v": np.array([float(b.volume) for b in bars]),
        }
        try:
            self.chart.set_history(symbol, tf, arrays)
        except ValueError as exc:
            log.warning("chart refused history for %s: %s", symbol, exc)
            return
        self._live_ok = tf is Timeframe.MIN_1

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, once per frame: the live one-minute bar of the shown symbol."""
        if not self._live_ok:
            return
        batch = event.batch
        for bar in (*batch.bars, *batch.partial_bars):
            if bar.symbol != self.symbol:
                continue
            # ValueError: an older bar than the chart's live one (history raced the stream)
            with contextlib.suppress(ValueError):
                self.chart.update_last_bar(bar.ts, float(bar.open), float(bar.high), float(bar.low),
                                           float(bar.close), float(bar.volume))  # fmt: skip

    def close(self) -> None:
        self._sub.cancel()
        if self._task is not None:
            self._task.cancel()


async def seed_daily_figures(history: HistoryService | None, book: QuoteBook, symbols: list[str]) -> int:
    """Give the quote book each symbol's previous close and today's volume from a snapshot, so the
    watchlist can show change % and volume. Runs on the loop thread; REST runs off it (the history
    service's contract). Returns how many symbols got a previous close; failures are logged and
    leave the change column showing "—" rather than a guess."""
    if history is None:
        return 0
    seeded = 0
    for symbol in symbols:
        try:
            snap = await history.snapshot(symbol)
        except Exception as exc:  # the broker's typed errors, or a bad answer: never a crash here
            log.warning("no snapshot for %s (change %% stays unknown): %s", symbol, exc)
            continue
        if snap.previous_close is not None:
            book.set_prev_close(symbol, snap.previous_close)
            seeded += 1
        if snap.daily_bar is not None:
            book.set_day_volume(symbol, snap.daily_bar.volume)
    return seeded
