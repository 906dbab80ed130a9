"""The chart's newest bar is live on every timeframe: a 5-minute, hourly or daily chart updates with
each minute bar of its period, not only the 1-minute chart (app/qt/panels/feeds.py ChartFeeder).

Period labels as Alpaca's (tests/unit/marketdata/test_periods.py cites the sources): 5Min bars on
the UTC clock's five minutes; a crypto daily bar from UTC midnight (Lumiwealth/lumibot #826).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.qt.panels.feeds import ChartFeeder
from services.domain.bus import EventBus
from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.marketdata.periods import period_start
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent
from tests.widgets import trading_rig
from widgets.chart.panel import ChartPanel
from widgets.chart.store import LiveBar, to_epoch_ns

qloop = trading_rig.qloop
# A 5-minute period's start an hour ago (the chart asks for history up to now).
T0 = period_start(Timeframe.MIN_5, datetime.now(UTC) - timedelta(hours=1), crypto=False)
M = timedelta(minutes=1)


def bar(symbol: str, ts: datetime, o: float, h: float, low: float, c: float, v: float) -> Bar:
    d = [Decimal(str(x)) for x in (o, h, low, c, v)]
    return Bar(symbol, ts, *d)


class _History:
    """Answers the chart's history request and the minutes of the period in progress."""

    def __init__(self, by_tf: dict[Timeframe, list[Bar]]) -> None:
        self.by_tf = by_tf
        self.asked: list[tuple[Timeframe, datetime]] = []

    async def bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        progress: Callable[[float], None] | None = None,
        use_cache: bool = True,
    ) -> list[Bar]:
        self.asked.append((timeframe, start))
        return [b for b in self.by_tf[timeframe] if b.symbol == symbol and start <= b.ts < end]


def batch(*, partial: tuple[Bar, ...] = (), closed: tuple[Bar, ...] = ()) -> MarketDataBatchEvent:
    frame = MarketDataBatch(quotes={}, trades={}, bars=closed, exchange_bars=(), partial_bars=partial,
                            gaps=(), dropped_total=0, seq=1, messages=1)  # fmt: skip
    return MarketDataBatchEvent(datetime.now(UTC), frame)


def live(panel: ChartPanel) -> LiveBar:
    assert panel.store.live is not None
    return panel.store.live


@pytest.fixture
def panel(qtbot) -> ChartPanel:  # type: ignore[no-untyped-def]
    p = ChartPanel(visible_bars=50)
    qtbot.addWidget(p)
    p.resize(800, 500)
    return p


def test_a_5_minute_bar_updates_within_its_minute(panel: ChartPanel, qloop) -> None:  # type: ignore[no-untyped-def]
    history = _History(
        {
            Timeframe.MIN_5: [
                bar("AAPL", T0 - 5 * M, 99, 100, 98, 99.5, 800),
                bar("AAPL", T0, 99.5, 101, 99, 100.5, 500),  # the period in progress, as the broker has it
            ],
            Timeframe.MIN_1: [
                bar("AAPL", T0, 99.5, 101, 99, 100.0, 300),
                bar("AAPL", T0 + M, 100.0, 100.8, 99.9, 100.5, 200),
            ],
        }
    )
    bus = EventBus()
    feeder = ChartFeeder(panel, history, bus)  # type: ignore[arg-type]
    feeder.show("AAPL", "5Min")
    assert feeder._task is not None
    qloop.run_until_complete(feeder._task)
    assert (Timeframe.MIN_1, T0) in history.asked  # the period's minutes, from its start
    assert live(panel) == LiveBar(to_epoch_ns(T0), 99.5, 101, 99, 100.5, 500)

    # A trade in the period's third minute: the stream's partial minute bar moves the 5-minute bar.
    bus.publish(batch(partial=(bar("AAPL", T0 + 2 * M, 100.5, 102, 100.5, 102, 10),)))
    assert live(panel) == LiveBar(to_epoch_ns(T0), 99.5, 102, 99, 102, 510)
    bus.publish(
        batch(partial=(bar("AAPL", T0 + 2 * M, 100.5, 102, 98.5, 101.5, 15), bar("MSFT", T0, 1, 1, 1, 1, 1)))
    )
    assert live(panel) == LiveBar(to_epoch_ns(T0), 99.5, 102, 98.5, 101.5, 515)
    assert panel.store.n_history == 1

    # The next period's first minute starts a new bar; the finished one joins history.
    bus.publish(batch(closed=(bar("AAPL", T0 + 2 * M, 100.5, 102, 98.5, 101.6, 16),),
                      partial=(bar("AAPL", T0 + 5 * M, 101.6, 101.7, 101.4, 101.5, 3),)))  # fmt: skip
    assert panel.store.n_history == 2
    assert panel.store.bar(1) == LiveBar(to_epoch_ns(T0), 99.5, 102, 98.5, 101.6, 516)
    assert live(panel) == LiveBar(to_epoch_ns(T0 + 5 * M), 101.6, 101.7, 101.4, 101.5, 3)
    feeder.close()


def test_at_the_display_pace_a_closed_bar_is_drawn_complete(panel: ChartPanel, qloop) -> None:  # type: ignore[no-untyped-def]
    """With the window's pacer the chart changes at its passes, not at every batch. Every minute
    still goes into the forming bar at once; a pass draws the newest state of each bar that changed,
    oldest first, so a period that ended between two passes joins history with its last figures."""
    from widgets.pacer import DisplayPacer

    history = _History(
        {
            Timeframe.MIN_5: [bar("AAPL", T0 - 5 * M, 99, 100, 98, 99.5, 800),
                              bar("AAPL", T0, 99.5, 101, 99, 100.5, 500)],
            Timeframe.MIN_1: [bar("AAPL", T0, 99.5, 101, 99, 100.0, 300),
                              bar("AAPL", T0 + M, 100.0, 100.8, 99.9, 100.5, 200)],
        }
    )  # fmt: skip
    bus = EventBus()
    pacer = DisplayPacer(60)  # its passes are run by the test, not by time
    feeder = ChartFeeder(panel, history, bus, pacer)  # type: ignore[arg-type]
    feeder.show("AAPL", "5Min")
    assert feeder._task is not None
    qloop.run_until_complete(feeder._task)
    pacer.run_due()  # the period as seeded
    assert live(panel) == LiveBar(to_epoch_ns(T0), 99.5, 101, 99, 100.5, 500)

    bus.publish(batch(partial=(bar("AAPL", T0 + 2 * M, 100.5, 102, 100.5, 102, 10),)))
    bus.publish(batch(closed=(bar("AAPL", T0 + 4 * M, 100.5, 102.5, 98.5, 101.6, 16),),
                      partial=(bar("AAPL", T0 + 5 * M, 101.6, 101.7, 101.4, 101.5, 3),)))  # fmt: skip
    assert live(panel) == LiveBar(to_epoch_ns(T0), 99.5, 101, 99, 100.5, 500)  # not yet on screen
    assert pacer.pending()
    pacer.run_due()
    assert panel.store.n_history == 2
    assert panel.store.bar(1) == LiveBar(to_epoch_ns(T0), 99.5, 102.5, 98.5, 101.6, 526)  # complete
    assert live(panel) == LiveBar(to_epoch_ns(T0 + 5 * M), 101.6, 101.7, 101.4, 101.5, 3)

    bus.publish(batch(partial=(bar("AAPL", T0 + 5 * M, 101.5, 101.9, 101.5, 101.8, 5),)))
    feeder.show("AAPL", "1Min")  # another timeframe before the pass: the 5-minute bar is never drawn on it
    assert not feeder._unshown
    qloop.run_until_complete(feeder._task)
    assert panel.timeframe is Timeframe.MIN_1
    feeder.close()


def test_a_crypto_daily_bar_follows_the_minutes_of_its_utc_day(panel: ChartPanel, qloop) -> None:  # type: ignore[no-untyped-def]
    day = period_start(Timeframe.DAY_1, datetime.now(UTC) - timedelta(days=1), crypto=True)
    history = _History(
        {
            Timeframe.DAY_1: [
                bar("BTC/USD", day - timedelta(days=1), 60000, 61000, 59000, 60500, 40),
                bar("BTC/USD", day, 60500, 62000, 60000, 61000, 25),
            ],
            Timeframe.MIN_1: [bar("BTC/USD", day, 60500, 62000, 60000, 61000, 5)]
            + [bar("BTC/USD", day + timedelta(hours=h), 61000, 61000, 61000, 61000, 5) for h in range(1, 5)],
        }
    )
    bus = EventBus()
    feeder = ChartFeeder(panel, history, bus)  # type: ignore[arg-type]
    feeder.show("BTC/USD", "1Day")
    assert feeder._task is not None
    qloop.run_until_complete(feeder._task)
    assert (Timeframe.MIN_1, day) in history.asked
    assert live(panel) == LiveBar(to_epoch_ns(day), 60500, 62000, 60000, 61000, 25)
    bus.publish(
        batch(partial=(bar("BTC/USD", day + timedelta(hours=23, minutes=59), 61000, 63000, 61000, 62500, 1),))
    )
    assert live(panel) == LiveBar(to_epoch_ns(day), 60500, 63000, 60000, 62500, 26)
    feeder.close()


@pytest.mark.expected_log(r"chart history for AAPL 1Day refused: timestamps must be strictly increasing")
def test_refused_history_leaves_the_chart_saying_what_it_shows(panel: ChartPanel, qloop) -> None:  # type: ignore[no-untyped-def]
    """Daily bars the chart cannot take (two bars with one timestamp) never leave the 1d button
    selected and "Loading history… 100%" over the hourly bars still shown: the selection goes back
    to 1h, the loading status goes, the refusal is on the chart, and the hourly bars stay live."""
    hour = period_start(Timeframe.HOUR_1, datetime.now(UTC) - timedelta(hours=2), crypto=False)
    day = period_start(Timeframe.DAY_1, datetime.now(UTC) - timedelta(days=2), crypto=False)
    history = _History(
        {
            Timeframe.HOUR_1: [
                bar("AAPL", hour, 99, 100, 98, 99.5, 800),
                bar("AAPL", hour + 60 * M, 99.5, 101, 99, 100, 50),
            ],
            Timeframe.DAY_1: [
                bar("AAPL", day, 90, 100, 89, 99, 9000),
                bar("AAPL", day, 99, 101, 98, 100, 10),
            ],
            Timeframe.MIN_1: [bar("AAPL", hour + 60 * M, 99.5, 101, 99, 100, 50)],
        }
    )
    bus = EventBus()
    feeder = ChartFeeder(panel, history, bus)  # type: ignore[arg-type]
    feeder.show("AAPL", "1Hour")
    qloop.run_until_complete(feeder._task)
    assert panel.timeframe is Timeframe.HOUR_1
    panel.timeframe_buttons[Timeframe.DAY_1].click()  # the user picks 1d
    assert panel.timeframe_buttons[Timeframe.DAY_1].isChecked()
    qloop.run_until_complete(feeder._task)
    assert panel.timeframe is Timeframe.HOUR_1  # the hourly bars are still what is drawn
    assert panel.timeframe_buttons[Timeframe.HOUR_1].isChecked()
    assert not panel.timeframe_buttons[Timeframe.DAY_1].isChecked()
    assert panel.loading_label.isHidden() and panel.progress.isHidden()
    message = panel.toolbar.symbol_message
    assert not message.isHidden() and message.text().startswith("AAPL 1d history refused: timestamps must")
    assert message.toolTip() == message.text()
    qloop.run_until_complete(feeder._task)  # the hourly series is fed again
    assert panel.loading_label.isHidden() and not message.isHidden()
    bus.publish(batch(partial=(bar("AAPL", hour + 61 * M, 100, 103, 100, 102, 5),)))
    assert live(panel) == LiveBar(to_epoch_ns(hour + 60 * M), 99.5, 103, 99, 102, 55)
    panel.timeframe_buttons[Timeframe.MIN_5].click()  # a new request: the old refusal goes
    assert message.isHidden()
    feeder.close()
