"""ChartPanel behaviour under pytest-qt (offscreen)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from services.domain.enums import Timeframe
from widgets.chart.candles import CandlestickItem, merge_factor
from widgets.chart.panel import ChartPanel
from widgets.chart.readout import format_price, format_time
from widgets.chart.sample import random_walk_bars

MIN = 60 * 10**9


@pytest.fixture
def panel(qtbot) -> ChartPanel:  # type: ignore[no-untyped-def]
    p = ChartPanel(visible_bars=100)
    qtbot.addWidget(p)
    p.resize(1000, 600)
    p.show()
    qtbot.waitExposed(p)
    return p


def frame(panel: ChartPanel) -> None:
    QtWidgets.QApplication.processEvents()
    panel.plot_widget.grab()


def load(panel: ChartPanel, n: int = 2000, seed: int = 1) -> dict[str, np.ndarray]:
    d = random_walk_bars(n, seed=seed)
    panel.set_history("AAPL", "1Min", d)
    frame(panel)
    return d


def test_object_names(panel: ChartPanel) -> None:
    assert panel.objectName() == "chartPanel"
    for name in ("chartSymbolEdit", "chartTimeframe_5m", "chartIndicator_RSI", "chartReadout", "chartPlot"):
        assert panel.findChild(QtCore.QObject, name) is not None, name


def test_set_history_fills_store_and_views_latest(panel: ChartPanel) -> None:
    d = load(panel)
    assert len(panel.store) == 2000
    np.testing.assert_array_equal(panel.store.column("c"), d["c"])
    x0, x1 = panel.visible_index_range()
    assert x0 < 1999 < x1 and x1 - x0 == pytest.approx(100, rel=0.01)
    # Bounding rect from cached extremes: spans all history, not just the visible part.
    r = panel.candles.boundingRect()
    assert r.top() == pytest.approx(d["l"][:-1].min()) and r.bottom() == pytest.approx(d["h"][:-1].max())
    assert panel.symbol_edit.text() == "AAPL"
    assert panel.timeframe_buttons[panel.timeframe].isChecked()


def test_paint_draws_only_the_visible_slice(panel: ChartPanel) -> None:
    load(panel)
    b = panel.candles.last_buckets
    assert b is not None and b.k == 1
    x0, x1 = panel.visible_index_range()
    # From just left of the view to the newest history bar (the view has room on the right).
    assert b.x.min() == np.floor(x0) - 1
    assert b.x.max() == panel.store.n_history - 1 < x1
    assert len(b.x) < 110  # 100 visible, out of 2000


def test_y_range_follows_visible_bars(panel: ChartPanel) -> None:
    d = load(panel)
    _, (y0, y1) = panel.price_plot.getViewBox().viewRange()
    i0 = int(np.floor(panel.visible_index_range()[0]))
    lo, hi = d["l"][max(0, i0) :].min(), d["h"][max(0, i0) :].max()
    assert y0 < lo and y1 > hi
    assert (y1 - y0) < 1.5 * (hi - lo)  # fitted to the visible slice, not all history


def test_update_last_bar_same_time_replaces_new_time_rolls(panel: ChartPanel) -> None:
    d = load(panel)
    t = int(d["t"][-1])
    version = panel.store.version
    panel.update_last_bar(t, d["o"][-1], d["h"][-1] + 5, d["l"][-1], d["h"][-1] + 4, 1.0)
    assert panel.store.version == version and len(panel.store) == 2000
    assert panel.store.live is not None and panel.store.live.c == d["h"][-1] + 4
    assert "C " in panel.readout_text()
    x_before = panel.visible_index_range()
    panel.update_last_bar(datetime.fromtimestamp((t + MIN) / 1e9, tz=UTC), 1.0, 2.0, 0.5, 1.5, 3.0)
    assert len(panel.store) == 2001 and panel.store.n_history == 2000
    assert panel.store.h[-1] == d["h"][-1] + 5
    # Following the latest bar: the view moved right by one bar.
    assert panel.visible_index_range()[1] == pytest.approx(x_before[1] + 1)
    with pytest.raises(ValueError):
        panel.update_last_bar(t, 1.0, 2.0, 0.5, 1.5, 3.0)  # older than the live bar
    with pytest.raises(ValueError, match="aware"):
        panel.update_last_bar(datetime(2030, 1, 1), 1.0, 2.0, 0.5, 1.5, 3.0)


def test_append_bars_extends_history(panel: ChartPanel) -> None:
    d = load(panel)
    t = int(d["t"][-1])
    extra = {
        "t": np.array([t + MIN, t + 2 * MIN], dtype=np.int64),
        "o": np.array([10.0, 11.0]),
        "h": np.array([12.0, 13.0]),
        "l": np.array([9.0, 10.0]),
        "c": np.array([11.0, 12.0]),
        "v": np.array([5.0, 6.0]),
    }
    panel.append_bars(extra)
    frame(panel)
    assert len(panel.store) == 2002
    assert panel.store.live is not None and panel.store.live.c == 12.0
    assert panel.candles.boundingRect().top() == pytest.approx(min(d["l"].min(), 9.0))


def test_bad_history_rejected_and_chart_kept(panel: ChartPanel) -> None:
    d = load(panel)
    bad = dict(d)
    bad["h"] = d["h"].copy()
    bad["h"][5] = d["l"][5] - 1
    with pytest.raises(ValueError, match="row 5"):
        panel.set_history("MSFT", "5Min", bad)
    with pytest.raises(ValueError, match="timeframe"):
        panel.set_history("MSFT", "7Min", d)
    assert panel.symbol == "AAPL" and len(panel.store) == 2000


def test_per_pixel_merge_matches_reference(panel: ChartPanel) -> None:
    d = load(panel, n=50_000)
    vb = panel.price_plot.getViewBox()
    vb.setXRange(0, 50_000, padding=0)
    frame(panel)
    b = panel.candles.last_buckets
    assert b is not None
    k = merge_factor(50_000, vb.width())
    assert b.k == k > 1
    assert len(b.x) < vb.width() + 2  # at most about one bucket per pixel column
    for j in (0, 3, len(b.x) // 2, len(b.x) - 1):
        a = j * k
        e = min(a + k, 49_999)
        assert b.o[j] == d["o"][a] and b.c[j] == d["c"][e - 1]
        assert b.h[j] == d["h"][a:e].max() and b.l[j] == d["l"][a:e].min()


def test_no_per_bar_items(qtbot) -> None:  # type: ignore[no-untyped-def]
    counts = []
    for n in (500, 20_000):
        p = ChartPanel()
        qtbot.addWidget(p)
        p.resize(800, 500)
        p.show()
        p.set_history("AAPL", "1Min", random_walk_bars(n))
        frame(p)
        counts.append(
            (
                len(p.plot_widget.scene().items()),
                len(p.candles.childItems()),
                len(p.price_plot.getViewBox().addedItems),
            )
        )
    assert counts[0] == counts[1]
    assert sum(isinstance(i, CandlestickItem) for i in p.plot_widget.scene().items()) == 1


def test_symbol_and_timeframe_signals(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(panel.timeframeRequested) as sig:
        qtbot.mouseClick(panel.timeframe_buttons[Timeframe.MIN_5], QtCore.Qt.MouseButton.LeftButton)
    assert sig.args == ["5Min"]
    panel.symbol_edit.setText(" btcusd ")
    with qtbot.waitSignal(panel.symbolRequested) as sig:
        qtbot.keyClick(panel.symbol_edit, QtCore.Qt.Key.Key_Return)
    assert sig.args == ["BTC/USD"]
    panel.symbol_edit.setText("not a symbol!")
    with qtbot.assertNotEmitted(panel.symbolRequested):
        qtbot.keyClick(panel.symbol_edit, QtCore.Qt.Key.Key_Return)
    assert "not a valid symbol" in panel.symbol_edit.toolTip()


def test_keys_pan_and_zoom(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    load(panel)
    view = panel.plot_widget
    x0, x1 = panel.visible_index_range()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Left)
    a0, a1 = panel.visible_index_range()
    assert a0 < x0 and a1 - a0 == pytest.approx(x1 - x0)
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Up)
    b0, b1 = panel.visible_index_range()
    assert b1 - b0 < a1 - a0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Minus)
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Minus)
    c0, c1 = panel.visible_index_range()
    assert c1 - c0 > b1 - b0
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Home)
    assert panel.visible_index_range() == pytest.approx((x0, x1))


def test_indicator_toggles(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    d = load(panel)
    items_before = len(panel.price_plot.items)
    qtbot.mouseClick(panel.indicator_buttons["SMA"], QtCore.Qt.MouseButton.LeftButton)
    assert panel.enabled_indicators() == ["SMA"]
    assert len(panel.price_plot.items) == items_before + 2  # history line + live segment
    (sma,) = panel.indicator_values("SMA")
    assert sma[-1] == pytest.approx(d["c"][-20:].mean())
    assert sma[-2] == pytest.approx(d["c"][-21:-1].mean())
    panel.set_indicator("BB", True)
    assert len(panel.indicator_values("BB")) == 3
    panel.set_indicator("RSI", True)
    assert panel.rsi_plot.isVisible()
    panel.set_indicator("SMA", False)
    panel.set_indicator("BB", False)
    panel.set_indicator("RSI", False)
    assert len(panel.price_plot.items) == items_before
    assert not panel.rsi_plot.isVisible()
    with pytest.raises(ValueError, match="unknown indicator"):
        panel.set_indicator("MACD", True)


def test_live_indicator_value_tracks_ticks(panel: ChartPanel) -> None:
    d = load(panel)
    panel.set_indicator("EMA", True)
    panel.set_indicator("VWAP", True)
    live = panel.store.live
    assert live is not None
    panel.update_last_bar(live.t, live.o, live.h + 3, live.l, live.h + 3, live.v + 100)
    closes = panel.store.column("c")
    (ema,) = panel.indicator_values("EMA")
    from services.indicators import series as ind

    assert ema[-1] == pytest.approx(ind.ema(closes, 50)[-1], rel=1e-9)
    assert len(ema) == len(d["c"])


def test_crosshair_readout_on_mouse_move(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    d = load(panel)
    vb = panel.price_plot.getViewBox()
    target = 1990
    scene_pt = vb.mapViewToScene(QtCore.QPointF(target, float(d["c"][target])))
    view_pt = panel.plot_widget.mapFromScene(scene_pt)
    qtbot.mouseMove(panel.plot_widget.viewport(), view_pt)
    expected = f"O {d['o'][target]:,.2f}"
    qtbot.waitUntil(lambda: expected in panel.readout_text(), timeout=2000)
    assert f"C {d['c'][target]:,.2f}" in panel.readout_text()
    assert panel.vlines[0].isVisible() and panel.vlines[0].value() == target


def test_crosshair_price_label_and_time_axis_label_follow_the_mouse(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    d = load(panel)
    vb = panel.price_plot.getViewBox()
    label = panel.crosshair.price_label
    for target, price in ((1985, float(d["l"][1985])), (1992, float(d["h"][1992]))):
        view_pt = panel.plot_widget.mapFromScene(vb.mapViewToScene(QtCore.QPointF(target, price)))
        qtbot.mouseMove(panel.plot_widget.viewport(), view_pt)
        qtbot.waitUntil(lambda t=target: panel.vlines[0].value() == t, timeout=2000)
        # The price axis shows the crosshair's own price from the first move on, beside its line.
        pixel = abs(vb.viewPixelSize()[1])
        assert panel.hline.value() == pytest.approx(price, abs=4 * pixel)  # the mouse moves in whole pixels
        assert label.isVisible() and label.text.text() == format_price(panel.hline.value())
        price_axis = panel.price_plot.getAxis("right").sceneBoundingRect()
        line_y = vb.mapViewToScene(QtCore.QPointF(0, panel.hline.value())).y()
        box = label.sceneBoundingRect()
        assert (
            box.top() <= line_y <= box.bottom() and price_axis.left() - 1 <= box.left() < price_axis.right()
        )
        # The time axis shows the crosshair's time, under the vertical line.
        tag = panel.crosshair.time_label
        assert tag.isVisible() and tag.text.text() == format_time(int(d["t"][target]), UTC, Timeframe.MIN_1)
        axis = panel.volume_plot.getAxis("bottom").sceneBoundingRect()
        box = tag.sceneBoundingRect()
        line_x = vb.mapViewToScene(QtCore.QPointF(target, 0)).x()
        assert (
            box.left() <= line_x <= box.right() and axis.top() - 1 <= box.top() < axis.bottom()
        )  # 1: the pen
    panel.crosshair.set_hover(None, None)
    assert not panel.crosshair.time_label.isVisible() and not label.isVisible()


def test_fills_and_open_orders(panel: ChartPanel) -> None:
    d = load(panel)
    t = d["t"]
    panel.set_fills(
        [(int(t[10]) + 30 * 10**9, 101.5, "buy"), (int(t[20]), 99.0, "sell"), (int(t[0]) - MIN, 1.0, "buy")]
    )
    pos = panel.fill_positions()
    assert pos == [(10.0, 101.5, "buy"), (20.0, 99.0, "sell")]  # the fill before the first bar is not drawn
    with pytest.raises(ValueError, match="side"):
        panel.set_fills([(int(t[1]), 1.0, "hold")])
    assert len(panel.fill_positions()) == 2
    panel.set_open_orders([("a", "buy", 100.0), ("b", "sell", 105.0)])
    assert sorted(panel.overlays.order_lines) == ["a", "b"]
    assert panel.overlays.order_lines["b"].value() == 105.0
    panel.set_open_orders([("b", "sell", 106.0)])
    assert list(panel.overlays.order_lines) == ["b"] and panel.overlays.order_lines["b"].value() == 106.0


def test_loading_indicator(panel: ChartPanel) -> None:
    panel.set_loading(0.4)
    assert panel.progress.isVisible() and panel.progress.value() == 400
    assert "40%" in panel.loading_label.text()
    with pytest.raises(ValueError):
        panel.set_loading(1.5)
    panel.set_loading(None)
    assert not panel.progress.isVisible()


def test_indicators_after_appends_equal_full_recompute(panel: ChartPanel) -> None:
    from services.indicators import series as ind

    d = load(panel, n=3000)
    for name in ("SMA", "EMA", "BB", "RSI", "VWAP"):
        panel.set_indicator(name, True)
    t = int(d["t"][-1])
    rng = np.random.default_rng(8)
    for i in range(1, 40):
        c = float(panel.store.live.c)  # type: ignore[union-attr]
        nc = c * (1 + rng.normal(0, 0.002))
        panel.update_last_bar(t + i * MIN, c, max(c, nc) + 0.01, min(c, nc) - 0.01, nc, 100.0 + i)
    s = panel.store
    close = s.c
    np.testing.assert_allclose(
        panel._indicators["SMA"].values[0], ind.sma(close, 20), rtol=1e-9, equal_nan=True
    )
    np.testing.assert_allclose(
        panel._indicators["EMA"].values[0], ind.ema(close, 50), rtol=1e-9, equal_nan=True
    )
    for got, want in zip(panel._indicators["BB"].values, ind.bollinger(close, 20, 2.0), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(
        panel._indicators["RSI"].values[0], ind.rsi(close, 14), rtol=1e-9, equal_nan=True
    )
    want_vwap = ind.vwap_session(ind.typical_price(s.h, s.l, close), s.v, ind.session_ids(s.t))
    np.testing.assert_allclose(panel._indicators["VWAP"].values[0], want_vwap, rtol=1e-9, equal_nan=True)


def test_indicator_lines_get_only_the_visible_slice_and_grow_past_capacity(panel: ChartPanel) -> None:
    from services.indicators import series as ind

    d = load(panel, n=1025)  # 1,024 history bars: the first append outgrows the value buffers
    panel.set_indicator("SMA", True)
    panel.set_indicator("EMA", True)
    t = int(d["t"][-1])
    for i in range(1, 60):
        c = float(panel.store.live.c)  # type: ignore[union-attr]
        panel.update_last_bar(t + i * MIN, c, c + 0.05, c - 0.05, c + 0.01, 10.0)
    close = panel.store.c
    np.testing.assert_allclose(panel._indicators["SMA"].values[0], ind.sma(close, 20), equal_nan=True)
    np.testing.assert_allclose(panel._indicators["EMA"].values[0], ind.ema(close, 50), equal_nan=True)
    # the line item holds the bars in view (100 of ~1,080, plus a margin), ending at the newest
    x, y = panel._indicators["SMA"].hist_items[0].getData()
    x0, _ = panel.visible_index_range()
    assert x is not None and y is not None and len(x) < 300
    assert x[0] <= max(0.0, x0) and x[-1] == panel.store.n_history - 1
    np.testing.assert_allclose(y, panel._indicators["SMA"].values[0][int(x[0]) :], equal_nan=True)
    # zoomed all the way out: the slice spans the whole history (decimated above 2 points/pixel)
    n = len(panel.store)
    panel.price_plot.getViewBox().setXRange(0, n, padding=0)
    x, _ = panel._indicators["SMA"].hist_items[0].getData()
    assert x is not None and x[0] == 0 and x[-1] >= n - 1 - 2 * (x[1] - x[0])


def test_time_labels_match_strftime(panel: ChartPanel) -> None:
    """Axis labels and the readout are formatted by hand (no strftime); same text as strftime."""
    d = load(panel, n=3000)
    axis = panel.price_axis
    times = [datetime.fromtimestamp(int(t) / 1e9, tz=UTC) for t in d["t"][:3]]
    for unit, fmt in (("year", "%Y"), ("day", "%b %d"), ("1min", "%H:%M")):
        axis._unit = unit
        assert axis.tickStrings([0.0], 1.0, 1.0) == [times[0].strftime(fmt)]
    axis._unit = "month"
    want = times[0].strftime("%b %Y") if times[0].month == 1 else times[0].strftime("%b")
    assert axis.tickStrings([0.0], 1.0, 1.0) == [want]
    readout_time = format_time(int(d["t"][1]), panel.display_tz, panel.timeframe)
    assert readout_time == times[1].strftime("%Y-%m-%d %H:%M UTC")


def test_nice_ticks_are_round_and_spaced() -> None:
    from widgets.chart.axis import nice_ticks

    assert nice_ticks(103.2, 109.6, 460, min_px=40) == [104.0, 105.0, 106.0, 107.0, 108.0, 109.0]
    values = nice_ticks(0.0, 1.0, 1000, min_px=40)
    assert (
        values[1] - values[0] == pytest.approx(0.05) and values[0] == 0.0 and values[-1] == pytest.approx(1.0)
    )
    for lo, hi, px in ((0.0012, 0.0019, 300.0), (-5e6, 7e6, 120.0), (99.99, 100.01, 900.0)):
        v = nice_ticks(lo, hi, px, min_px=40)
        assert v and all(lo <= x <= hi for x in v)
        step = v[1] - v[0]
        assert px * step / (hi - lo) >= 40 - 1e-9  # labels at least 40 px apart
        assert len(v) >= 2 or px < 80
    assert nice_ticks(1.0, 1.0, 500) == [] and nice_ticks(0.0, float("nan"), 500) == []
    assert nice_ticks(0.0, 1.0, 0) == []


def _axis_labels(axis) -> list[str]:  # type: ignore[no-untyped-def]
    return [st.text() for _, st in axis._labels]


def test_price_axis_labels_follow_the_view_and_stay_inside(panel: ChartPanel) -> None:
    load(panel)
    axis = panel.price_plot.getAxis("right")
    lo, hi = panel.price_plot.getViewBox().viewRange()[1]
    labels = _axis_labels(axis)
    assert len(labels) >= 3
    values = [float(s) for s in labels]
    assert all(lo <= v <= hi for v in values) and values == sorted(values)
    bounds = axis.mapRectFromParent(axis.geometry())
    for pos, st in axis._labels:
        assert bounds.left() <= pos.x() and pos.x() + st.size().width() <= bounds.right() + 1
    # The grid draws its horizontal lines at the same values as the labels.
    grid_ticks = axis.tickValues(lo, hi, bounds.height())[0][1]
    assert set(values) <= {
        float(axis.tickStrings([v], 1.0, grid_ticks[1] - grid_ticks[0])[0]) for v in grid_ticks
    }
    # Moving the view re-lays the axis out: new range, new labels.
    panel.price_plot.getViewBox().setYRange(lo + 1000, hi + 1000, padding=0)
    frame(panel)
    moved = [float(s) for s in _axis_labels(axis)]
    assert moved and all(lo + 1000 <= v <= hi + 1000 for v in moved)


def test_time_axis_labels_shift_with_a_new_bar(panel: ChartPanel) -> None:
    d = load(panel, n=3000)
    axis = panel.volume_axis
    before = list(axis._labels)
    assert len(before) >= 3
    step = int(d["t"][1] - d["t"][0])
    live = panel.store.live
    assert live is not None
    c = live.c
    bar = {"t": live.t + step, "o": c, "h": c, "l": c, "c": c, "v": 1.0}
    panel.append_bars({k: np.array([v]) for k, v in bar.items()})
    frame(panel)
    after = list(axis._labels)
    # Same labels (a one-bar shift), each drawn a bar's width further left, same text objects reused.
    common = {st.text() for _, st in before} & {st.text() for _, st in after}
    assert common
    px_per_bar = axis.mapRectFromParent(axis.geometry()).width() / 100
    for text in common:
        x0 = next(p.x() for p, st in before if st.text() == text)
        x1 = next(p.x() for p, st in after if st.text() == text)
        assert x1 == pytest.approx(x0 - px_per_bar, abs=1.5)
    assert any(a is b for (_, a) in after for (_, b) in before)


def test_indicators_stay_on_across_symbol_and_timeframe_changes(panel: ChartPanel) -> None:
    from services.indicators import series

    load(panel)
    panel.set_indicator("SMA", True)
    panel.set_indicator("RSI", True)
    d = random_walk_bars(500, seed=9)
    panel.set_history("MSFT", "5Min", d)
    assert panel.enabled_indicators() == ["SMA", "RSI"]
    assert panel.indicator_buttons["SMA"].isChecked() and panel.rsi_plot.isVisible()
    assert panel.timeframe_buttons[Timeframe.MIN_5].isChecked() and "MSFT  5m" in panel.readout_text()
    (rsi,) = panel.indicator_values("RSI")
    assert len(rsi) == 500  # recomputed for the new bars: 499 history values and the live one
    np.testing.assert_allclose(rsi[:-1], series.rsi(d["c"][:-1], 14), equal_nan=True)


def test_a_narrow_chart_elides_the_readout_with_the_whole_line_in_its_tooltip(qtbot) -> None:  # type: ignore[no-untyped-def]
    """On a 1366-px screen the chart is some 500 px wide: the readout was cut mid-figure ("(+0.")
    with no sign that anything was missing. It now ends in "…" and its tooltip has the whole line;
    widened again, it shows the whole line and has no tooltip."""
    p = ChartPanel(visible_bars=100)
    qtbot.addWidget(p)
    p.resize(1000, 600)
    p.show()
    qtbot.waitExposed(p)
    load(p)
    whole = p.readout_text()
    label = p.readout
    assert QtWidgets.QLabel.text(label) == whole and not label.toolTip()
    p.resize(360, 600)
    qtbot.waitUntil(lambda: QtWidgets.QLabel.text(label).endswith("…"), timeout=2000)
    shown = QtWidgets.QLabel.text(label)
    assert whole.startswith(shown[:-1]) and "  " in shown  # cut at the end, its spacing kept
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert whole in label.toolTip() and p.readout_text() == whole
    p.resize(1000, 600)
    qtbot.waitUntil(lambda: QtWidgets.QLabel.text(label) == whole, timeout=2000)
    assert not label.toolTip()
