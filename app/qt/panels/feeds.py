"""What feeds the trading panels beyond the services' own events: the chart's history and live
bars, the watchlist's previous closes and day volumes, the account's equity curve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.domain.symbols import is_crypto
from services.marketdata.periods import PeriodBar, PeriodBarBuilder, period_start
from services.marketdata.pipeline import MarketDataBatchEvent
from widgets.chart.toolbar import TIMEFRAME_LABELS

if TYPE_CHECKING:
    from services.broker.base import Broker, PortfolioHistory
    from services.domain.bus import EventBus
    from services.marketdata.book import QuoteBook
    from services.marketdata.history import HistoryService
    from widgets.chart.panel import ChartPanel
    from widgets.pacer import DisplayPacer

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


def _period_bar(bar: Bar) -> PeriodBar:
    return PeriodBar(bar.ts, float(bar.open), float(bar.high), float(bar.low), float(bar.close),
                     float(bar.volume))  # fmt: skip


class ChartFeeder:
    """Loads history for the chart's symbol and timeframe and keeps its newest bar live.

    History comes from ``services.history`` (candle store first, then the broker, on worker
    threads); live bars from the pipeline's partial and closed one-minute bars in each batch. A
    coarser timeframe's forming bar is those minutes merged (:class:`PeriodBarBuilder`), seeded
    with the minutes the broker already has for the period in progress. Loop (= GUI) thread.

    With a ``pacer`` the chart changes at the display pace (:mod:`widgets.pacer`): every minute
    still goes into the forming bar at once, and each pass draws the newest state of each bar that
    changed since the previous pass, oldest first (a bar that closed in between is drawn complete
    before the next one starts).
    """

    def __init__(
        self, chart: ChartPanel, history: HistoryService, bus: EventBus, pacer: DisplayPacer | None = None
    ) -> None:
        self.chart = chart
        self.history = history
        self.symbol = ""
        self.timeframe = Timeframe.MIN_1
        self._task: asyncio.Future[Any] | None = None
        self._live_ok = False
        self._period: PeriodBarBuilder | None = None  # None on 1Min: the minute bars are the bars
        self._waiting: list[Bar] = []  # minutes that arrived while the period was being seeded
        self._seeding = False
        self._unshown: dict[datetime, PeriodBar] = {}  # bars changed since the last pass, by start
        self._show_soon = self._show_unshown if pacer is None else pacer.bind(chart, self._show_unshown)
        self._sub = bus.subscribe(MarketDataBatchEvent, self.on_batch)
        chart.symbolRequested.connect(self.show)
        chart.timeframeRequested.connect(lambda tf: self.show(self.symbol, tf))

    def show(self, symbol: str, timeframe: str | None = None, *, keep_note: bool = False) -> None:
        if not symbol:
            return
        if not keep_note:
            self.chart.toolbar.clear_history_note()
        self.symbol = symbol
        if timeframe is not None:
            self.timeframe = Timeframe(timeframe)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._live_ok = False
        self._period = None
        self._waiting = []
        self._seeding = False
        self._unshown.clear()  # the previous symbol's or timeframe's bars are never drawn
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
            self._refused(symbol, tf, "failed", str(exc))
            return
        if symbol != self.symbol:
            self.chart.set_loading(None)
            return
        if len(bars) < 1:
            self._refused(symbol, tf, "not shown", "the broker has no bars for it")
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
            self._refused(symbol, tf, "refused", str(exc))
            return
        if tf is not Timeframe.MIN_1:
            self._period = PeriodBarBuilder(tf, crypto=is_crypto(symbol))
            self._live_ok = True  # minutes that arrive meanwhile wait in ``_waiting``
            self._seeding = True
            try:
                await self._seed_period(symbol, tf, bars[-1])
            finally:
                self._seeding = False
        self._live_ok = True

    def _refused(self, symbol: str, tf: Timeframe, what: str, why: str) -> None:
        """History for ``symbol`` ``tf`` cannot be shown: say so in the log and on the chart, whose
        symbol box and selected timeframe go back to the bars it still shows, and keep those live."""
        log.warning("chart history for %s %s %s: %s", symbol, tf, what, why)
        chart = self.chart
        chart.set_loading(None)
        label = TIMEFRAME_LABELS[tf]
        shown = (chart.symbol, chart.timeframe)
        chart.toolbar.history_refused(shown, f"{symbol} {label} history {what}", why)
        if chart.symbol and shown != (symbol, tf):  # go on feeding the bars still on the chart
            self._task = None  # the refused load ends here: not cancelled by the new one
            self.show(chart.symbol, chart.timeframe.value, keep_note=True)

    async def _seed_period(self, symbol: str, tf: Timeframe, last: Bar) -> None:
        """The minutes the broker has for the newest period, so the live bar starts from them."""
        period = self._period
        assert period is not None
        start = period_start(tf, last.ts, crypto=period.crypto)
        end = datetime.now(UTC) + timedelta(minutes=1)
        try:  # the period in progress is always asked anew: it changes by the minute
            minutes = await self.history.bars(symbol, Timeframe.MIN_1, start, end, use_cache=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the chart still goes live, from the period's bar as loaded
            log.warning("minute bars of the forming %s bar of %s failed (%s); it continues from the "
                        "bar as loaded", tf, symbol, exc)  # fmt: skip
            minutes = []
        if symbol != self.symbol or period is not self._period:
            return
        self._show(period.seed([_period_bar(m) for m in minutes or [last]]))
        waiting, self._waiting = self._waiting, []
        for bar in waiting:
            self._show(period.add(_period_bar(bar)))

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, once per frame: the shown symbol's newest bar from its minute bars."""
        if not self._live_ok:
            return
        batch = event.batch
        period = self._period
        for bar in (*batch.bars, *batch.corrected_bars, *batch.partial_bars):
            if bar.symbol != self.symbol:
                continue
            if period is None:
                self._show(_period_bar(bar))
            elif self._seeding:
                self._waiting.append(bar)
            else:
                self._show(period.add(_period_bar(bar)))

    def _show(self, bar: PeriodBar | None) -> None:
        if bar is None:
            return
        self._unshown[bar.ts] = bar
        self._show_soon()

    def _show_unshown(self) -> None:
        bars, self._unshown = sorted(self._unshown.items()), {}
        for _ts, bar in bars:
            # ValueError: an older bar than the chart's live one (history raced the stream)
            with contextlib.suppress(ValueError):
                self.chart.update_last_bar(bar.ts, bar.o, bar.h, bar.l, bar.c, bar.v)

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
