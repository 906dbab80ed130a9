"""The lab's heatmap: a chosen metric over two chosen parameters, filled cell by cell as points
arrive. A cell holds every point with those two values; its colour is the best figure among them
(the other parameters at their best), with a legend of the colour scale and the cell's figures on
hover. Colours come from :mod:`widgets.theme` only: for a figure with a natural zero (return,
Sharpe), losses shade to DOWN and gains to UP around a neutral zero (a sweep where every point lost
is all red, the least bad palest); for the others the scale runs from the worst value shown (DOWN) to
the best (UP). A cell no valid point
falls in (a refused combination, such as fast ≥ slow) is left as background; a cell still to come
is drawn empty; a cell whose points all failed is marked ×.

:class:`HeatGrid` is the data (Qt-free, tested alone); :class:`Heatmap` draws it. GUI thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from services.lab.model import PointResult
from widgets import theme
from widgets.lab.points_model import METRIC_TITLES, MINIMISED, best_key, metric_text, value_text

#: figures with a natural zero: losses and gains are told apart by colour
SIGNED = frozenset({"total_return", "sharpe"})
#: phases a heatmap shows (a walk-forward's out-of-sample runs are in the walk-forward view)
SHOWN_PHASES = frozenset({"sweep", "in_sample"})


@dataclass(slots=True)
class Cell:
    points: int = 0
    errors: int = 0
    expected: int = 0
    refused: int = 0
    best: PointResult | None = None
    best_value: float | None = None  # larger is better (see best_key)


@dataclass(slots=True)
class HeatGrid:
    """Cells over ``x`` × ``y`` parameter values for ``metric``. Values are matched by their text."""

    x: str
    y: str
    x_values: list[str]
    y_values: list[str]
    metric: str
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)

    @classmethod
    def build(cls, x: str, y: str, space: Mapping[str, Sequence[Any]], metric: str) -> HeatGrid:
        """``y`` empty: one row over ``x`` (a sweep of one parameter)."""
        ys = [value_text(v) for v in space.get(y, ())] if y else [""]
        return cls(x, y, [value_text(v) for v in space.get(x, ())], ys, metric)

    def _where(self, params: Mapping[str, Any]) -> tuple[int, int] | None:
        try:
            return (
                self.x_values.index(value_text(params.get(self.x))),
                self.y_values.index(value_text(params.get(self.y))) if self.y else 0,
            )
        except ValueError:
            return None

    def expect(self, points: Iterable[Mapping[str, Any]], refused: Iterable[Mapping[str, Any]] = ()) -> None:
        """The points the sweep will run and the combinations the strategy refused (from expand)."""
        for params in points:
            where = self._where(params)
            if where is not None:
                self.cells.setdefault(where, Cell()).expected += 1
        for params in refused:
            where = self._where(params)
            if where is not None:
                self.cells.setdefault(where, Cell()).refused += 1

    def add(self, points: Iterable[PointResult]) -> int:
        """Put the points in their cells; returns how many fell in a cell."""
        placed = 0
        for point in points:
            if point.phase not in SHOWN_PHASES:
                continue
            where = self._where(point.params)
            if where is None:
                continue
            cell = self.cells.setdefault(where, Cell())
            cell.points += 1
            placed += 1
            value = best_key(point, self.metric)
            if point.error or point.metrics is None:
                cell.errors += 1
            if value is not None and (cell.best_value is None or value > cell.best_value):
                cell.best, cell.best_value = point, value
        return placed

    def shown(self, where: tuple[int, int]) -> float | None:
        """The cell's best figure as the metric reads (not sign-flipped), or None."""
        cell = self.cells.get(where)
        if cell is None or cell.best is None or cell.best.metrics is None:
            return None
        value = cell.best.metrics.get(self.metric)
        return None if value is None else float(value)

    def value_range(self) -> tuple[float, float] | None:
        values = [v for w in self.cells if (v := self.shown(w)) is not None]
        return (min(values), max(values)) if values else None

    def refused(self, where: tuple[int, int]) -> bool:
        """No combination in the cell can run (the strategy refused every one)."""
        cell = self.cells.get(where)
        return cell is not None and cell.refused > 0 and cell.expected == 0 and cell.points == 0


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    t = min(1.0, max(0.0, t))
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


class ColorScale:
    """Maps a figure to a theme colour (see the module docstring)."""

    def __init__(self, metric: str, lo: float, hi: float) -> None:
        self.metric, self.lo, self.hi = metric, lo, hi
        # a loss is red even when every point lost: the scale is centred on zero, not on the points
        self.diverging = metric in SIGNED and (lo != 0 or hi != 0)
        self.low, self.mid, self.high = QColor(theme.DOWN), QColor(theme.GUIDE), QColor(theme.UP)

    def goodness(self, value: float) -> float:
        """0 (worst shown) .. 1 (best shown); 0.5 at zero on a diverging scale."""
        if self.diverging:
            reach = max(-self.lo, self.hi)
            return 0.5 + 0.5 * value / reach
        if self.hi == self.lo:
            return 1.0
        t = (value - self.lo) / (self.hi - self.lo)
        return 1.0 - t if self.metric in MINIMISED else t

    def color(self, value: float) -> QColor:
        g = self.goodness(value)
        return _mix(self.low, self.mid, 2 * g) if g < 0.5 else _mix(self.mid, self.high, 2 * g - 1)

    def ends(self) -> tuple[float, float]:
        """The figures at the legend's worst and best ends."""
        if self.diverging:
            reach = max(-self.lo, self.hi)
            return -reach, reach
        return (self.hi, self.lo) if self.metric in MINIMISED else (self.lo, self.hi)


class Heatmap(QWidget):
    """objectName ``labHeatmap``. :meth:`set_grid` starts a new map; :meth:`add` fills it."""

    LEGEND_W = 14
    MARGIN = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labHeatmap")
        self.setMouseTracking(True)
        self.setMinimumSize(260, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.grid: HeatGrid | None = None
        self.scale: ColorScale | None = None
        #: the parameters not on the axes (named in a cell's tooltip)
        self.others: list[str] = []

    def sizeHint(self) -> QSize:
        return QSize(520, 360)

    def set_grid(self, grid: HeatGrid | None, others: Sequence[str] = ()) -> None:
        self.grid, self.others = grid, list(others)
        self._rescale()
        self.update()

    def add(self, points: Iterable[PointResult]) -> None:
        if self.grid is not None and self.grid.add(points):
            self._rescale()
            self.update()

    def _rescale(self) -> None:
        span = self.grid.value_range() if self.grid is not None else None
        self.scale = None if span is None or self.grid is None else ColorScale(self.grid.metric, *span)

    # -- geometry -----------------------------------------------------------------------------------
    def _plot_rect(self) -> QRect:
        fm = self.fontMetrics()
        grid = self.grid
        label_w = max((fm.horizontalAdvance(v) for v in grid.y_values), default=0) if grid else 0
        left = self.MARGIN + fm.height() + 4 + label_w + 4
        right = self.MARGIN + self.LEGEND_W + 8 + fm.horizontalAdvance("-0000.000 %") + 4
        bottom = self.MARGIN + 2 * fm.height() + 6
        return QRect(
            left,
            self.MARGIN,
            max(10, self.width() - left - right),
            max(10, self.height() - bottom - self.MARGIN),
        )

    def cell_rect(self, xi: int, yi: int) -> QRectF:
        assert self.grid is not None
        area = self._plot_rect()
        w = area.width() / max(1, len(self.grid.x_values))
        h = area.height() / max(1, len(self.grid.y_values))
        row = len(self.grid.y_values) - 1 - yi  # the y axis grows upwards
        return QRectF(area.left() + xi * w, area.top() + row * h, w, h)

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        grid = self.grid
        if grid is None or not grid.x_values or not grid.y_values:
            return None
        area = self._plot_rect()
        if not area.contains(pos):
            return None
        xi = int((pos.x() - area.left()) * len(grid.x_values) / area.width())
        row = int((pos.y() - area.top()) * len(grid.y_values) / area.height())
        xi, row = min(xi, len(grid.x_values) - 1), min(row, len(grid.y_values) - 1)
        return xi, len(grid.y_values) - 1 - row

    # -- words ----------------------------------------------------------------------------------------
    def tooltip_for(self, where: tuple[int, int]) -> str:
        grid = self.grid
        assert grid is not None
        xi, yi = where
        head = f"{grid.x} = {grid.x_values[xi]}" + (f", {grid.y} = {grid.y_values[yi]}" if grid.y else "")
        cell = grid.cells.get(where)
        if grid.refused(where):
            return f"{head}\nno valid combination (refused before the sweep)"
        if cell is None or cell.points == 0:
            planned = cell is not None and cell.expected > 0
            if not planned and any(c.expected for c in grid.cells.values()):
                return f"{head}\nnot among the points this search runs"
            return f"{head}\nnot run yet"
        title = METRIC_TITLES.get(grid.metric, grid.metric)
        lines = [head]
        if cell.best is not None and cell.best.metrics is not None:
            lines.append(f"{title}: {metric_text(grid.metric, cell.best.metrics.get(grid.metric))}")
            others = ", ".join(f"{n} = {value_text(cell.best.params.get(n))}" for n in self.others)
            if others:
                lines.append(f"best with {others}")
        else:
            lines.append(f"{title}: —")
        n = cell.expected or cell.points
        done = f"{cell.points} of {n} point{'s' if n != 1 else ''} run"
        lines.append(done + (f", {cell.errors} failed" if cell.errors else ""))
        return "\n".join(lines)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        where = self.cell_at(event.position().toPoint())
        if where is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), self.tooltip_for(where), self)
        super().mouseMoveEvent(event)

    # -- drawing --------------------------------------------------------------------------------------
    def cell_color(self, where: tuple[int, int]) -> QColor:
        grid = self.grid
        assert grid is not None
        value = grid.shown(where)
        if value is not None and self.scale is not None:
            return self.scale.color(value)
        return QColor(theme.PLOT_BG if grid.refused(where) else theme.BADGE_BG)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(theme.PLOT_BG))
        grid = self.grid
        if grid is None or not grid.x_values or not grid.y_values:
            painter.setPen(QColor(theme.MUTED))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Choose two swept parameters")
            painter.end()
            return
        self._paint_cells(painter, grid)
        self._paint_axes(painter, grid)
        self._paint_legend(painter, grid)
        painter.end()

    def _paint_cells(self, painter: QPainter, grid: HeatGrid) -> None:
        fm = self.fontMetrics()
        edge = QPen(QColor(theme.PLOT_BG))
        for xi in range(len(grid.x_values)):
            for yi in range(len(grid.y_values)):
                rect = self.cell_rect(xi, yi)
                painter.fillRect(rect, self.cell_color((xi, yi)))
                painter.setPen(edge)
                painter.drawRect(rect)
                value = grid.shown((xi, yi))
                cell = grid.cells.get((xi, yi))
                if value is not None:
                    text = metric_text(grid.metric, value).replace(" %", "%")
                    if fm.horizontalAdvance(text) + 4 <= rect.width() and fm.height() <= rect.height():
                        painter.setPen(QColor(theme.ON_ACCENT))
                        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
                elif cell is not None and cell.errors and fm.height() <= rect.height():
                    painter.setPen(QColor(theme.DOWN))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "×")

    def _paint_axes(self, painter: QPainter, grid: HeatGrid) -> None:
        fm = self.fontMetrics()
        area = self._plot_rect()
        painter.setPen(QColor(theme.MUTED))
        widest = max(fm.horizontalAdvance(v) for v in grid.x_values) + 6
        every = max(1, int(widest * len(grid.x_values) / max(1, area.width())) + 1)
        for xi, text in enumerate(grid.x_values):
            if xi % every == 0:
                rect = self.cell_rect(xi, 0)
                box = QRectF(rect.center().x() - widest / 2, area.bottom() + 3, widest, fm.height())
                painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
        tall = max(1, int(fm.height() * len(grid.y_values) / max(1, area.height())) + 1)
        for yi, text in enumerate(grid.y_values):
            if yi % tall == 0:
                rect = self.cell_rect(0, yi)
                box = QRectF(area.left() - 4 - 200, rect.center().y() - fm.height() / 2, 200, fm.height())
                painter.drawText(box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        bold = QFont(painter.font())
        bold.setBold(True)
        painter.setFont(bold)
        painter.drawText(QRectF(area.left(), area.bottom() + 3 + fm.height(), area.width(), fm.height() + 2),
                         Qt.AlignmentFlag.AlignCenter, grid.x)  # fmt: skip
        painter.save()
        painter.translate(self.MARGIN, area.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-area.height() / 2, 0, area.height(), fm.height() + 2),
                         Qt.AlignmentFlag.AlignCenter, grid.y)  # fmt: skip
        painter.restore()
        painter.setFont(self.font())

    def _paint_legend(self, painter: QPainter, grid: HeatGrid) -> None:
        area = self._plot_rect()
        bar = QRectF(area.right() + 10, area.top(), self.LEGEND_W, area.height())
        scale = self.scale
        fm = self.fontMetrics()
        if scale is None:
            painter.fillRect(bar, QColor(theme.BADGE_BG))
            return
        worst, best = scale.ends()
        gradient = QLinearGradient(bar.bottomLeft(), bar.topLeft())
        for stop, value in ((0.0, worst), (0.5, (worst + best) / 2), (1.0, best)):
            gradient.setColorAt(stop, scale.color(value))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor(theme.MUTED))
        x = bar.right() + 4
        labels = ((bar.top(), best), (bar.center().y() - fm.height() / 2, (worst + best) / 2),
                  (bar.bottom() - fm.height(), worst))  # fmt: skip
        for y, value in labels:
            painter.drawText(QRectF(x, y, self.width() - x, fm.height()), Qt.AlignmentFlag.AlignLeft,
                             metric_text(grid.metric, value))  # fmt: skip
