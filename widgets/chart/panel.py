"""ChartPanel: candlesticks + volume + optional RSI pane, indicators, crosshair, fills and orders.

The panel never fetches data: a service adapter in ``app`` calls its public slots
(``set_history``, ``update_last_bar``, ``append_bars``, ``set_fills``, ``set_open_orders``,
``set_loading``) on the GUI thread and listens to ``symbolRequested`` / ``timeframeRequested``.
Every number shown comes from the data given to those slots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from services.domain.enums import Timeframe
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.indicators import series as ind
from widgets.chart.axis import CompactAxis, GridItem, TimeAxis, ValueAxis
from widgets.chart.candles import DOWN_COLOR, UP_COLOR, CandlestickItem, LiveBarItem, VolumeItem
from widgets.chart.store import BarStore, LiveBar

BACKGROUND: Final = "#131722"
FOREGROUND: Final = "#b2b5be"
GRID_COLOR: Final = "#232734"
AXIS_WIDTH: Final = 72

TIMEFRAME_LABELS: Final[dict[Timeframe, str]] = {
    Timeframe.MIN_1: "1m",
    Timeframe.MIN_5: "5m",
    Timeframe.MIN_15: "15m",
    Timeframe.HOUR_1: "1h",
    Timeframe.DAY_1: "1d",
}

INDICATORS: Final = ("SMA", "EMA", "VWAP", "BB", "RSI")
SMA_PERIOD: Final = 20
EMA_PERIOD: Final = 50
BB_PERIOD: Final = 20
BB_K: Final = 2.0
RSI_PERIOD: Final = 14
_COLORS: Final = {
    "SMA": "#f7c948",
    "EMA": "#42a5f5",
    "VWAP": "#ab47bc",
    "BB": "#8d9bb5",
    "RSI": "#ffb74d",
}
# Above this many visible bars the y range ignores indicator lines and uses a strided sample.
_Y_SAMPLE: Final = 20_000


def normalize_timeframe(value: str | Timeframe) -> Timeframe:
    """Accept ``Timeframe``, Alpaca spelling (``"5Min"``) or the button label (``"5m"``)."""
    if isinstance(value, Timeframe):
        return value
    text = str(value).strip()
    for tf, label in TIMEFRAME_LABELS.items():
        if text in (tf.value, label) or text.lower() == tf.value.lower():
            return tf
    raise ValueError(f"unknown timeframe {value!r}; expected one of {[t.value for t in Timeframe]}")


def to_epoch_ns(t: int | np.integer | datetime) -> int:
    """int epoch ns passes through; a datetime must be timezone-aware."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"timestamp must be timezone-aware, got naive {t!r}")
        delta = t - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(t, bool) or not isinstance(t, int | np.integer):
        raise ValueError(f"timestamp must be int epoch nanoseconds or an aware datetime, got {t!r}")
    return int(t)


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


@dataclass
class _Indicator:
    """One indicator's lines: history values (computed when history changes) + a live segment."""

    name: str
    plot: pg.PlotItem
    hist_items: list[pg.PlotDataItem] = field(default_factory=list)
    live_items: list[pg.PlotDataItem] = field(default_factory=list)
    #: history values per line: views of ``bufs`` (capacity doubles, so an append is O(new))
    values: list[np.ndarray] = field(default_factory=list)
    bufs: list[np.ndarray] = field(default_factory=list)
    state: dict[str, float] = field(default_factory=dict)
    enabled: bool = False
    #: (first, last, step, history length) of the slice last handed to the line items
    shown: tuple[int, int, int, int] | None = None


class ChartPanel(QtWidgets.QWidget):
    """Price chart panel (objectName ``chartPanel``).

    Signals:
        symbolRequested(str): the user entered a symbol (normalised spelling).
        timeframeRequested(str): the user picked a timeframe (Alpaca spelling, e.g. ``"5Min"``).

    All slots run on the GUI thread.
    """

    symbolRequested = QtCore.Signal(str)
    timeframeRequested = QtCore.Signal(str)

    def __init__(
        self,
        parent: QtWidgets.QWidget | None = None,
        *,
        display_tz: tzinfo = UTC,
        visible_bars: int = 150,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("chartPanel")
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.store = BarStore()
        self.display_tz = display_tz
        self.default_visible_bars = max(10, int(visible_bars))
        self.symbol = ""
        self.timeframe: Timeframe = Timeframe.MIN_1
        self._follow = True
        self._hover_index: int | None = None
        self._fills: list[tuple[int, float, str]] = []
        self._order_lines: dict[str, pg.InfiniteLine] = {}
        self._last_y: tuple[float, float] | None = None
        self._last_vol_y: float | None = None
        self._x_buf = np.arange(1024, dtype=np.float64)  # shared x values for indicator lines

        self._build_toolbar()
        self._build_plots()
        self._build_indicators()

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self._toolbar)
        layout.addLayout(self._status_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot_widget, 1)
        self._refresh_readout()

    # ------------------------------------------------------------------ construction

    def _build_toolbar(self) -> None:
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 0)
        bar.setSpacing(4)
        self.symbol_edit = QtWidgets.QLineEdit()
        self.symbol_edit.setObjectName("chartSymbolEdit")
        self.symbol_edit.setPlaceholderText("Symbol")
        self.symbol_edit.setMaximumWidth(110)
        self.symbol_edit.setToolTip("Type a symbol and press Enter")
        self.symbol_edit.returnPressed.connect(self._on_symbol_entered)
        bar.addWidget(self.symbol_edit)

        self.timeframe_group = QtWidgets.QButtonGroup(self)
        self.timeframe_group.setExclusive(True)
        self.timeframe_buttons: dict[Timeframe, QtWidgets.QToolButton] = {}
        for tf, label in TIMEFRAME_LABELS.items():
            btn = QtWidgets.QToolButton()
            btn.setText(label)
            btn.setCheckable(True)
            btn.setObjectName(f"chartTimeframe_{label}")
            btn.setToolTip(f"{label} bars")
            btn.clicked.connect(lambda _=False, tf=tf: self._on_timeframe_clicked(tf))
            self.timeframe_group.addButton(btn)
            self.timeframe_buttons[tf] = btn
            bar.addWidget(btn)
        self.timeframe_buttons[self.timeframe].setChecked(True)

        sep = QtWidgets.QFrame()
        sep.setFrameShape(QtWidgets.QFrame.Shape.VLine)
        bar.addWidget(sep)
        self.indicator_buttons: dict[str, QtWidgets.QToolButton] = {}
        tips = {
            "SMA": f"Simple moving average ({SMA_PERIOD})",
            "EMA": f"Exponential moving average ({EMA_PERIOD})",
            "VWAP": "Session VWAP (resets each day in the display time zone)",
            "BB": f"Bollinger bands ({BB_PERIOD}, {BB_K:g}σ)",
            "RSI": f"Relative strength index ({RSI_PERIOD}, Wilder)",
        }
        for name in INDICATORS:
            btn = QtWidgets.QToolButton()
            btn.setText(name)
            btn.setCheckable(True)
            btn.setObjectName(f"chartIndicator_{name}")
            btn.setToolTip(tips[name])
            btn.toggled.connect(lambda on, name=name: self.set_indicator(name, on))
            self.indicator_buttons[name] = btn
            bar.addWidget(btn)
        bar.addStretch(1)
        self._toolbar = bar

        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(6, 0, 4, 0)
        self.readout = QtWidgets.QLabel()
        self.readout.setObjectName("chartReadout")
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        self.readout.setFont(font)
        row.addWidget(self.readout, 1)
        self.loading_label = QtWidgets.QLabel()
        self.loading_label.setObjectName("chartLoadingLabel")
        self.loading_label.hide()
        row.addWidget(self.loading_label)
        self._status_row = row

        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("chartLoadingProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(3)
        self.progress.hide()

    def _style_plot(self, plot: pg.PlotItem) -> None:
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.showAxis("right")
        plot.hideAxis("left")
        for name in ("right", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen("#363a45"))
            axis.setTextPen(pg.mkPen(FOREGROUND))
        for name in ("left", "right", "bottom", "top"):
            # Labels are formatted by the axes themselves (compact volume, plain prices). With the
            # SI prefix on, every range change re-set each axis label's HTML, hidden axes too.
            plot.getAxis(name).enableAutoSIPrefix(False)
        # Our own grid item: pyqtgraph's axis grid costs ~3 ms per axis per frame.
        plot.addItem(GridItem(plot.getAxis("bottom"), plot.getAxis("right"), GRID_COLOR), ignoreBounds=True)
        plot.getAxis("right").setWidth(AXIS_WIDTH)
        vb = plot.getViewBox()
        vb.disableAutoRange()
        vb.setMouseEnabled(x=True, y=False)

    def _build_plots(self) -> None:
        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setObjectName("chartPlot")
        self.plot_widget.setBackground(BACKGROUND)
        self.plot_widget.ci.layout.setSpacing(0)
        self.plot_widget.ci.setContentsMargins(0, 0, 0, 0)
        self.plot_widget.installEventFilter(self)

        self.price_axis = TimeAxis(self.store, self.display_tz)
        self.volume_axis = TimeAxis(self.store, self.display_tz, share_ticks_with=self.price_axis)
        self.rsi_axis = TimeAxis(self.store, self.display_tz, share_ticks_with=self.price_axis)
        self.price_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=0, col=0, axisItems={"bottom": self.price_axis, "right": ValueAxis("right")}
        )
        self.volume_plot: pg.PlotItem = self.plot_widget.addPlot(
            row=1, col=0, axisItems={"bottom": self.volume_axis, "right": CompactAxis("right")}
        )
        self.rsi_plot = pg.PlotItem(axisItems={"bottom": self.rsi_axis, "right": ValueAxis("right")})
        for plot in (self.price_plot, self.volume_plot, self.rsi_plot):
            self._style_plot(plot)
        self.price_plot.hideAxis("bottom")
        self.volume_plot.setXLink(self.price_plot)
        self.rsi_plot.setXLink(self.price_plot)
        self.rsi_plot.getAxis("right").setTicks([[(30.0, "30"), (50.0, "50"), (70.0, "70")]])
        self.plot_widget.ci.layout.setRowStretchFactor(0, 5)
        self.plot_widget.ci.layout.setRowStretchFactor(1, 1)
        self.volume_plot.setMaximumHeight(140)
        self.rsi_plot.setMaximumHeight(160)
        self.rsi_plot.setYRange(0, 100, padding=0.02)
        for level in (30.0, 70.0):
            self.rsi_plot.addItem(
                pg.InfiniteLine(
                    pos=level, angle=0, pen=pg.mkPen("#5d606b", style=QtCore.Qt.PenStyle.DashLine)
                ),
                ignoreBounds=True,
            )

        self.candles = CandlestickItem(self.store)
        self.live_candle = LiveBarItem(self.store)
        self.volume = VolumeItem(self.store)
        self.live_volume = LiveBarItem(self.store, volume=True)
        self.price_plot.addItem(self.candles)
        self.price_plot.addItem(self.live_candle)
        self.volume_plot.addItem(self.volume)
        self.volume_plot.addItem(self.live_volume)

        self.fills_item = pg.ScatterPlotItem(size=12, pxMode=True)
        self.fills_item.setZValue(20)
        self.price_plot.addItem(self.fills_item, ignoreBounds=True)

        cross_pen = pg.mkPen("#787b86", style=QtCore.Qt.PenStyle.DashLine)
        self.vlines = []
        for plot in (self.price_plot, self.volume_plot, self.rsi_plot):
            line = pg.InfiniteLine(angle=90, movable=False, pen=cross_pen)
            line.setZValue(30)
            line.hide()
            plot.addItem(line, ignoreBounds=True)
            self.vlines.append(line)
        self.hline = pg.InfiniteLine(
            angle=0,
            movable=False,
            pen=cross_pen,
            label="{value:.2f}",
            labelOpts={"position": 0.98, "color": FOREGROUND, "fill": "#2a2e39"},
        )
        self.hline.setZValue(30)
        self.hline.hide()
        self.price_plot.addItem(self.hline, ignoreBounds=True)

        self.price_plot.getViewBox().sigXRangeChanged.connect(self._on_x_range_changed)
        self._mouse_proxy = pg.SignalProxy(
            self.plot_widget.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse_moved
        )

    def _build_indicators(self) -> None:
        self._indicators: dict[str, _Indicator] = {}
        for name in INDICATORS:
            plot = self.rsi_plot if name == "RSI" else self.price_plot
            self._indicators[name] = _Indicator(name, plot)

    # ------------------------------------------------------------------ public slots

    @QtCore.Slot(str, str, object)
    def set_history(
        self, symbol: str, timeframe: str | Timeframe, arrays: Mapping[str, npt.ArrayLike]
    ) -> None:
        """Replace the chart's bars. ``arrays``: t (int64 epoch ns UTC), o/h/l/c/v (float64).

        The newest row is treated as the live bar. Raises ValueError on malformed input, in which
        case the chart keeps what it showed.
        """
        tf = normalize_timeframe(timeframe)
        sym = normalize_symbol(symbol)
        self.store.load(arrays)
        self.symbol, self.timeframe = sym, tf
        self.symbol_edit.setText(sym)
        self.timeframe_buttons[tf].setChecked(True)
        self._last_y = None
        self._last_vol_y = None
        self._history_changed()
        self.set_loading(None)
        self.go_latest()

    @QtCore.Slot(object, float, float, float, float, float)
    def update_last_bar(self, t: int | datetime, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        """One tick's worth of change to the live bar. Same ``t``: replace it; newer ``t``: the live
        bar becomes history and a new live bar starts. Raises ValueError for older ``t`` or an
        inconsistent bar (nothing changes then)."""
        started = self.store.update_last(to_epoch_ns(t), o, h, l, c, v)
        if started:
            self._history_changed(appended=1)
        else:
            self._live_changed()

    def append_bars(self, arrays: Mapping[str, npt.ArrayLike]) -> None:
        """Append bars (same columns as ``set_history``); the newest becomes the live bar."""
        before = len(self.store)
        live_before = self.store.live
        self.store.append(arrays)
        grown = len(self.store) - before
        if grown == 0 and live_before is not None:
            self._live_changed()
            return
        self._history_changed(appended=grown)

    def set_fills(self, fills: Iterable[tuple[int | datetime, float | Decimal, str]]) -> None:
        """Show fill markers: ``(time, price, side)``, side ``"buy"`` (▲ green) or ``"sell"`` (▼ red).

        A fill goes on the bar whose interval contains its time; fills before the first bar are
        not drawn. Raises ValueError for a bad side, price or time (the previous markers stay).
        """
        parsed: list[tuple[int, float, str]] = []
        for item in fills:
            t, price, side = item
            s = str(side).lower()
            if s not in ("buy", "sell"):
                raise ValueError(f"fill side must be 'buy' or 'sell', got {side!r}")
            p = float(price)
            if not math.isfinite(p) or p <= 0:
                raise ValueError(f"fill price must be a positive number, got {price!r}")
            parsed.append((to_epoch_ns(t), p, s))
        self._fills = parsed
        self._place_fills()

    def set_open_orders(self, orders: Iterable[tuple[str, str, float | Decimal]]) -> None:
        """Show one horizontal price line per open order ``(order_id, side, price)``."""
        wanted: dict[str, tuple[str, float]] = {}
        for order_id, side, price in orders:
            s = str(side).lower()
            if s not in ("buy", "sell"):
                raise ValueError(f"order side must be 'buy' or 'sell', got {side!r}")
            p = float(price)
            if not math.isfinite(p) or p <= 0:
                raise ValueError(f"order price must be a positive number, got {price!r}")
            wanted[str(order_id)] = (s, p)
        for oid in list(self._order_lines):
            if oid not in wanted:
                self.price_plot.removeItem(self._order_lines.pop(oid))
        for oid, (s, p) in wanted.items():
            color = UP_COLOR if s == "buy" else DOWN_COLOR
            text = f"{s.upper()} {format_price(p)}"
            line = self._order_lines.get(oid)
            if line is None:
                line = pg.InfiniteLine(
                    pos=p,
                    angle=0,
                    movable=False,
                    pen=pg.mkPen(color, width=1, style=QtCore.Qt.PenStyle.DashDotLine),
                    label=text,
                    labelOpts={
                        "position": 0.05,
                        "color": color,
                        "fill": "#1e222d",
                        "anchors": [(0, 1), (0, 1)],
                    },
                )
                line.setZValue(15)
                self.price_plot.addItem(line, ignoreBounds=True)
                self._order_lines[oid] = line
            else:
                line.setPos(p)
                line.setPen(pg.mkPen(color, width=1, style=QtCore.Qt.PenStyle.DashDotLine))
                if line.label is not None:
                    line.label.setFormat(text)
                    line.label.setColor(color)

    @QtCore.Slot(object)
    def set_loading(self, fraction: float | None) -> None:
        """Show history-loading progress (0..1), or hide it with None."""
        if fraction is None:
            self.progress.hide()
            self.loading_label.hide()
            return
        f = float(fraction)
        if not math.isfinite(f) or not 0.0 <= f <= 1.0:
            raise ValueError(f"loading fraction must be within 0..1, got {fraction!r}")
        self.progress.setValue(round(f * 1000))
        self.loading_label.setText(f"Loading history… {f:.0%}")
        self.progress.show()
        self.loading_label.show()

    def set_indicator(self, name: str, on: bool) -> None:
        """Turn an indicator (one of ``INDICATORS``) on or off."""
        if name not in self._indicators:
            raise ValueError(f"unknown indicator {name!r}; expected one of {INDICATORS}")
        state = self._indicators[name]
        btn = self.indicator_buttons[name]
        if btn.isChecked() != on:
            btn.setChecked(on)  # re-enters through toggled
            return
        if state.enabled == on:
            return
        state.enabled = on
        if name == "RSI":
            self._show_rsi_pane(on)
        if on:
            self._create_lines(state)
            self._compute_indicator(state)
            self._live_indicator(state)
        else:
            for item in state.hist_items + state.live_items:
                state.plot.removeItem(item)
            state.hist_items.clear()
            state.live_items.clear()
            state.values.clear()
            state.bufs.clear()
            state.shown = None
        self._fit_y(force=True)

    def enabled_indicators(self) -> list[str]:
        return [n for n, s in self._indicators.items() if s.enabled]

    # ------------------------------------------------------------------ view control

    def visible_index_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.price_plot.getViewBox().viewRange()
        return float(x0), float(x1)

    def go_latest(self) -> None:
        """Show the newest bars (Home) and follow new ones."""
        n = len(self.store)
        width = self.default_visible_bars
        right = n - 1 + max(2.0, width * 0.08)
        self._follow = True
        self._set_x(right - width, right)

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (positive = towards newer bars)."""
        x0, x1 = self.visible_index_range()
        d = max(1.0, (x1 - x0) * abs(fraction)) * (1 if fraction > 0 else -1)
        self._set_x(x0 + d, x1 + d)
        self._follow = self._at_latest()

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (> 1 shows fewer bars), anchored at the right edge when following."""
        x0, x1 = self.visible_index_range()
        width = max(10.0, (x1 - x0) / factor)
        n = len(self.store)
        width = min(width, max(n * 1.1 + 20, 50.0))
        if self._follow:
            self._set_x(x1 - width, x1)
        else:
            mid = (x0 + x1) / 2
            self._set_x(mid - width / 2, mid + width / 2)

    def _at_latest(self) -> bool:
        _, x1 = self.visible_index_range()
        return x1 >= len(self.store) - 1

    def _set_x(self, x0: float, x1: float) -> None:
        self.price_plot.getViewBox().setXRange(x0, x1, padding=0)

    def _update_limits(self) -> None:
        n = max(1, len(self.store))
        self.price_plot.getViewBox().setLimits(
            xMin=-n * 0.5 - 50, xMax=n * 1.5 + 50, minXRange=10, maxXRange=n * 1.2 + 100
        )

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if obj is self.plot_widget and event.type() == QtCore.QEvent.Type.KeyPress:
            assert isinstance(event, QtGui.QKeyEvent)
            if self._handle_key(event):
                return True
        if obj is self.plot_widget and event.type() == QtCore.QEvent.Type.Leave:
            self._set_hover(None, None)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event: QtGui.QKeyEvent) -> bool:
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

    # ------------------------------------------------------------------ data-change plumbing

    def _history_changed(self, appended: int = 0) -> None:
        """History grew or was replaced: refresh bounds, indicators, fills, limits; keep following."""
        self.candles.data_changed()
        self.volume.data_changed()
        self.live_candle.data_changed()
        self.live_volume.data_changed()
        shifting = bool(appended) and self._follow
        for state in self._indicators.values():
            if state.enabled:
                # while following, the x range moves next and hands the lines their slice then
                self._compute_indicator(state, appended, show=not shifting)
                self._live_indicator(state)
        self._place_fills()
        self._update_limits()
        if shifting:
            x0, x1 = self.visible_index_range()
            self._set_x(x0 + appended, x1 + appended)  # triggers _fit_y through sigXRangeChanged
            for state in self._indicators.values():
                if state.enabled:  # a no-op unless the range did not move (clamped by the limits)
                    self._show_indicator_slice(state)
        else:
            self._fit_y()
        self._refresh_readout()

    def _live_changed(self) -> None:
        self.live_candle.data_changed()
        self.live_volume.data_changed()
        for state in self._indicators.values():
            if state.enabled:
                self._live_indicator(state)
        self._fit_y()
        if self._hover_index is None or self._hover_index == len(self.store) - 1:
            self._refresh_readout()

    def _on_x_range_changed(self, *_: Any) -> None:
        for state in self._indicators.values():
            if state.enabled and state.values:
                self._show_indicator_slice(state)
        self._fit_y()

    def _fit_y(self, force: bool = False) -> None:
        """Fit the price and volume panes to the bars (and shown indicator lines) in view."""
        x0, x1 = self.visible_index_range()
        i0, i1 = max(0, math.floor(x0)), math.ceil(x1) + 1
        stats = self.store.range_stats(i0, i1)
        if stats is None:
            return
        lo, hi, vmax = stats
        n_vis = min(i1, len(self.store)) - i0
        if n_vis <= _Y_SAMPLE:
            for state in self._indicators.values():
                if not state.enabled or state.name == "RSI":
                    continue
                for arr in state.values:
                    seg = arr[i0:i1]
                    if seg.size and not np.isnan(seg).all():
                        lo = min(lo, float(np.nanmin(seg)))
                        hi = max(hi, float(np.nanmax(seg)))
                for live_item in state.live_items:
                    _, ys = live_item.getData()
                    if ys is not None and len(ys) and np.isfinite(ys[-1]):
                        lo, hi = min(lo, float(ys[-1])), max(hi, float(ys[-1]))
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

    # ------------------------------------------------------------------ indicators

    def _create_lines(self, state: _Indicator) -> None:
        color = _COLORS[state.name]
        count = 3 if state.name == "BB" else 1
        for i in range(count):
            style = (
                QtCore.Qt.PenStyle.DashLine if state.name == "BB" and i > 0 else QtCore.Qt.PenStyle.SolidLine
            )
            pen = pg.mkPen(color, width=1.2, style=style)
            hist = pg.PlotDataItem(pen=pen, connect="finite")
            live = pg.PlotDataItem(pen=pen)
            state.plot.addItem(hist, ignoreBounds=True)
            state.plot.addItem(live, ignoreBounds=True)
            # After adding: passing these to the constructor/plot() breaks in pyqtgraph 0.14.
            hist.setClipToView(True)
            hist.setDownsampling(auto=True, method="peak")
            state.hist_items.append(hist)
            state.live_items.append(live)

    def _compute_indicator(self, state: _Indicator, appended: int = 0, *, show: bool = True) -> None:
        """Refresh an indicator's history values: only the ``appended`` newest when the previous
        values are still valid (O(appended + window)), else a full O(N) recompute. ``show``: hand
        the lines their visible slice now (else the caller does)."""
        s = self.store
        n = s.n_history
        m_old = n - appended
        tail: list[np.ndarray] | None = None
        if 0 < appended <= 10_000 and state.values and state.values[0].shape[0] == m_old and m_old > 0:
            tail = self._indicator_tail(state, m_old, n)
        if tail is not None and all(b.shape[0] >= n for b in state.bufs):
            for buf, new in zip(state.bufs, tail, strict=True):
                buf[m_old:n] = new
        elif tail is not None:
            cap = max(n, 2 * state.bufs[0].shape[0])
            grown = []
            for buf, new in zip(state.bufs, tail, strict=True):
                b = np.empty(cap)
                b[:m_old] = buf[:m_old]
                b[m_old:n] = new
                grown.append(b)
            state.bufs = grown
        else:
            full = self._indicator_full(state)
            cap = max(1024, 1 << max(0, n - 1).bit_length())
            state.bufs = []
            for arr in full:
                b = np.empty(cap)
                b[:n] = arr
                state.bufs.append(b)
        state.values = [b[:n] for b in state.bufs]
        if self._x_buf.shape[0] < n:
            self._x_buf = np.arange(max(n, 2 * self._x_buf.shape[0]), dtype=np.float64)
        state.shown = None
        if show:
            self._show_indicator_slice(state)

    def _show_indicator_slice(self, state: _Indicator) -> None:
        """Hand the line items only the history in view (plus a margin), decimated to about two
        points per pixel column: pyqtgraph re-checks and re-clips whatever it is given, so giving
        it 1M points per append cost far more than the drawing."""
        n = state.values[0].shape[0] if state.values else 0
        x0, x1 = self.visible_index_range()
        width = max(1.0, x1 - x0)
        i0 = max(0, math.floor(x0 - width * 0.25))
        i1 = min(n, math.ceil(x1 + width * 0.25) + 1)
        pixels = max(100.0, float(state.plot.getViewBox().width()))
        step = max(1, int((i1 - i0) // (2 * pixels)))
        if step > 1:
            step = 1 << (step.bit_length() - 1)  # powers of two: a stable sample grid while panning
            i0 -= i0 % step
        key = (i0, i1, step, n)
        if key == state.shown:
            return
        state.shown = key
        x = self._x_buf[i0:i1:step]
        for item, y in zip(state.hist_items, state.values, strict=True):
            item.setData(x, y[i0:i1:step])

    def _indicator_full(self, state: _Indicator) -> list[np.ndarray]:
        s = self.store
        close = s.c
        name = state.name
        if name == "SMA":
            return [ind.sma(close, SMA_PERIOD)]
        if name == "EMA":
            return [ind.ema(close, EMA_PERIOD)]
        if name == "BB":
            return list(ind.bollinger(close, BB_PERIOD, BB_K))
        if name == "RSI":
            g, lo = ind.rsi_state(close, RSI_PERIOD)
            state.state = {"gain": g, "loss": lo}
            return [ind.rsi(close, RSI_PERIOD)]
        # VWAP
        tp = ind.typical_price(s.h, s.l, close)
        sessions = ind.session_ids(s.t, self.display_tz)
        _, carry = ind.vwap_session_extend(None, tp, s.v, sessions)
        state.state = {} if carry is None else {"session": float(carry[0]), "pv": carry[1], "cv": carry[2]}
        return [ind.vwap_session(tp, s.v, sessions)]

    def _indicator_tail(self, state: _Indicator, m_old: int, n: int) -> list[np.ndarray] | None:
        """Values for history bars [m_old, n), or None when a full recompute is needed."""
        s = self.store
        close = s.c
        name = state.name
        k = n - m_old
        if name in ("SMA", "BB"):
            period = SMA_PERIOD if name == "SMA" else BB_PERIOD
            window = close[max(0, m_old - period + 1) : n]
            if name == "SMA":
                return [ind.sma(window, period)[-k:]]
            return [a[-k:] for a in ind.bollinger(window, period, BB_K)]
        if name == "EMA":
            prev = float(state.values[0][m_old - 1])
            return None if math.isnan(prev) else [ind.ema_extend(prev, close[m_old:n], EMA_PERIOD)]
        if name == "RSI":
            st = state.state
            if not st or math.isnan(st["gain"]):
                return None
            vals, (g, lo) = ind.rsi_extend((st["gain"], st["loss"]), close[m_old - 1 : n], RSI_PERIOD)
            state.state = {"gain": g, "loss": lo}
            return [vals]
        # VWAP
        st = state.state
        carry = (int(st["session"]), st["pv"], st["cv"]) if st else None
        tp = ind.typical_price(s.h[m_old:n], s.l[m_old:n], close[m_old:n])
        sessions = ind.session_ids(s.t[m_old:n], self.display_tz)
        vals, new_carry = ind.vwap_session_extend(carry, tp, s.v[m_old:n], sessions)
        state.state = (
            {}
            if new_carry is None
            else {"session": float(new_carry[0]), "pv": new_carry[1], "cv": new_carry[2]}
        )
        return [vals]

    def _live_indicator(self, state: _Indicator) -> None:
        """Value(s) for the live bar, from the history state in O(window); drawn as a short segment."""
        s = self.store
        live = s.live
        n = s.n_history
        if live is None or n == 0 or not state.values:
            for item in state.live_items:
                item.setData([], [])
            return
        close = s.c
        name = state.name
        if name == "SMA":
            tail = np.append(close[-(SMA_PERIOD - 1) :] if SMA_PERIOD > 1 else [], live.c)
            new = [ind.sma_last(tail, SMA_PERIOD)]
        elif name == "EMA":
            new = [ind.ema_next(float(state.values[0][-1]), live.c, EMA_PERIOD)]
        elif name == "BB":
            tail = np.append(close[-(BB_PERIOD - 1) :], live.c)
            new = list(ind.bollinger_last(tail, BB_PERIOD, BB_K))
        elif name == "RSI":
            st = state.state
            new = [ind.rsi_next((st["gain"], st["loss"]), float(close[-1]), live.c, RSI_PERIOD)]
        else:  # VWAP
            tp = (live.h + live.l + live.c) / 3.0
            session = float(ind.session_ids(np.array([live.t]), self.display_tz)[0])
            st = state.state
            if st and st.get("session") == session:
                pv, cv = st["pv"] + tp * live.v, st["cv"] + live.v
            else:
                pv, cv = tp * live.v, live.v
            new = [pv / cv if cv > 0 else math.nan]
        x = np.array([n - 1, n], dtype=np.float64)
        for item, hist, val in zip(state.live_items, state.values, new, strict=True):
            item.setData(x, np.array([hist[-1], val]))

    def indicator_values(self, name: str) -> list[np.ndarray]:
        """History values of an enabled indicator followed by its live value (for tests/readouts)."""
        state = self._indicators[name]
        out = []
        for hist, live in zip(state.values, state.live_items, strict=True):
            _, ys = live.getData()
            tail = [ys[-1]] if ys is not None and len(ys) else []
            out.append(np.append(hist, tail))
        return out

    def _show_rsi_pane(self, on: bool) -> None:
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

    # ------------------------------------------------------------------ fills

    def _place_fills(self) -> None:
        if not self._fills or len(self.store) == 0:
            self.fills_item.setData([])
            return
        times = np.array([f[0] for f in self._fills], dtype=np.int64)
        idx = self.store.index_at_time(times)
        keep = idx >= 0
        spots = []
        for (_, price, side), i, k in zip(self._fills, idx.tolist(), keep.tolist(), strict=True):
            if not k:
                continue
            buy = side == "buy"
            spots.append(
                {
                    "pos": (float(i), price),
                    "symbol": "t1" if buy else "t",
                    "brush": pg.mkBrush(UP_COLOR if buy else DOWN_COLOR),
                    "pen": pg.mkPen("#0b0e14", width=1),
                    "data": side,
                }
            )
        self.fills_item.setData(spots)

    def fill_positions(self) -> list[tuple[float, float, str]]:
        """(x index, price, side) of every drawn fill marker."""
        pts = self.fills_item.data
        return [(float(p["x"]), float(p["y"]), str(p["data"])) for p in pts]

    # ------------------------------------------------------------------ crosshair / readout

    def _on_mouse_moved(self, args: Sequence[Any]) -> None:
        """Rate-limited (60 Hz) scene mouse position; GUI thread."""
        pos = args[0]
        for plot in (self.price_plot, self.volume_plot, self.rsi_plot):
            if plot.isVisible() and plot.sceneBoundingRect().contains(pos):
                vb = plot.getViewBox()
                p = vb.mapSceneToView(pos)
                self._set_hover(p.x(), p.y() if plot is self.price_plot else None)
                return
        self._set_hover(None, None)

    def _set_hover(self, x: float | None, y: float | None) -> None:
        n = len(self.store)
        if x is None or n == 0:
            self._hover_index = None
            for line in self.vlines:
                line.hide()
            self.hline.hide()
            self._refresh_readout()
            return
        i = int(min(max(round(x), 0), n - 1))
        self._hover_index = i
        for line in self.vlines:
            line.setPos(i)
            line.show()
        if y is None:
            self.hline.hide()
        else:
            self.hline.setPos(y)
            self.hline.show()
        self._refresh_readout()

    def _refresh_readout(self) -> None:
        n = len(self.store)
        head = f"{self.symbol or '—'}  {TIMEFRAME_LABELS[self.timeframe]}"
        if n == 0:
            self.readout.setText(f"{head}  no data")
            return
        i = self._hover_index if self._hover_index is not None else n - 1
        bar = self.store.bar(i)
        prev_close = self.store.bar(i - 1).c if i > 0 else None
        self.readout.setText(f"{head}  {self._format_time(bar.t)}  {self._format_bar(bar, prev_close)}")

    def _format_time(self, t_ns: int) -> str:
        dt = datetime.fromtimestamp(t_ns / 1e9, tz=UTC).astimezone(self.display_tz)
        text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"  # not strftime: see axis.tickStrings
        if self.timeframe is not Timeframe.DAY_1:
            text += f" {dt.hour:02d}:{dt.minute:02d}"
        return f"{text} {dt.tzname() or ''}".rstrip()

    @staticmethod
    def _format_bar(bar: LiveBar, prev_close: float | None) -> str:
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

    def readout_text(self) -> str:
        return self.readout.text()

    # ------------------------------------------------------------------ user input

    def _on_symbol_entered(self) -> None:
        text = self.symbol_edit.text()
        try:
            sym = normalize_symbol(text)
        except InvalidSymbolError as exc:
            self.symbol_edit.setToolTip(str(exc))
            self.symbol_edit.setStyleSheet("border: 1px solid #ef5350;")
            return
        self.symbol_edit.setToolTip("Type a symbol and press Enter")
        self.symbol_edit.setStyleSheet("")
        self.symbol_edit.setText(sym)
        self.symbolRequested.emit(sym)

    def _on_timeframe_clicked(self, tf: Timeframe) -> None:
        self.timeframeRequested.emit(tf.value)
