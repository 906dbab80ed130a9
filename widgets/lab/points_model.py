"""The table of a sweep's points: one row per point (per fold and phase in a walk-forward), a column
per swept parameter, per metric, then the fold, the phase and the error. Rows are added in batches
(one ``beginInsertRows`` per batch); a point reported again (a resumed sweep) replaces its row.
Sorting is by a :class:`QSortFilterProxyModel` on :data:`SORT_ROLE` (numbers as numbers; a missing
metric after every number). Failed points stay visible, their error in words. GUI thread only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from services.lab.model import METRICS, PointResult
from widgets import theme
from widgets.models.table import SORT_ROLE

Index = QModelIndex | QPersistentModelIndex
#: what each metric's column is called
METRIC_TITLES: dict[str, str] = {
    "total_return": "Return",
    "sharpe": "Sharpe",
    "max_drawdown": "Max DD",
    "trades": "Trades",
    "win_rate": "Win rate",
    "final_equity": "Final equity",
}
#: metrics shown as percentages of a fraction
PERCENT = frozenset({"total_return", "max_drawdown", "win_rate"})
#: metrics where smaller is better
MINIMISED = frozenset({"max_drawdown"})
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
#: sorts after every number, ascending or not (a tuple: (1, ...) > (0, ...))
_MISSING = (1, 0.0)


def metric_text(name: str, value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if name in PERCENT:  # a small return keeps its digits (one share of a $100k account moves little)
        digits = 2 if value == 0 or abs(value) >= 0.001 else 4
        return f"{value * 100 + 0.0:,.{digits}f} %"
    if name == "trades":
        return f"{int(value):,}"
    if name == "final_equity":
        return f"{value:,.2f}"
    return f"{value:,.3f}"


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return str(value)


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _MISSING
    if isinstance(value, bool | int | float):
        return (0, float(value))
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (0, str(value))


class PointsModel(QAbstractTableModel):
    """See the module docstring. :meth:`set_params` names the parameter columns (a new sweep);
    :meth:`add` appends a batch."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.params: list[str] = []
        self.metrics: list[str] = list(METRICS)
        self._points: list[PointResult] = []
        self._rows: dict[tuple[str, int | None, str], int] = {}
        self._down = QColor(theme.DOWN)
        self._muted = QColor(theme.MUTED)

    # -- columns ------------------------------------------------------------------------------------
    def headers(self) -> list[str]:
        return ["#", *self.params, *(METRIC_TITLES.get(m, m) for m in self.metrics), "Fold", "Phase", "Error"]

    def set_params(self, params: Sequence[str], metrics: Sequence[str] = METRICS) -> None:
        """Start over with these parameter (and metric) columns, no rows."""
        self.beginResetModel()
        self.params, self.metrics = list(params), list(metrics)
        self._points.clear()
        self._rows.clear()
        self.endResetModel()

    def _cell(self, point: PointResult, row: int, column: int) -> tuple[str, tuple[int, Any]]:
        """A cell's text and sort value."""
        if column == 0:
            return str(row + 1), (0, row)
        column -= 1
        if column < len(self.params):
            value = point.params.get(self.params[column])
            return value_text(value), _sort_value(value)
        column -= len(self.params)
        if column < len(self.metrics):
            name = self.metrics[column]
            metric = None if point.metrics is None else point.metrics.get(name)
            return metric_text(name, metric), _sort_value(metric)
        column -= len(self.metrics)
        if column == 0:
            return ("" if point.fold is None else str(point.fold + 1)), _sort_value(point.fold)
        if column == 1:
            return point.phase.replace("_", " "), (0, point.phase)
        return point.error or "", (0, point.error or "")

    # -- rows ---------------------------------------------------------------------------------------
    def add(self, points: Iterable[PointResult]) -> int:
        """Append the new points with one insert; a point already shown is replaced. Returns how
        many rows were added."""
        fresh: list[PointResult] = []
        pending: dict[tuple[str, int | None, str], int] = {}
        for point in points:
            key = (point.key, point.fold, point.phase)
            row = self._rows.get(key)
            if row is not None:
                self._points[row] = point
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
            elif key in pending:
                fresh[pending[key]] = point
            else:
                pending[key] = len(fresh)
                fresh.append(point)
        if fresh:
            first = len(self._points)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            for i, point in enumerate(fresh):
                self._rows[(point.key, point.fold, point.phase)] = first + i
                self._points.append(point)
            self.endInsertRows()
        return len(fresh)

    def points(self) -> list[PointResult]:
        return list(self._points)

    def point_at(self, row: int) -> PointResult:
        return self._points[row]

    # -- QAbstractTableModel ------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._points)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.params) + len(self.metrics) + 4

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers()[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            metric = section - 1 - len(self.params)
            if 0 <= metric < len(self.metrics):
                name = self.metrics[metric]
                return f"{name} ({'smaller' if name in MINIMISED else 'larger'} is better)"
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._points):
            return None
        if not 0 <= index.column() < self.columnCount():
            return None
        point = self._points[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(point, index.row(), index.column())[0]
        if role == SORT_ROLE:
            return self._cell(point, index.row(), index.column())[1]
        if role == Qt.ItemDataRole.ForegroundRole:
            if point.error:
                return self._down
            return self._muted if index.column() == 0 else None
        if role == Qt.ItemDataRole.ToolTipRole and point.error:
            return point.error
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if 0 < index.column() <= len(self.params) + len(self.metrics) else None
        return None


class PointsProxy(QSortFilterProxyModel):
    """Sorts on :data:`SORT_ROLE`: numbers as numbers, a missing value after every number."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            return a is None and b is not None
        if a[0] != b[0]:
            # a missing value after numbers in either order: the view flips lessThan for descending
            descending = self.sortOrder() == Qt.SortOrder.DescendingOrder
            return (a[0] > b[0]) if descending else (a[0] < b[0])
        if type(a[1]) is not type(b[1]):
            return str(a[1]) < str(b[1])
        return bool(a[1] < b[1])


def best_key(point: PointResult, metric: str) -> float | None:
    """The point's figure on ``metric`` as larger-is-better, or None (failed, undefined)."""
    if point.error or point.metrics is None:
        return None
    value = point.metrics.get(metric)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return -float(value) if metric in MINIMISED else float(value)


def params_key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    return tuple(value_text(params.get(n)) for n in names)
