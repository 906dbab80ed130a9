"""Graphics items that draw a ``BarStore``: candlesticks, volume bars and the live bar.

Design (see the chart section of the UI reference):
- ``paint()`` draws only the visible index range, found from the view's x range.
- With more bars than pixel columns, bars are merged per pixel column (``BarStore.buckets``).
- Wicks and bodies go out as ONE array-backed ``drawLines`` / ``drawRects`` call per colour,
  filled from numpy through pyqtgraph's ``PrimitiveArray``; there is no per-bar Qt object.
- The prepared arrays are cached by (first index, last index, merge factor, history version), so a
  repaint caused by a tick re-issues the cached draw calls without touching numpy.
- The live bar is a separate tiny item; a tick only changes that item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt.internals import PrimitiveArray
from PySide6 import QtCore, QtGui, QtWidgets

from widgets.chart.store import BarStore, Buckets
from widgets.theme import ChartColors

UP_COLOR = ChartColors.up
DOWN_COLOR = ChartColors.down
BODY_FRACTION = 0.7  # body width as a fraction of the bar slot when bars are not merged


def merge_factor(bars_in_view: float, pixels: float) -> int:
    """Bars per bucket: 1 while each bar gets at least a pixel, else the next power of two of
    bars-per-pixel (powers of two keep the bucket grid stable while zooming)."""
    if pixels <= 0 or bars_in_view <= pixels:
        return 1
    return 1 << max(0, math.ceil(math.log2(bars_in_view / pixels)))


def visible_range(item: pg.GraphicsObject, n: int, margin: int = 1) -> tuple[int, int, float]:
    """(i0, i1, pixel width) of the bars the item's view currently shows."""
    vb = item.getViewBox()
    if vb is None:
        return 0, n, 1000.0
    (x0, x1), _ = vb.viewRange()
    i0 = max(0, math.floor(x0) - margin)
    i1 = min(n, math.ceil(x1) + 1 + margin)
    return i0, i1, max(1.0, float(vb.width()))


def muted(color: str, background: str, strength: float) -> QtGui.QColor:
    """``color`` blended over ``background`` ahead of time: an opaque fill draws much faster than
    a translucent one (alpha-blended volume bars cost ~30 ms per frame in full view)."""
    a, b = QtGui.QColor(color), QtGui.QColor(background)
    mix = [
        round(x * strength + y * (1 - strength))
        for x, y in ((a.red(), b.red()), (a.green(), b.green()), (a.blue(), b.blue()))
    ]
    return QtGui.QColor(*mix)


def _mk_pen(color: str) -> QtGui.QPen:
    pen = QtGui.QPen(QtGui.QColor(color))
    pen.setCosmetic(True)
    pen.setWidthF(1.0)
    return pen


class _Prims:
    """Reusable line/rect arrays for one colour."""

    def __init__(self) -> None:
        self.lines = PrimitiveArray(QtCore.QLineF, 4)
        self.rects = PrimitiveArray(QtCore.QRectF, 4)

    def fill_lines(self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> None:
        self.lines.resize(x0.shape[0])
        arr = self.lines.ndarray()
        arr[:, 0] = x0
        arr[:, 1] = y0
        arr[:, 2] = x1
        arr[:, 3] = y1

    def fill_rects(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | float, h: np.ndarray) -> None:
        self.rects.resize(x.shape[0])
        arr = self.rects.ndarray()
        arr[:, 0] = x
        arr[:, 1] = y
        arr[:, 2] = w
        arr[:, 3] = h


@dataclass
class _CacheKey:
    i0: int
    i1: int
    k: int
    version: int


class CandlestickItem(pg.GraphicsObject):
    """Candles for the history part of a ``BarStore`` (the live bar is ``LiveBarItem``).

    Call ``data_changed()`` after the store's history changed (load/append); not needed for
    live-bar ticks.
    """

    def __init__(self, store: BarStore, up: str = UP_COLOR, down: str = DOWN_COLOR) -> None:
        super().__init__()
        self.store = store
        self._up_pen, self._down_pen = _mk_pen(up), _mk_pen(down)
        self._up_brush = QtGui.QBrush(QtGui.QColor(up))
        self._down_brush = QtGui.QBrush(QtGui.QColor(down))
        self._up, self._down = _Prims(), _Prims()
        self._key: _CacheKey | None = None
        self._bounds = QtCore.QRectF()
        self.last_buckets: Buckets | None = None  # what the last paint drew (for tests/readouts)
        self.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresParentOpacity, True)
        # The live bar's repaint (up to every batch) exposes a sliver of the plot: the history is
        # drawn from a pixmap of what is on screen, not painted again, until it or the view changes.
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.paints = 0
        self.data_changed()

    # pyqtgraph asks items for their data extent when auto-ranging; answer from the cached bounds.
    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange: Any = None) -> tuple[float, float] | None:
        r = self._bounds
        if r.isNull():
            return None
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())

    def data_changed(self) -> None:
        """History changed: refresh the bounds (O(1) from the store's cached extremes)."""
        self.prepareGeometryChange()
        b = self.store.history_bounds()
        n = self.store.n_history
        if b is None:
            self._bounds = QtCore.QRectF()
        else:
            lo, hi = b
            self._bounds = QtCore.QRectF(-0.5, lo, n, max(hi - lo, 1e-12))
        self._key = None
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return self._bounds

    def _prepare(self) -> None:
        store = self.store
        n = store.n_history
        i0, i1, px = visible_range(self, n)
        k = merge_factor(i1 - i0, px)
        key = _CacheKey(i0, i1, k, store.version)
        if key == self._key:
            return
        self._key = key
        b = store.buckets(i0, i1, k)
        self.last_buckets = b
        up = b.c >= b.o
        down = ~up
        if k == 1:
            half = BODY_FRACTION / 2
            width = BODY_FRACTION
        else:
            half = k / 2
            width = float(k)
        top = np.maximum(b.o, b.c)
        bot = np.minimum(b.o, b.c)
        flat = top == bot
        for mask, prims in ((up, self._up), (down, self._down)):
            x = b.x[mask]
            # Wicks; bars with no body (open == close) get a horizontal tick so they stay visible.
            fm = flat[mask]
            xf = x[fm]
            yf = top[mask][fm]
            prims.fill_lines(
                np.concatenate((x, xf - half)),
                np.concatenate((b.l[mask], yf)),
                np.concatenate((x, xf + half)),
                np.concatenate((b.h[mask], yf)),
            )
            keep = ~fm
            prims.fill_rects(x[keep] - half, bot[mask][keep], width, (top - bot)[mask][keep])

    def paint(self, p: QtGui.QPainter, *args: Any) -> None:
        self.paints += 1
        if self.store.n_history == 0:
            return
        self._prepare()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        for prims, pen, brush in (
            (self._up, self._up_pen, self._up_brush),
            (self._down, self._down_pen, self._down_brush),
        ):
            if len(prims.lines):
                p.setPen(pen)
                p.drawLines(*prims.lines.drawargs())
            if len(prims.rects):
                p.setPen(QtCore.Qt.PenStyle.NoPen)
                p.setBrush(brush)
                p.drawRects(*prims.rects.drawargs())


class VolumeItem(pg.GraphicsObject):
    """Volume bars for the history part of a ``BarStore``, merged per pixel like the candles."""

    def __init__(
        self,
        store: BarStore,
        up: str = UP_COLOR,
        down: str = DOWN_COLOR,
        background: str = ChartColors.background,
        strength: float = 0.55,
    ) -> None:
        super().__init__()
        self.store = store
        cu, cd = muted(up, background, strength), muted(down, background, strength)
        self._up_brush, self._down_brush = QtGui.QBrush(cu), QtGui.QBrush(cd)
        self._up, self._down = _Prims(), _Prims()
        self._key: _CacheKey | None = None
        self._bounds = QtCore.QRectF()
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)  # as the candles'
        self.data_changed()

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange: Any = None) -> tuple[float, float] | None:
        r = self._bounds
        if r.isNull():
            return None
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())

    def data_changed(self) -> None:
        self.prepareGeometryChange()
        n = self.store.n_history
        self._bounds = (
            QtCore.QRectF() if n == 0 else QtCore.QRectF(-0.5, 0.0, n, max(self.store.max_volume(), 1e-12))
        )
        self._key = None
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return self._bounds

    def paint(self, p: QtGui.QPainter, *args: Any) -> None:
        store = self.store
        n = store.n_history
        if n == 0:
            return
        i0, i1, px = visible_range(self, n)
        k = merge_factor(i1 - i0, px)
        key = _CacheKey(i0, i1, k, store.version)
        if key != self._key:
            self._key = key
            b = store.buckets(i0, i1, k)
            width = BODY_FRACTION if k == 1 else float(k)
            up = b.c >= b.o
            for mask, prims in ((up, self._up), (~up, self._down)):
                x = b.x[mask]
                prims.fill_rects(x - width / 2, np.zeros_like(x), width, b.v[mask])
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        for prims, brush in ((self._up, self._up_brush), (self._down, self._down_brush)):
            if len(prims.rects):
                p.setBrush(brush)
                p.drawRects(*prims.rects.drawargs())


class LiveBarItem(pg.GraphicsObject):
    """The live (still forming) bar: a candle or, with ``volume=True``, a volume bar.

    Call ``data_changed()`` after every tick; it touches only this item.
    """

    def __init__(
        self,
        store: BarStore,
        volume: bool = False,
        up: str = UP_COLOR,
        down: str = DOWN_COLOR,
        background: str = ChartColors.background,
    ) -> None:
        super().__init__()
        self.store = store
        self.volume = volume
        if volume:
            self._colors = (muted(up, background, 0.55), muted(down, background, 0.55))
        else:
            self._colors = (QtGui.QColor(up), QtGui.QColor(down))
        self._bounds = QtCore.QRectF()
        self.data_changed()

    def data_changed(self) -> None:
        live = self.store.live
        self.prepareGeometryChange()
        if live is None:
            self._bounds = QtCore.QRectF()
        else:
            x = self.store.n_history
            if self.volume:
                self._bounds = QtCore.QRectF(x - 0.5, 0.0, 1.0, max(live.v, 1e-12))
            else:
                self._bounds = QtCore.QRectF(x - 0.5, live.l, 1.0, max(live.h - live.l, 1e-12))
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return self._bounds

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange: Any = None) -> tuple[float, float] | None:
        r = self._bounds
        if r.isNull():
            return None
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())

    def paint(self, p: QtGui.QPainter, *args: Any) -> None:
        live = self.store.live
        if live is None:
            return
        x = float(self.store.n_history)
        color = self._colors[0] if live.c >= live.o else self._colors[1]
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        half = BODY_FRACTION / 2
        if self.volume:
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRect(QtCore.QRectF(x - half, 0.0, BODY_FRACTION, live.v))
            return
        pen = QtGui.QPen(color)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.drawLine(QtCore.QPointF(x, live.l), QtCore.QPointF(x, live.h))
        top, bot = max(live.o, live.c), min(live.o, live.c)
        if top == bot:
            p.drawLine(QtCore.QPointF(x - half, top), QtCore.QPointF(x + half, top))
        else:
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRect(QtCore.QRectF(x - half, bot, BODY_FRACTION, top - bot))
