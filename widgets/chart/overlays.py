"""What the chart draws over the candles from the trading side: fill markers and open-order lines."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from services.domain.enums import OrderSide
from widgets.chart.readout import format_price
from widgets.chart.store import BarStore, to_epoch_ns
from widgets.theme import ChartColors


def _side(value: object, what: str) -> OrderSide:
    try:
        return OrderSide(str(value).lower())
    except ValueError:
        raise ValueError(f"{what} side must be 'buy' or 'sell', got {value!r}") from None


def _price(value: float | Decimal, what: str) -> float:
    p = float(value)
    if not math.isfinite(p) or p <= 0:
        raise ValueError(f"{what} price must be a positive number, got {value!r}")
    return p


def _marker(tip: float, base: float) -> QtGui.QPainterPath:
    """A triangle with its tip at the spot (the fill price) and its body on one side of it.

    Symbols are drawn in pixels with y pointing down, in a box of ±0.5 around the spot."""
    path = QtGui.QPainterPath(QtCore.QPointF(0.0, tip))
    path.lineTo(-0.36, base)
    path.lineTo(0.36, base)
    path.closeSubpath()
    return path


BUY_MARKER = _marker(0.04, 0.5)  # ▲ below the price it points at
SELL_MARKER = _marker(-0.04, -0.5)  # ▼ above it
MARKER_PX = 22


def _side_color(side: OrderSide) -> str:
    return ChartColors.up if side is OrderSide.BUY else ChartColors.down


class Overlays:
    """Fill markers (▲ buy below, ▼ sell above the fill price, on the bar of the fill) and one price
    line per open order."""

    def __init__(self, plot: pg.PlotItem, store: BarStore) -> None:
        self._plot = plot
        self._store = store
        self._fills: list[tuple[int, float, OrderSide]] = []
        self._fill_times = np.empty(0, dtype=np.int64)
        self._placed: np.ndarray | None = None  # the bar index of each fill as last drawn
        self._brushes = {True: pg.mkBrush(ChartColors.up), False: pg.mkBrush(ChartColors.down)}
        self._edge = pg.mkPen(ChartColors.fill_edge, width=1)
        self.order_lines: dict[str, pg.InfiniteLine] = {}
        self.fills_item = pg.ScatterPlotItem(size=MARKER_PX, pxMode=True)
        self.fills_item.setZValue(20)
        plot.addItem(self.fills_item, ignoreBounds=True)

    def set_fills(self, fills: Iterable[tuple[int | datetime, float | Decimal, str]]) -> None:
        """Validate all fills first; on a bad one raise ValueError and keep the previous markers."""
        parsed: list[tuple[int, float, OrderSide]] = []
        for t, price, side in fills:
            s, p = _side(side, "fill"), _price(price, "fill")
            parsed.append((to_epoch_ns(t), p, s))
        self._fills = parsed
        self._fill_times = np.array([f[0] for f in parsed], dtype=np.int64)
        self._placed = None
        self.place_fills()

    def place_fills(self) -> None:
        """Put each fill on the bar whose interval contains its time (after the bars changed).

        Cheap when nothing moved: a new bar leaves every earlier fill on its bar, so the markers
        are set again only when a fill's bar changed (a new history, a fill on the new bar)."""
        if not self._fills or len(self._store) == 0:
            if self._placed is None or len(self._placed):
                self.fills_item.setData([])
            self._placed = np.empty(0, dtype=np.int64)
            return
        idx = self._store.index_at_time(self._fill_times)
        if self._placed is not None and np.array_equal(idx, self._placed):
            return
        self._placed = idx
        keep = np.flatnonzero(idx >= 0)  # fills before the first bar are not drawn
        sides = [self._fills[k][2] for k in keep.tolist()]
        buy = OrderSide.BUY
        self.fills_item.setData(
            x=idx[keep].astype(np.float64),
            y=np.array([self._fills[k][1] for k in keep.tolist()], dtype=np.float64),
            symbol=[BUY_MARKER if s is buy else SELL_MARKER for s in sides],
            brush=[self._brushes[s is buy] for s in sides],
            pen=self._edge,
            data=[s.value for s in sides],
        )

    def fill_positions(self) -> list[tuple[float, float, str]]:
        """(x index, price, side) of every drawn fill marker."""
        pts = self.fills_item.data
        return [(float(p["x"]), float(p["y"]), str(p["data"])) for p in pts]

    def set_open_orders(self, orders: Iterable[tuple[str, str, float | Decimal]]) -> None:
        wanted = {str(oid): (_side(side, "order"), _price(price, "order")) for oid, side, price in orders}
        for oid in list(self.order_lines):
            if oid not in wanted:
                self._plot.removeItem(self.order_lines.pop(oid))
        for oid, (side, p) in wanted.items():
            color = _side_color(side)
            text = f"{side.value.upper()} {format_price(p)}"
            pen = pg.mkPen(color, width=1, style=QtCore.Qt.PenStyle.DashDotLine)
            line = self.order_lines.get(oid)
            if line is None:
                line = pg.InfiniteLine(
                    pos=p,
                    angle=0,
                    movable=False,
                    pen=pen,
                    label=text,
                    labelOpts={
                        "position": 0.05,
                        "color": color,
                        "fill": ChartColors.order_label,
                        "anchors": [(0, 1), (0, 1)],
                    },
                )
                line.setZValue(15)
                self._plot.addItem(line, ignoreBounds=True)
                self.order_lines[oid] = line
            else:
                line.setPos(p)
                line.setPen(pen)
                if line.label is not None:
                    line.label.setFormat(text)
                    line.label.setColor(color)
