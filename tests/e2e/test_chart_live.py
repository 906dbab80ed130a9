"""End to end: on the local exchange, a 5-minute chart's newest bar moves with the trades of its
minute (before, only the 1-minute chart was live), and its time is the 5-minute period's start
(bars labelled with their start on the UTC clock: tests/unit/marketdata/test_periods.py cites the
sources)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

from app.qt.preview import start_local_services, stop_services
from services.domain.enums import Mode, Timeframe, TradingState
from services.marketdata.periods import period_start
from tests.support.polling import async_wait_for
from widgets.chart.store import LiveBar, to_epoch_ns


def test_a_5_minute_bar_updates_within_its_minute(qapp: QApplication, tmp_path: Path) -> None:
    from app.qt.panels.trading import install
    from widgets.main_window import MainWindow

    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    seen: list[LiveBar] = []

    async def scenario() -> None:
        ctx, services = await start_local_services(tmp_path)
        try:
            await async_wait_for("trading ACTIVE", lambda: services.trading.state is TradingState.ACTIVE, 45)
            window = MainWindow(Mode.LOCAL)
            window.resize(1400, 900)
            panels = install(window, ctx, services)
            window.show()
            chart, feeder = panels.chart, panels.feeder
            assert chart is not None and feeder is not None
            await async_wait_for("the 1-minute chart", lambda: chart.store.live is not None, 30)
            chart.timeframe_buttons[Timeframe.MIN_5].click()

            def five_minute_bar() -> LiveBar | None:
                live = chart.store.live
                if (
                    chart.timeframe is not Timeframe.MIN_5
                    or live is None
                    or getattr(feeder, "_seeding", False)
                ):
                    return None
                now = period_start(Timeframe.MIN_5, datetime.now(UTC), crypto=False)
                return live if live.t == to_epoch_ns(now) else None

            await async_wait_for(
                "the 5-minute chart at the current period", lambda: five_minute_bar() is not None, 30
            )
            # Not across a period's end (a new bar would start): at least 25 s left in this one.
            await async_wait_for(
                "25 s left in the 5-minute period", lambda: datetime.now(UTC).timestamp() % 300 < 275, 30
            )
            await async_wait_for(
                "the 5-minute chart at the current period", lambda: five_minute_bar() is not None, 10
            )
            first = five_minute_bar()
            assert first is not None
            seen.append(first)

            def moved() -> bool:
                bar = five_minute_bar()
                return bar is not None and bar.t == first.t and (bar.c, bar.v) != (first.c, first.v)

            # The local exchange trades every second or so: the bar moves well within a minute.
            await async_wait_for("the 5-minute bar to move with a trade", moved, 20)
            later = five_minute_bar()
            assert later is not None
            seen.append(later)
            # The chart moved at the window's display pace, which the watchlist, the ticket and
            # the positions share: passes at least 0.2 s apart, so at most 11 in 2 s.
            pacer = panels.pacer
            assert pacer is not None and pacer.passes > 0
            passes, t0 = pacer.passes, time.monotonic()
            await asyncio.sleep(2.0)
            elapsed = time.monotonic() - t0
            assert 0 < pacer.passes - passes <= elapsed / pacer.interval_s + 1
            window.close()
        finally:
            await stop_services(ctx)

    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), 110))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        qapp.setQuitOnLastWindowClosed(True)
    first, later = seen
    assert later.v >= first.v and later.h >= first.h and later.l <= first.l and later.o == first.o
