"""An indicator's lines on the chart: its history values, grown in place, and the line items.

``IndicatorLines`` asks its ``Indicator`` for values and keeps them in buffers whose capacity
doubles, so an appended bar costs O(new + window), not O(history). The history line gets only
the slice in view, decimated to about two points per pixel column; the live bar's value is a
separate two-point segment, so a tick never touches the history line.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from widgets.chart.indicators import Indicator, Pane
from widgets.chart.store import BarStore

#: Above this many appended bars a full recompute is as cheap as extending.
_MAX_EXTEND = 10_000


class SharedX:
    """x values 0, 1, 2, … shared by every indicator line (grown by doubling)."""

    def __init__(self) -> None:
        self.values = np.arange(1024, dtype=np.float64)

    def ensure(self, n: int) -> None:
        if self.values.shape[0] < n:
            self.values = np.arange(max(n, 2 * self.values.shape[0]), dtype=np.float64)


class IndicatorLines:
    """One indicator's state on one chart: enabled or not, values, line items."""

    def __init__(self, indicator: Indicator, plot: pg.PlotItem, x: SharedX) -> None:
        self.indicator = indicator
        self.plot = plot
        self._x = x
        self.enabled = False
        self.hist_items: list[pg.PlotDataItem] = []
        self.live_items: list[pg.PlotDataItem] = []
        #: history values per line: views of ``bufs`` (capacity doubles, so an append is O(new))
        self.values: list[np.ndarray] = []
        self.bufs: list[np.ndarray] = []
        #: (first, last, step, history length) of the slice last handed to the line items
        self.shown: tuple[int, int, int, int] | None = None

    @property
    def name(self) -> str:
        return self.indicator.name

    @property
    def on_price_pane(self) -> bool:
        return self.indicator.pane is Pane.PRICE

    def enable(self, store: BarStore, visible: tuple[float, float]) -> None:
        """Create the line items and compute the values."""
        self.enabled = True
        for style in self.indicator.lines:
            pen_style = QtCore.Qt.PenStyle.DashLine if style.dashed else QtCore.Qt.PenStyle.SolidLine
            pen = pg.mkPen(style.color, width=1.2, style=pen_style)
            hist = pg.PlotDataItem(pen=pen, connect="finite")
            live = pg.PlotDataItem(pen=pen)
            self.plot.addItem(hist, ignoreBounds=True)
            self.plot.addItem(live, ignoreBounds=True)
            # After adding: passing these to the constructor/plot() breaks in pyqtgraph 0.14.
            hist.setClipToView(True)
            hist.setDownsampling(auto=True, method="peak")
            self.hist_items.append(hist)
            self.live_items.append(live)
        self.recompute(store)
        self.show_slice(visible)
        self.update_live(store)

    def disable(self) -> None:
        """Remove the line items and forget the values."""
        self.enabled = False
        for item in self.hist_items + self.live_items:
            self.plot.removeItem(item)
        self.hist_items.clear()
        self.live_items.clear()
        self.values.clear()
        self.bufs.clear()
        self.shown = None

    def recompute(self, store: BarStore, appended: int = 0) -> None:
        """Refresh the history values: only the ``appended`` newest when the previous values are
        still valid (O(appended + window)), else a full O(N) recompute. The caller then hands the
        lines their visible slice (``show_slice``)."""
        n = store.n_history
        m_old = n - appended
        tail: list[np.ndarray] | None = None
        if 0 < appended <= _MAX_EXTEND and self.values and self.values[0].shape[0] == m_old and m_old > 0:
            tail = self.indicator.extend(store, m_old, self.values)
        if tail is not None and all(b.shape[0] >= n for b in self.bufs):
            for buf, new in zip(self.bufs, tail, strict=True):
                buf[m_old:n] = new
        elif tail is not None:
            cap = max(n, 2 * self.bufs[0].shape[0])
            grown = []
            for buf, new in zip(self.bufs, tail, strict=True):
                b = np.empty(cap)
                b[:m_old] = buf[:m_old]
                b[m_old:n] = new
                grown.append(b)
            self.bufs = grown
        else:
            cap = max(1024, 1 << max(0, n - 1).bit_length())
            self.bufs = []
            for arr in self.indicator.compute(store):
                b = np.empty(cap)
                b[:n] = arr
                self.bufs.append(b)
        self.values = [b[:n] for b in self.bufs]
        self._x.ensure(n)
        self.shown = None

    def show_slice(self, visible: tuple[float, float]) -> None:
        """Hand the line items only the history in view (plus a margin), decimated to about two
        points per pixel column: pyqtgraph re-checks and re-clips whatever it is given, so giving
        it 1M points per append cost far more than the drawing."""
        n = self.values[0].shape[0] if self.values else 0
        x0, x1 = visible
        width = max(1.0, x1 - x0)
        i0 = max(0, math.floor(x0 - width * 0.25))
        i1 = min(n, math.ceil(x1 + width * 0.25) + 1)
        pixels = max(100.0, float(self.plot.getViewBox().width()))
        step = max(1, int((i1 - i0) // (2 * pixels)))
        if step > 1:
            step = 1 << (step.bit_length() - 1)  # powers of two: a stable sample grid while panning
            i0 -= i0 % step
        key = (i0, i1, step, n)
        if key == self.shown:
            return
        self.shown = key
        x = self._x.values[i0:i1:step]
        for item, y in zip(self.hist_items, self.values, strict=True):
            item.setData(x, y[i0:i1:step])

    def update_live(self, store: BarStore) -> None:
        """Value(s) for the live bar, from the history state in O(window); drawn as a short segment."""
        live = store.live
        n = store.n_history
        if live is None or n == 0 or not self.values:
            for item in self.live_items:
                item.setData([], [])
            return
        new = self.indicator.live(store, self.values, live)
        x = np.array([n - 1, n], dtype=np.float64)
        for item, hist, val in zip(self.live_items, self.values, new, strict=True):
            item.setData(x, np.array([hist[-1], val]))

    def values_with_live(self) -> list[np.ndarray]:
        """History values of each line followed by its live value (if there is one)."""
        out = []
        for hist, live in zip(self.values, self.live_items, strict=True):
            _, ys = live.getData()
            tail = [ys[-1]] if ys is not None and len(ys) else []
            out.append(np.append(hist, tail))
        return out

    def extent(self, i0: int, i1: int) -> tuple[float, float] | None:
        """Lowest and highest value over history bars [i0, i1) and the live bar (None: no values)."""
        lo, hi = math.inf, -math.inf
        for arr in self.values:
            seg = arr[i0:i1]
            if seg.size and not np.isnan(seg).all():
                lo = min(lo, float(np.nanmin(seg)))
                hi = max(hi, float(np.nanmax(seg)))
        for live_item in self.live_items:
            _, ys = live_item.getData()
            if ys is not None and len(ys) and np.isfinite(ys[-1]):
                lo, hi = min(lo, float(ys[-1])), max(hi, float(ys[-1]))
        return None if lo > hi else (lo, hi)
