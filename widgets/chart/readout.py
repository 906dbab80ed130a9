"""The crosshair and the readout: the lines under the mouse and the bar's time, prices and volume.

The crosshair follows the mouse (rate-limited to 60 Hz) with a vertical line through every pane and
a horizontal line in the price pane; its price is labelled on the price axis and its time on the
time axis. The readout label shows the hovered bar
(or the newest bar when the mouse is away): symbol, timeframe, time in the display time zone
(the window's: :meth:`Crosshair.set_time_zone`) with the zone named, OHLC, change from the previous
close and volume.

A daily bar is shown as its date alone, the date of its UTC start, whatever the display zone: a
stock's daily bar starts at New York midnight and a crypto pair's at UTC midnight (docs/alpaca-rules.md
"Bars are labelled with their start"), both on the session's date in UTC, while in New York time a
crypto day would show as the evening before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from services.domain.enums import Timeframe
from widgets.chart.store import BarStore, LiveBar
from widgets.chart.toolbar import TIMEFRAME_LABELS
from widgets.message_label import MessageLabel
from widgets.theme import ChartColors


def format_price(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    a = abs(p)
    decimals = 2 if a >= 1 else 4 if a >= 0.01 else 8
    return f"{p:,.{decimals}f}"


def format_volume(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= size:
            return f"{v / size:.2f}{suffix}"
    return f"{v:.4g}"


def format_time(t_ns: int, tz: tzinfo | None, timeframe: Timeframe, zone: str = "") -> str:
    """The bar's start in ``tz`` (None: this computer's zone) followed by ``zone`` (the zone's
    name as the window says it, ``ET``; empty: the zone's own abbreviation). A daily bar is its
    date alone (module docstring)."""
    dt = datetime.fromtimestamp(t_ns / 1e9, tz=UTC)
    if timeframe is Timeframe.DAY_1:
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    dt = dt.astimezone(tz)
    # not strftime: see axis.tickStrings
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}"
    return f"{text} {zone or dt.tzname() or ''}".rstrip()


def format_bar(bar: LiveBar, prev_close: float | None) -> str:
    parts = [
        f"O {format_price(bar.o)}",
        f"H {format_price(bar.h)}",
        f"L {format_price(bar.l)}",
        f"C {format_price(bar.c)}",
    ]
    if prev_close:
        parts.append(f"({(bar.c / prev_close - 1) * 100:+.2f}%)")
    parts.append(f"V {format_volume(bar.v)}")
    return "  ".join(parts)


class AxisTag(QtWidgets.QGraphicsRectItem):
    """The crosshair's value in a box on an axis: its time on the time axis, centred under the
    vertical line, or its price on the price axis, centred on the horizontal line."""

    PAD = 4.0

    def __init__(self) -> None:
        super().__init__()
        self.setBrush(pg.mkBrush(ChartColors.crosshair_label))
        self.setPen(pg.mkPen(ChartColors.crosshair))
        self.setZValue(1000)
        self.text = QtWidgets.QGraphicsSimpleTextItem(self)
        self.text.setBrush(pg.mkBrush(ChartColors.foreground))
        self.hide()

    def place_x(self, text: str, x: float, axis: QtCore.QRectF) -> None:
        """Show ``text`` centred on scene ``x`` over a horizontal axis (kept inside it)."""
        w, h = self._size(text, axis.height())
        left = min(max(x - w / 2, axis.left()), axis.right() - w)
        self._show_at(left, axis.top(), w, h)

    def place_y(self, text: str, y: float, axis: QtCore.QRectF) -> None:
        """Show ``text`` centred on scene ``y`` over a vertical axis (kept inside it)."""
        w, h = self._size(text, None)
        top = min(max(y - h / 2, axis.top()), axis.bottom() - h)
        self._show_at(axis.left(), top, max(w, axis.width()), h)

    def _size(self, text: str, max_h: float | None) -> tuple[float, float]:
        self.text.setText(text)
        box = self.text.boundingRect()
        h = box.height() + 2
        return box.width() + 2 * self.PAD, h if max_h is None else min(max_h, h)

    def _show_at(self, left: float, top: float, w: float, h: float) -> None:
        self.setRect(0, 0, w, h)
        self.setPos(left, top)
        self.text.setPos(self.PAD, (h - self.text.boundingRect().height()) / 2)
        self.show()


class ChartSeries(Protocol):
    """What the readout shows: the panel's bars and which series they are."""

    store: BarStore
    display_tz: tzinfo
    symbol: str
    timeframe: Timeframe


class Crosshair:
    """Crosshair lines over ``plots`` (the first is the price pane) and the readout label."""

    def __init__(
        self, series: ChartSeries, plot_widget: pg.GraphicsLayoutWidget, plots: Sequence[pg.PlotItem]
    ) -> None:
        self._series = series
        self.tz: tzinfo | None = series.display_tz
        self.zone = ""  # the zone's name in the readout; empty: the zone's own abbreviation
        self._plots = list(plots)
        self._price_plot = self._plots[0]
        self.hover_index: int | None = None
        # Elided with "…" where the chart is narrow (a 1366-px screen), the whole line in its tooltip.
        # Not selectable: a selectable label keeps a text document that is laid out again on every
        # tick of the live bar, and a selection would not survive the next tick anyway.
        self.label = MessageLabel(elide=True)
        self.label.setObjectName("chartReadout")
        self.label.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))

        cross_pen = pg.mkPen(ChartColors.crosshair, style=QtCore.Qt.PenStyle.DashLine)
        self.vlines: list[pg.InfiniteLine] = []
        for plot in self._plots:
            line = pg.InfiniteLine(angle=90, movable=False, pen=cross_pen)
            line.setZValue(30)
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            self.vlines.append(line)
        self.hline = pg.InfiniteLine(
            angle=0,
            movable=False,
            pen=cross_pen,
        )
        self.hline.setZValue(30)
        self.hline.hide()
        self._price_plot.addItem(self.hline, ignoreBounds=True)
        self.time_label = AxisTag()
        self.price_label = AxisTag()
        plot_widget.scene().addItem(self.time_label)
        plot_widget.scene().addItem(self.price_label)
        self._mouse_proxy = pg.SignalProxy(
            plot_widget.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse_moved
        )

    def _on_mouse_moved(self, args: Sequence[Any]) -> None:
        """Rate-limited (60 Hz) scene mouse position; GUI thread."""
        pos = args[0]
        for plot in self._plots:
            if plot.isVisible() and plot.sceneBoundingRect().contains(pos):
                p = plot.getViewBox().mapSceneToView(pos)
                self.set_hover(p.x(), p.y() if plot is self._price_plot else None)
                return
        self.set_hover(None, None)

    def set_hover(self, x: float | None, y: float | None) -> None:
        """Put the crosshair on the bar nearest ``x`` (and the price line at ``y``); None hides it."""
        n = len(self._series.store)
        if x is None or n == 0:
            self.hover_index = None
            for line in self.vlines:
                line.hide()
            self.hline.hide()
            self.time_label.hide()
            self.price_label.hide()
            self.refresh()
            return
        i = int(min(max(round(x), 0), n - 1))
        self.hover_index = i
        for line in self.vlines:
            line.setPos(i)
            line.show()
        if y is None:
            self.hline.hide()
            self.price_label.hide()
        else:
            self.hline.setPos(y)
            self.hline.show()
            self._place_price_label(y)
        self.refresh()

    def follows_live_bar(self) -> bool:
        """True when the readout shows the newest bar (so a tick changes it)."""
        return self.hover_index is None or self.hover_index == len(self._series.store) - 1

    def set_time_zone(self, tz: tzinfo | None, zone: str) -> None:
        """Show times in ``tz`` (None: this computer's zone), named ``zone`` (``ET``)."""
        self.tz, self.zone = tz, zone
        self.refresh()

    def refresh(self) -> None:
        s = self._series
        n = len(s.store)
        head = f"{s.symbol or '—'}  {TIMEFRAME_LABELS[s.timeframe]}"
        if n == 0:
            self.label.setText(f"{head}  no data")
            return
        i = self.hover_index if self.hover_index is not None else n - 1
        bar = s.store.bar(min(i, n - 1))
        prev_close = s.store.bar(i - 1).c if 0 < i < n else None
        when = format_time(bar.t, self.tz, s.timeframe, self.zone)
        self.label.setText(f"{head}  {when}  {format_bar(bar, prev_close)}")
        if self.hover_index is not None:
            self._place_time_label(self.hover_index, when)
            if self.hline.isVisible():  # the price range may have moved under a still mouse
                self._place_price_label(self.hline.value())

    def _place_time_label(self, i: int, when: str) -> None:
        """The hovered bar's time on the time axis (under the lowest visible pane)."""
        axis = None
        for plot in self._plots:
            bottom = plot.getAxis("bottom")
            if plot.scene() is not None and plot.isVisible() and bottom.isVisible():
                axis = bottom
        if axis is None:
            self.time_label.hide()
            return
        x = self._price_plot.getViewBox().mapViewToScene(QtCore.QPointF(i, 0)).x()
        self.time_label.place_x(when, x, axis.sceneBoundingRect())

    def _place_price_label(self, price: float) -> None:
        """The crosshair's own price on the price axis, beside the horizontal line."""
        axis = self._price_plot.getAxis("right")
        y = self._price_plot.getViewBox().mapViewToScene(QtCore.QPointF(0, price)).y()
        self.price_label.place_y(format_price(price), y, axis.sceneBoundingRect())
