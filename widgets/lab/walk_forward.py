"""The walk-forward view: per fold, the best in-sample parameters by the sweep's metric with their
in-sample figure, and the out-of-sample run of those parameters (its metric, return and trades);
under the table, the out-of-sample returns compounded fold after fold beside the in-sample ones, so
a trader sees at once how much of the in-sample edge survived. GUI thread only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QVBoxLayout, QWidget

from services.lab.model import PointResult
from widgets import theme
from widgets.lab.points_model import METRIC_TITLES, best_key, metric_text, value_text
from widgets.message_label import MessageLabel
from widgets.models.common import named

Index = QModelIndex | QPersistentModelIndex
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


@dataclass(slots=True)
class Fold:
    number: int  # 0-based
    in_sample: PointResult | None = None  # the best in-sample point so far
    in_sample_points: int = 0
    out_of_sample: PointResult | None = None


def _figure(point: PointResult | None, metric: str) -> float | None:
    if point is None or point.metrics is None:
        return None
    value = point.metrics.get(metric)
    return None if value is None or not math.isfinite(float(value)) else float(value)


class FoldsModel(QAbstractTableModel):
    """One row per fold, in fold order. :meth:`add` takes a batch of points of any phase."""

    def __init__(self, metric: str = "sharpe", parent: Any = None) -> None:
        super().__init__(parent)
        self.metric = metric
        self.folds: list[Fold] = []

    def headers(self) -> list[str]:
        title = METRIC_TITLES.get(self.metric, self.metric)
        return ["Fold", "In-sample best", f"In-sample {title}", "Points", f"Out-of-sample {title}",
                "OOS return", "OOS trades"]  # fmt: skip

    def reset(self, metric: str) -> None:
        self.beginResetModel()
        self.metric, self.folds = metric, []
        self.endResetModel()

    def _fold(self, number: int) -> int:
        """The row of fold ``number``, inserted in order when new."""
        for row, fold in enumerate(self.folds):
            if fold.number == number:
                return row
        row = sum(1 for f in self.folds if f.number < number)
        self.beginInsertRows(QModelIndex(), row, row)
        self.folds.insert(row, Fold(number))
        self.endInsertRows()
        return row

    def add(self, points: Iterable[PointResult]) -> None:
        touched: set[int] = set()  # fold numbers (rows move when an earlier fold is inserted)
        for point in points:
            if point.fold is None or point.phase not in ("in_sample", "out_of_sample"):
                continue
            row = self._fold(point.fold)
            fold = self.folds[row]
            if point.phase == "out_of_sample":
                fold.out_of_sample = point
            else:
                fold.in_sample_points += 1
                value = best_key(point, self.metric)
                current = None if fold.in_sample is None else best_key(fold.in_sample, self.metric)
                if value is not None and (current is None or value > current):
                    fold.in_sample = point
            touched.add(fold.number)
        for row, fold in enumerate(self.folds):
            if fold.number in touched:
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def summary(self) -> str:
        """The folds' out-of-sample returns compounded, and in-sample against out-of-sample."""
        done = [f for f in self.folds if f.out_of_sample is not None and f.out_of_sample.metrics is not None]
        if not done:
            return "Out-of-sample runs: none yet."
        growth = 1.0
        for fold in done:
            growth *= 1.0 + (_figure(fold.out_of_sample, "total_return") or 0.0)
        ins = [v for f in done if (v := _figure(f.in_sample, self.metric)) is not None]
        outs = [v for f in done if (v := _figure(f.out_of_sample, self.metric)) is not None]
        title = METRIC_TITLES.get(self.metric, self.metric)
        stitched = metric_text("total_return", growth - 1)
        text = f"Stitched out-of-sample return over {len(done)} fold(s): {stitched}."
        if ins and outs:
            mean_in, mean_out = sum(ins) / len(ins), sum(outs) / len(outs)
            text += (f" Mean {title}: in-sample {metric_text(self.metric, mean_in)}, "
                     f"out-of-sample {metric_text(self.metric, mean_out)}.")  # fmt: skip
        return text

    # -- QAbstractTableModel ------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.folds)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 7

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < 7
        ):
            return self.headers()[section]
        return None

    def _text(self, fold: Fold, column: int) -> str:
        best, oos = fold.in_sample, fold.out_of_sample
        if column == 0:
            return str(fold.number + 1)
        if column == 1:
            return "—" if best is None else ", ".join(f"{k}={value_text(v)}" for k, v in best.params.items())
        if column == 2:
            return metric_text(self.metric, _figure(best, self.metric))
        if column == 3:
            return f"{fold.in_sample_points:,}"
        if oos is not None and oos.error:
            return "failed" if column == 4 else ""
        if column == 4:
            return metric_text(self.metric, _figure(oos, self.metric))
        if column == 5:
            return metric_text("total_return", _figure(oos, "total_return"))
        return metric_text("trades", _figure(oos, "trades"))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.folds) or not 0 <= index.column() < 7:
            return None
        fold = self.folds[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(fold, index.column())
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() != 1:
            return _RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and index.column() in (4, 5):
            oos = fold.out_of_sample
            if oos is not None and oos.error:
                return QColor(theme.DOWN)
            value = _figure(oos, "total_return")
            color = None if value is None else theme.sign_hex(value)
            return None if color is None else QColor(color)
        if role == Qt.ItemDataRole.ToolTipRole:
            oos = fold.out_of_sample
            if oos is not None and oos.error:
                return oos.error
        return None


class WalkForwardView(QWidget):
    """objectName ``labWalkForward``: the folds table (``labFolds``) and the summary
    (``labFoldsSummary``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labWalkForward")
        self.model = FoldsModel(parent=self)
        self.table = named(QTableView(), "labFolds")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.summary = named(MessageLabel("Out-of-sample runs: none yet."), "labFoldsSummary")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.summary)

    def reset(self, metric: str) -> None:
        self.model.reset(metric)
        self.summary.setText("Out-of-sample runs: none yet.")

    def add(self, points: Iterable[PointResult]) -> None:
        self.model.add(points)
        self.summary.setText(self.model.summary())
