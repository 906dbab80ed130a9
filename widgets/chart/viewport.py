"""The chart's plot area: the price, volume and oscillator panes, what is in view, and the y fit.

x is the bar index (0 = the oldest bar; the live bar is ``n_history``). The panes share the x range
of the price pane. ``follow`` is True while the view shows the newest bar: then a new bar shifts
the view by one bar. The y ranges fit the bars (and the price-pane indicator lines) in view, with
hysteresis so a tick rarely re-lays the axes out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Final

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from widgets.chart.axis import CompactAxis, GridItem, TimeAxis, ValueAxis
from widgets.chart.candles import CandlestickItem, LiveBarItem, VolumeItem
from widgets.chart.lines import IndicatorLines
from widgets.chart.store import BarStore
from widgets.theme import ChartColors

AXIS_WIDTH: Final = 72
# Above this many visible bars the y range ignores indicator lines and uses a strided sample.
_Y_SAMPLE: Final = 20_000


#: A pinned price (a working order) further from the bars than this many times their own height is
#: left out of the fit: one far-off stop would squash the candles into a line.
PINNED_REACH = 4.0


def _with_pinned(lo: float, hi: float, prices: Iterable[float]) -> tuple[float, float]:
    """``lo``..``hi`` widened to the pinned ``prices`` within :data:`PINNED_REACH` of the bars."""
    reach = max(hi - lo, abs(hi) * 0.002) * PINNED_REACH
    near = [p for p in prices if lo - reach <= p <= hi + reach]
    return (min(lo, *near), max(hi, *near)) if near else (lo, hi)


def _style_plot(plot: pg.PlotItem) -> None:
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.showAxis("right")
    plot.hideAxis("left")
    for name in ("right", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(ChartColors.axis))
        axis.setTextPen(pg.mkPen(ChartColors.foreground))
    for name in ("left", "right", "bottom", "top"):
        # Labels are formatted by the axes themselves (compact volume, plain prices). With the
        # SI prefix on, every range change re-set each axis label's HTML, hidden axes too.
        plot.getAxis(name).enableAutoSIPrefix(False)
    # Our own grid item: pyqtgraph's axis grid costs ~3 ms per axis per frame.
    plot.addItem(GridItem(plot.getAxis("bottom"), plot.getAxis("right"), ChartColors.grid), ignoreBounds=True)
    plot.getAxis("right").setWidth(AXIS_WIDTH)
    vb = plot.getViewBox()
    vb.disableAutoRange()
    vb.setMouseEnabled(x=True, y=False)


class Legend(QtWidgets.QGraphicsTextItem):
    """A pane's legend in its top-left corner: each indicator's name and parameters in the colour
    of its line (pixel coordinates of the pane, so it stays put while the bars pan)."""

    def __init__(self, plot: pg.PlotItem) -> None:
        super().__init__(plot.getViewBox())
        self.setObjectName("chartLegend")
        self.setPos(4, 2)
        self.setZValue(1000)
        self.entries: list[tuple[str, str]] = []
        self.hide()

    def set_entries(self, entries: list[tuple[str, str]]) -> None:
        """``(text, colour)`` per indicator in toolbar order; none hides the legend."""
        if entries == self.entries:
            return
        self.entries = list(entries)
        spans = (f'<span style="color:{color}">{text.replace("&", "&amp;").replace("<", "&lt;")}</span>'
                 for text, color in entries)  # fmt: skip
        self.setHtml("&nbsp;&nbsp;".join(spans))
        self.setVisible(bool(entries))


class Viewport:
    """The plot widget with its three panes and the items that draw the bars."""

    def __init__(self, store: BarStore, display_tz: tzinfo | None, default_visible_bars: int) -> None:
        self.store = store
        self.default_visible_bars = default_visible_bars
        self.follow = True
        self._last_y: tuple[float, float] | None = None
        self._last_vol_y: float | None = None
        #: prices the price pane keeps in view besides the bars (the symbol's working orders)
        self.pinned_prices: Callable[[], Iterable[float]] = lambda: ()

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setObjectName("chartPlot")
        self.plot_widget.setBackground(ChartColors.background)
        self.plot_widget.ci.layout.setSpacing(0)
        self.plot_widget.ci.setContentsMargins(0, 0, 0, 0)

        self.price_axis = TimeAxis(store, display_tz)
        self.volume_axis = TimeAxis(store, display_tz, share_ticks_with=self.price_axis)
        self.rsi_axis = TimeAxis(store, display_tz, share_ticks_with=self.price_axis)
        self.price_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=0, col=0, axisItems={"bottom": self.price_axis, "right": ValueAxis("right")}
        )
        self.volume_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=1, col=0, axisItems={"bottom": self.volume_axis, "right": CompactAxis("right")}
        )
        self.rsi_plot = pg.PlotItem(axisItems={"bottom": self.rsi_axis, "right": ValueAxis("right")})
        for plot in (self.price_plot, self.volume_plot, self.rsi_plot):
            _style_plot(plot)
        self.price_plot.hideAxis("bottom")
        self.volume_plot.setXLink(self.price_plot)
        self.rsi_plot.setXLink(self.price_plot)
        self._build_oscillator_pane()
        self.price_legend = Legend(self.price_plot)
        self.oscillator_legend = Legend(self.rsi_plot)
        self.plot_widget.ci.layout.setRowStretchFactor(0, 5)
        self.plot_widget.ci.layout.setRowStretchFactor(1, 1)
        self.volume_plot.setMaximumHeight(140)

        self.candles = CandlestickItem(store)
        self.live_candle = LiveBarItem(store)
        self.volume = VolumeItem(store)
        self.live_volume = LiveBarItem(store, volume=True)
        self.price_plot.addItem(self.candles)
        self.price_plot.addItem(self.live_candle)
        self.volume_plot.addItem(self.volume)
        self.volume_plot.addItem(self.live_volume)

    def _build_oscillator_pane(self) -> None:
        self.rsi_plot.getAxis("right").setTicks([[(30.0, "30"), (50.0, "50"), (70.0, "70")]])
        self.rsi_plot.setMaximumHeight(160)
        self.rsi_plot.setYRange(0, 100, padding=0.02)
        pen = pg.mkPen(ChartColors.oscillator_level, style=QtCore.Qt.PenStyle.DashLine)
        for level in (30.0, 70.0):
            self.rsi_plot.addItem(pg.InfiniteLine(pos=level, angle=0, pen=pen), ignoreBounds=True)

    def plots(self) -> tuple[pg.PlotItem, pg.PlotItem, pg.PlotItem]:
        """The panes, price first."""
        return self.price_plot, self.volume_plot, self.rsi_plot

    def set_time_zone(self, tz: tzinfo | None) -> None:
        """The time axes (and the grid at their ticks) in ``tz`` (None: this computer's zone)."""
        for axis in (self.price_axis, self.volume_axis, self.rsi_axis):
            axis.set_tz(tz)
        for plot in self.plots():
            plot.getViewBox().update()  # the grid asks the axis for its ticks as it paints

    def show_oscillator_pane(self, on: bool) -> None:
        layout = self.plot_widget.ci
        if on:
            layout.addItem(self.rsi_plot, row=2, col=0)
            layout.layout.setRowStretchFactor(2, 1)
            self.volume_plot.hideAxis("bottom")
            self.rsi_plot.showAxis("bottom")
            self.rsi_plot.show()
        else:
            if self.rsi_plot in layout.items:
                layout.removeItem(self.rsi_plot)
            self.rsi_plot.hide()
            self.volume_plot.showAxis("bottom")

    def bars_changed(self) -> None:
        """History grew or was replaced: refresh the bar items (then ``update_limits``)."""
        self.candles.data_changed()
        self.volume.data_changed()
        self.live_candle.data_changed()
        self.live_volume.data_changed()

    def update_limits(self) -> None:
        """How far the view may pan and zoom, from the number of bars."""
        n = max(1, len(self.store))
        self.price_plot.getViewBox().setLimits(
            xMin=-n * 0.5 - 50, xMax=n * 1.5 + 50, minXRange=10, maxXRange=n * 1.2 + 100
        )

    def live_bar_changed(self) -> None:
        self.live_candle.data_changed()
        self.live_volume.data_changed()

    def forget_y(self) -> None:
        """New bars replace the old: the next fit starts afresh."""
        self._last_y = None
        self._last_vol_y = None

    # ------------------------------------------------------------------ x: what is in view

    def visible_index_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.price_plot.getViewBox().viewRange()
        return float(x0), float(x1)

    def go_latest(self) -> None:
        """Show the newest bars (Home) and follow new ones."""
        n = len(self.store)
        width = self.default_visible_bars
        right = n - 1 + max(2.0, width * 0.08)
        self.follow = True
        self.set_x(right - width, right)

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (positive = towards newer bars)."""
        x0, x1 = self.visible_index_range()
        d = max(1.0, (x1 - x0) * abs(fraction)) * (1 if fraction > 0 else -1)
        self.set_x(x0 + d, x1 + d)
        _, x1 = self.visible_index_range()
        self.follow = x1 >= len(self.store) - 1

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (> 1 shows fewer bars), anchored at the right edge when following."""
        x0, x1 = self.visible_index_range()
        width = max(10.0, (x1 - x0) / factor)
        n = len(self.store)
        width = min(width, max(n * 1.1 + 20, 50.0))
        if self.follow:
            self.set_x(x1 - width, x1)
        else:
            mid = (x0 + x1) / 2
            self.set_x(mid - width / 2, mid + width / 2)

    def set_x(self, x0: float, x1: float) -> None:
        self.price_plot.getViewBox().setXRange(x0, x1, padding=0)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """Left/Right pan, Up/+/= and Down/- zoom, Home shows the newest bars. True if handled."""
        key = QtCore.Qt.Key
        k = event.key()
        if k == key.Key_Left:
            self.pan(-0.1)
        elif k == key.Key_Right:
            self.pan(0.1)
        elif k in (key.Key_Up, key.Key_Plus, key.Key_Equal):
            self.zoom(1.25)
        elif k in (key.Key_Down, key.Key_Minus):
            self.zoom(1 / 1.25)
        elif k == key.Key_Home:
            self.go_latest()
        else:
            return False
        event.accept()
        return True

    # ------------------------------------------------------------------ y: fitting the panes

    def fit_y(self, lines: Iterable[IndicatorLines], force: bool = False) -> None:
        """Fit the price and volume panes to the bars (and the price-pane ``lines``) in view."""
        x0, x1 = self.visible_index_range()
        i0, i1 = max(0, math.floor(x0)), math.ceil(x1) + 1
        stats = self.store.range_stats(i0, i1)
        if stats is None:
            return
        lo, hi, vmax = stats
        if min(i1, len(self.store)) - i0 <= _Y_SAMPLE:
            for line in lines:
                extent = line.extent(i0, i1) if line.enabled and line.on_price_pane else None
                if extent is not None:
                    lo, hi = min(lo, extent[0]), max(hi, extent[1])
        lo, hi = _with_pinned(lo, hi, self.pinned_prices())
        if hi <= lo:
            pad = abs(hi) * 0.01 or 1.0
            lo, hi = lo - pad, hi + pad
        pad = (hi - lo) * 0.06
        target = (lo - pad, hi + pad)
        # Hysteresis: keep the current range while the bars fit in it with at least half the
        # padding and it is at most 15 % taller than the fitted one. A tick or a one-bar shift
        # then usually changes nothing: no price-axis and grid re-layout (~1 ms a frame) and no
        # jitter of every candle on screen.
        cur = self._last_y
        keep = (
            not force
            and cur is not None
            and cur[0] <= lo - pad / 2
            and cur[1] >= hi + pad / 2
            and cur[1] - cur[0] <= (target[1] - target[0]) * 1.15
        )
        if not keep and (force or target != cur):
            self._last_y = target
            self.price_plot.getViewBox().setYRange(*target, padding=0)
        vtop = max(vmax, 1e-12) * 1.1
        vcur = self._last_vol_y
        vkeep = not force and vcur is not None and vtop / 1.08 <= vcur <= vtop * 1.15
        if not vkeep and (force or vtop != vcur):
            self._last_vol_y = vtop
            self.volume_plot.getViewBox().setYRange(0, vtop, padding=0)
