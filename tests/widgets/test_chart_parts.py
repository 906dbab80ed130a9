"""The chart's parts on their own: toolbar helpers, loading status, readout formats, overlays."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pyqtgraph as pg
import pytest

from services.domain.enums import Timeframe
from widgets.chart.overlays import Overlays
from widgets.chart.readout import format_bar, format_price, format_time, format_volume
from widgets.chart.sample import random_walk_bars
from widgets.chart.store import BarStore, LiveBar, to_epoch_ns
from widgets.chart.toolbar import LoadingStatus, normalize_timeframe
from widgets.theme import ChartColors


def test_normalize_timeframe_accepts_enum_alpaca_spelling_and_label() -> None:
    assert normalize_timeframe(Timeframe.HOUR_1) is Timeframe.HOUR_1
    assert normalize_timeframe("5Min") is Timeframe.MIN_5
    assert normalize_timeframe("5min") is Timeframe.MIN_5
    assert normalize_timeframe(" 15m ") is Timeframe.MIN_15
    with pytest.raises(ValueError, match="unknown timeframe"):
        normalize_timeframe("2m")


def test_to_epoch_ns() -> None:
    assert to_epoch_ns(5) == 5
    assert to_epoch_ns(np.int64(7)) == 7
    t = datetime(2024, 1, 2, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert to_epoch_ns(t) == int(datetime(2024, 1, 2, 14, 30, tzinfo=UTC).timestamp()) * 10**9 + 123_456_000
    with pytest.raises(ValueError, match="timezone-aware"):
        to_epoch_ns(datetime(2024, 1, 2))
    with pytest.raises(ValueError, match="epoch nanoseconds"):
        to_epoch_ns(True)


def test_readout_formats() -> None:
    assert format_price(1234.5) == "1,234.50"
    assert format_price(0.05) == "0.0500"
    assert format_price(0.001234) == "0.00123400"
    assert format_price(math.nan) == "—"
    assert (
        format_volume(1_234_567) == "1.23M" and format_volume(999) == "999" and format_volume(2e9) == "2.00B"
    )
    t = int(datetime(2024, 3, 1, 15, 4, tzinfo=UTC).timestamp()) * 10**9
    assert format_time(t, UTC, Timeframe.MIN_5) == "2024-03-01 15:04 UTC"
    assert format_time(t, UTC, Timeframe.DAY_1) == "2024-03-01"  # a date needs no zone
    bar = LiveBar(t=t, o=10.0, h=12.0, l=9.5, c=11.0, v=1500.0)
    assert format_bar(bar, 10.0) == "O 10.00  H 12.00  L 9.50  C 11.00  (+10.00%)  V 1.50K"
    assert format_bar(bar, None) == "O 10.00  H 12.00  L 9.50  C 11.00  V 1.50K"


def test_loading_status(qtbot) -> None:  # type: ignore[no-untyped-def]
    status = LoadingStatus()
    status.set_fraction(0.25)
    assert status.progress.value() == 250 and status.label.text() == "Loading history… 25%"
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        status.set_fraction(math.inf)
    status.set_fraction(None)
    assert status.progress.isHidden() and status.label.isHidden()


def test_overlays_place_fills_and_order_lines(qtbot) -> None:  # type: ignore[no-untyped-def]
    store = BarStore()
    d = random_walk_bars(50, seed=2)
    store.load(d)
    plot = pg.PlotItem()
    overlays = Overlays(plot, store)
    overlays.set_fills([(int(d["t"][3]), Decimal("101.25"), "BUY"), (int(d["t"][4]), 99.0, "sell")])
    assert overlays.fill_positions() == [(3.0, 101.25, "buy"), (4.0, 99.0, "sell")]
    with pytest.raises(ValueError, match="fill price must be a positive number"):
        overlays.set_fills([(int(d["t"][3]), -1.0, "buy")])
    with pytest.raises(ValueError, match="fill side must be 'buy' or 'sell'"):
        overlays.set_fills([(int(d["t"][3]), 1.0, "short")])
    assert len(overlays.fill_positions()) == 2  # a rejected call keeps the markers
    overlays.set_open_orders([("o1", "sell", Decimal("105.5"))])
    line = overlays.order_lines["o1"]
    assert line.value() == 105.5 and line.label.format == "SELL 105.50"
    assert line.pen.color().name() == ChartColors.down
    with pytest.raises(ValueError, match="order side"):
        overlays.set_open_orders([("o2", "hold", 1.0)])
    overlays.set_open_orders([])
    assert overlays.order_lines == {} and line not in plot.items
