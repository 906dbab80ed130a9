"""The chart shows times in the window's display zone (exchange time by default, UTC or local as the
``ui.time_zone`` setting), live, and names the zone; daily bars stay on their dates in every zone.

New York offsets are the IANA tz database's America/New_York (EST = UTC-5 in winter). Daily bars
are labelled with their start: a stock's at New York midnight, a crypto pair's at UTC midnight
(docs/alpaca-rules.md, "Bars are labelled with their start", citing the Alpaca forum and
alpaca-py #169)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from app.context import Services
from app.qt.panels.trading import TradingPanels, install_chart
from app.settings import Settings
from services.domain.bus import EventBus
from services.domain.enums import Mode, Timeframe
from widgets.chart.axis import TimeAxis
from widgets.chart.panel import ChartPanel
from widgets.chart.readout import format_time
from widgets.chart.sample import random_walk_bars
from widgets.main_window import MainWindow
from widgets.models.common import TIMES, TimeDisplay

_NS = 10**9
WINTER_OPEN = int(datetime(2026, 1, 2, 14, 30, tzinfo=UTC).timestamp()) * _NS  # 09:30 EST
DAY = 86_400 * _NS


@pytest.fixture(autouse=True)
def exchange_time() -> Iterator[None]:
    TIMES.set(TimeDisplay.EXCHANGE)
    yield
    TIMES.set(TimeDisplay.EXCHANGE)


@pytest.fixture
def chart(qtbot, tmp_path: Path) -> Iterator[ChartPanel]:  # type: ignore[no-untyped-def]
    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    ctx = SimpleNamespace(settings=Settings(), paths=SimpleNamespace(settings_file=tmp_path / "s.json"),
                          bus=EventBus(), notify=lambda *a: None)  # fmt: skip
    panel = install_chart(window, ctx, Services(mode=Mode.LOCAL), TradingPanels())  # type: ignore[arg-type]
    window.resize(1200, 700)
    window.show()
    yield panel


def _labels(axis: TimeAxis) -> list[str]:
    return [s for s in axis.level_ticks(float(axis.geometry().width()))[1] if s]


def test_readout_crosshair_and_axis_show_exchange_time_and_follow_the_setting_live(chart: ChartPanel) -> None:
    chart.set_history("AAPL", "1Min", random_walk_bars(120, start_ns=WINTER_OPEN))
    assert "2026-01-02 11:29 ET" in chart.readout_text()  # the newest bar, 16:29 UTC
    chart.crosshair.set_hover(30.0, None)
    assert "2026-01-02 10:00 ET" in chart.readout_text()
    assert chart.crosshair.time_label.text.text() == "2026-01-02 10:00 ET"
    axis = chart.volume_axis
    assert "10:00" in _labels(axis) and "15:00" not in _labels(axis)

    TIMES.set(TimeDisplay.UTC)  # as the Interface tab applies it: no restart
    assert "2026-01-02 15:00 UTC" in chart.readout_text()
    assert chart.crosshair.time_label.text.text() == "2026-01-02 15:00 UTC"
    assert "15:00" in _labels(axis) and "10:00" not in _labels(axis)

    TIMES.set(TimeDisplay.LOCAL)
    local = datetime.fromtimestamp((WINTER_OPEN + 30 * 60 * _NS) / _NS, tz=UTC).astimezone()
    assert f"{local:%Y-%m-%d %H:%M} {TIMES.label()}" in chart.readout_text()


@pytest.mark.parametrize("midnight", [ZoneInfo("America/New_York"), UTC], ids=["stock", "crypto"])
@pytest.mark.parametrize("display", list(TimeDisplay))
def test_daily_bars_stay_on_their_dates_in_every_zone(chart: ChartPanel, midnight, display) -> None:  # type: ignore[no-untyped-def]
    first = datetime(2025, 12, 1, tzinfo=midnight)  # a Monday; 60 days on: Jan 30
    d = random_walk_bars(61, start_ns=int(first.timestamp()) * _NS, step_ns=DAY)
    TIMES.set(display)
    chart.set_history("BTC/USD", "1Day", d)
    chart.viewport.set_x(-0.5, 60.5)
    assert chart.readout_text().startswith("BTC/USD  1d  2026-01-30  O ")
    chart.crosshair.set_hover(31.0, None)  # the bar of New Year's Day
    assert chart.crosshair.time_label.text.text() == "2026-01-01"
    axis = chart.volume_axis
    values, labels = axis.level_ticks(float(axis.geometry().width()))
    ticks = dict(zip([round(v) for v in values], labels, strict=True))
    dates = [datetime.fromtimestamp(int(d["t"][i]) / _NS, tz=UTC).date() for i in ticks]
    assert ticks and all(
        label in (f"{date:%b %d}", f"{date:%b}", f"{date:%b %Y}", f"{date:%Y}")
        for label, date in zip(ticks.values(), dates, strict=True)
    ), ticks
    if axis._unit.value in ("month", "quarter", "year"):
        assert 31 in ticks  # the month starts on January 1st's bar, not on December 31st's


def test_format_time_names_the_zone_given_and_leaves_a_date_alone() -> None:
    t = WINTER_OPEN
    assert format_time(t, ZoneInfo("America/New_York"), Timeframe.MIN_5, "ET") == "2026-01-02 09:30 ET"
    assert format_time(t, UTC, Timeframe.MIN_5) == "2026-01-02 14:30 UTC"
    crypto_day = int(datetime(2026, 1, 2, tzinfo=UTC).timestamp()) * _NS
    assert format_time(crypto_day, ZoneInfo("America/New_York"), Timeframe.DAY_1, "ET") == "2026-01-02"
