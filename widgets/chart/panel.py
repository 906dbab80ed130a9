"""ChartPanel: candlesticks + volume + optional RSI pane, indicators, crosshair, fills and orders.

The panel never fetches data: a service adapter in ``app`` calls its public slots
(``set_history``, ``update_last_bar``, ``append_bars``, ``set_fills``, ``set_open_orders``,
``set_loading``) on the GUI thread and listens to ``symbolRequested`` / ``timeframeRequested``.
Every number shown comes from the data given to those slots.

The panel composes the parts and routes data changes between them:
``toolbar`` (symbol, timeframe and indicator buttons, loading status), ``viewport`` (the panes,
what is in view, the y fit), ``lines`` (each ``Indicator`` from ``indicators`` drawn on a pane),
``overlays`` (fills and open orders), ``orders`` (working-order lines that follow the engine, drag
to replace, cancel from the line, the right-click menu that stages an order) and ``readout``
(crosshair and the bar readout).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from services.domain.enums import Timeframe
from services.domain.symbols import normalize_symbol
from widgets.chart.indicators import INDICATORS, Pane, create_indicators, legend_text, make_indicator
from widgets.chart.lines import IndicatorLines, SharedX
from widgets.chart.orders import ChartOrders
from widgets.chart.overlays import Overlays
from widgets.chart.readout import Crosshair
from widgets.chart.store import BarStore, to_epoch_ns
from widgets.chart.toolbar import ChartToolbar, LoadingStatus, SymbolCheck, normalize_timeframe
from widgets.chart.viewport import Viewport
from widgets.pinned_line import PinnedLine


class ChartPanel(QtWidgets.QWidget):
    """Price chart panel (objectName ``chartPanel``).

    Signals:
        symbolRequested(str): the user entered a symbol (normalised spelling) that the broker
            lists (when a check is set with :meth:`set_symbol_check`).
        timeframeRequested(str): the user picked a timeframe (Alpaca spelling, e.g. ``"5Min"``).
        indicatorsChanged(dict): an indicator was turned on or off or given new parameters; the
            argument is :meth:`indicator_state` (what a restart restores).

    All slots run on the GUI thread.
    """

    symbolRequested = QtCore.Signal(str)
    timeframeRequested = QtCore.Signal(str)
    indicatorsChanged = QtCore.Signal(object)
    #: symbol, side, order type, Decimal price: stage this order in the ticket (see ``orders``)
    stageOrderRequested = QtCore.Signal(str, str, str, object)

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
        self.symbol = ""
        self.timeframe: Timeframe = Timeframe.MIN_1
        indicators = create_indicators(display_tz)

        self.toolbar = ChartToolbar(
            self,
            indicators,
            on_symbol=self.symbolRequested.emit,
            on_timeframe=lambda tf: self.timeframeRequested.emit(tf.value),
            on_indicator=self.set_indicator,
            on_parameters=self.set_indicator_parameters,
        )
        self.toolbar.timeframe_buttons[self.timeframe].setChecked(True)
        self.loading = LoadingStatus()
        self.viewport = Viewport(self.store, display_tz, max(10, int(visible_bars)))
        self.overlays = Overlays(self.viewport.price_plot, self.store)
        self.orders = ChartOrders(self.viewport.price_plot, self.overlays, self)
        self.viewport.pinned_prices = self.orders.prices  # working orders stay in view
        self.orders.linesChanged.connect(lambda: self.viewport.fit_y(self._indicators.values()))
        self.orders.stageRequested.connect(self.stageOrderRequested)
        self.crosshair = Crosshair(self, self.viewport.plot_widget, self.viewport.plots())
        x = SharedX()
        self._indicators: dict[str, IndicatorLines] = {
            name: IndicatorLines(
                ind,
                self.viewport.rsi_plot if ind.pane is Pane.OSCILLATOR else self.viewport.price_plot,
                x,
            )
            for name, ind in indicators.items()
        }
        self._expose_parts()
        self.plot_widget.installEventFilter(self)
        self.price_plot.getViewBox().sigXRangeChanged.connect(self._on_x_range_changed)

        status_row = QtWidgets.QHBoxLayout()
        status_row.setContentsMargins(6, 0, 4, 0)
        status_row.addWidget(PinnedLine(self.readout), 3)  # its text changes never re-lay the window out
        status_row.addWidget(self.orders.status_label, 2)
        status_row.addWidget(self.loading_label)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.toolbar.layout)
        layout.addLayout(status_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot_widget, 1)
        self.crosshair.refresh()

    def _expose_parts(self) -> None:
        """The widgets and items callers and tests reach, under the names the panel always had."""
        tb, vp = self.toolbar, self.viewport
        self.symbol_edit = tb.symbol_edit
        self.timeframe_buttons = tb.timeframe_buttons
        self.indicator_buttons = tb.indicator_buttons
        self.loading_label, self.progress = self.loading.label, self.loading.progress
        self.plot_widget = vp.plot_widget
        self.price_plot, self.volume_plot, self.rsi_plot = vp.plots()
        self.price_axis, self.volume_axis = vp.price_axis, vp.volume_axis
        self.candles, self.live_candle = vp.candles, vp.live_candle
        self.volume, self.live_volume = vp.volume, vp.live_volume
        self.fills_item = self.overlays.fills_item
        self.readout = self.crosshair.label
        self.vlines, self.hline = self.crosshair.vlines, self.crosshair.hline

    # ------------------------------------------------------------------ public slots

    @QtCore.Slot(str, str, object)
    def set_history(
        self, symbol: str, timeframe: str | Timeframe, arrays: Mapping[str, npt.ArrayLike]
    ) -> None:
        """Replace the chart's bars. ``arrays``: t (int64 epoch ns UTC), o/h/l/c/v (float64).

        The newest row is treated as the live bar. Raises ValueError on malformed input, in which
        case the chart keeps what it showed. Enabled indicators stay on for the new bars.
        """
        tf = normalize_timeframe(timeframe)
        sym = normalize_symbol(symbol)
        self.store.load(arrays)
        self.symbol, self.timeframe = sym, tf
        self.toolbar.show_series(sym, tf)
        self.orders.set_symbol(sym)
        self.viewport.forget_y()
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
        self.overlays.set_fills(fills)

    def set_open_orders(self, orders: Iterable[tuple[str, str, float | Decimal]]) -> None:
        """Show one horizontal price line per open order ``(order_id, side, price)``."""
        self.overlays.set_open_orders(orders)

    @QtCore.Slot(object)
    def set_loading(self, fraction: float | None) -> None:
        """Show history-loading progress (0..1), or hide it with None."""
        self.loading.set_fraction(fraction)

    def set_indicator(self, name: str, on: bool) -> None:
        """Turn an indicator (one of ``INDICATORS``) on or off."""
        if name not in self._indicators:
            raise ValueError(f"unknown indicator {name!r}; expected one of {INDICATORS}")
        lines = self._indicators[name]
        btn = self.indicator_buttons[name]
        if btn.isChecked() != on:
            btn.setChecked(on)  # re-enters through toggled
            return
        if lines.enabled == on:
            return
        if lines.indicator.pane is Pane.OSCILLATOR:
            self.viewport.show_oscillator_pane(on)
        if on:
            lines.enable(self.store, self.visible_index_range())
        else:
            lines.disable()
        self.viewport.fit_y(self._indicators.values(), force=True)
        self._indicators_changed()

    def set_symbol_check(self, check: SymbolCheck | None) -> None:
        """How the symbol box asks the broker whether a symbol exists (it refuses one it lacks)."""
        self.toolbar.symbol_check = check

    def set_time_zone(self, tz: tzinfo | None, zone: str) -> None:
        """Show times (readout, crosshair, time axis) in ``tz`` (None: this computer's zone), named
        ``zone`` (``ET``) in the readout; daily bars stay on their dates."""
        self.viewport.set_time_zone(tz)
        self.crosshair.set_time_zone(tz, zone)

    def set_indicator_parameters(self, name: str, params: Mapping[str, object]) -> None:
        """Give indicator ``name`` new parameters (the others keep theirs); it is redrawn if on.
        Raises ValueError for an unknown indicator or parameter or a value out of range."""
        if name not in self._indicators:
            raise ValueError(f"unknown indicator {name!r}; expected one of {INDICATORS}")
        lines = self._indicators[name]
        merged = {**lines.indicator.parameters, **params}
        indicator = make_indicator(name, self.display_tz, merged)
        on = lines.enabled
        if on:
            lines.disable()
        lines.indicator = indicator
        self.toolbar.indicator_replaced(name, indicator)
        if on:
            lines.enable(self.store, self.visible_index_range())
            self.viewport.fit_y(self._indicators.values(), force=True)
        self._indicators_changed()

    def indicator_state(self) -> dict[str, dict[str, Any]]:
        """Every indicator's on/off state and parameters: ``{"SMA": {"on": True, "period": 20}}``."""
        return {
            name: {"on": lines.enabled, **lines.indicator.parameters}
            for name, lines in self._indicators.items()
        }

    def restore_indicators(self, state: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Apply a saved :meth:`indicator_state`. An unknown indicator or a bad value is skipped (the
        others still apply); returns what was skipped and why, one line each."""
        skipped: list[str] = []
        blocked = self.blockSignals(True)  # what is being restored needs no saving
        try:
            self._restore(state, skipped)
        finally:
            self.blockSignals(blocked)
        return skipped

    def _restore(self, state: Mapping[str, Mapping[str, Any]], skipped: list[str]) -> None:
        for name, saved in state.items():
            params = {k: v for k, v in saved.items() if k != "on"}
            try:
                if name not in self._indicators:
                    raise ValueError(f"unknown indicator {name!r}")
                if params:
                    self.set_indicator_parameters(name, params)
                self.set_indicator(name, saved.get("on") is True)
            except ValueError as exc:
                skipped.append(str(exc))

    def legend_entries(self) -> list[tuple[str, str]]:
        """The price pane's and the oscillator pane's legend: ``(text, colour)`` per indicator on."""
        return self.viewport.price_legend.entries + self.viewport.oscillator_legend.entries

    def _indicators_changed(self) -> None:
        price: list[tuple[str, str]] = []
        oscillator: list[tuple[str, str]] = []
        for lines in self._enabled_lines():
            ind = lines.indicator
            (oscillator if ind.pane is Pane.OSCILLATOR else price).append(
                (legend_text(ind), ind.lines[0].color)
            )
        self.viewport.price_legend.set_entries(price)
        self.viewport.oscillator_legend.set_entries(oscillator)
        self.indicatorsChanged.emit(self.indicator_state())

    def enabled_indicators(self) -> list[str]:
        return [n for n, s in self._indicators.items() if s.enabled]

    def indicator_values(self, name: str) -> list[np.ndarray]:
        """History values of an enabled indicator followed by its live value (for tests/readouts)."""
        return self._indicators[name].values_with_live()

    def fill_positions(self) -> list[tuple[float, float, str]]:
        """(x index, price, side) of every drawn fill marker."""
        return self.overlays.fill_positions()

    def readout_text(self) -> str:
        return self.readout.text()

    # ------------------------------------------------------------------ view control

    def visible_index_range(self) -> tuple[float, float]:
        return self.viewport.visible_index_range()

    def go_latest(self) -> None:
        """Show the newest bars (Home) and follow new ones."""
        self.viewport.go_latest()

    def pan(self, fraction: float) -> None:
        """Move the view by ``fraction`` of its width (positive = towards newer bars)."""
        self.viewport.pan(fraction)

    def zoom(self, factor: float) -> None:
        """Zoom by ``factor`` (> 1 shows fewer bars), anchored at the right edge when following."""
        self.viewport.zoom(factor)

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if obj is self.plot_widget and event.type() == QtCore.QEvent.Type.KeyPress:
            assert isinstance(event, QtGui.QKeyEvent)
            if self.viewport.handle_key(event):
                return True
        if obj is self.plot_widget and event.type() == QtCore.QEvent.Type.Leave:
            self.crosshair.set_hover(None, None)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if not self.viewport.handle_key(event):
            super().keyPressEvent(event)

    # ------------------------------------------------------------------ data-change plumbing

    def _enabled_lines(self) -> list[IndicatorLines]:
        return [lines for lines in self._indicators.values() if lines.enabled]

    def _history_changed(self, appended: int = 0) -> None:
        """History grew or was replaced: refresh bounds, indicators, fills, limits; keep following."""
        vp = self.viewport
        vp.bars_changed()
        shifting = bool(appended) and vp.follow
        for lines in self._enabled_lines():
            lines.recompute(self.store, appended)
            if not shifting:  # while following, the x range moves next and hands the lines their slice
                lines.show_slice(vp.visible_index_range())
            lines.update_live(self.store)
        self.overlays.place_fills()
        self.orders.on_bars(self.store)
        vp.update_limits()
        if shifting:
            x0, x1 = vp.visible_index_range()
            vp.set_x(x0 + appended, x1 + appended)  # triggers the y fit through sigXRangeChanged
            for lines in self._enabled_lines():  # a no-op unless the range did not move (clamped)
                lines.show_slice(vp.visible_index_range())
        else:
            vp.fit_y(self._indicators.values())
        self.crosshair.refresh()

    def _live_changed(self) -> None:
        self.viewport.live_bar_changed()
        self.orders.on_bars(self.store)
        for lines in self._enabled_lines():
            lines.update_live(self.store)
        self.viewport.fit_y(self._indicators.values())
        if self.crosshair.follows_live_bar():
            self.crosshair.refresh()

    def _on_x_range_changed(self, *_: Any) -> None:
        for lines in self._enabled_lines():
            if lines.values:
                lines.show_slice(self.visible_index_range())
        self.viewport.fit_y(self._indicators.values())
