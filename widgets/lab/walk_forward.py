"""The walk-forward view: per fold, its out-of-sample dates, the best in-sample parameters by the
sweep's metric with their in-sample figure, and the out-of-sample run of those parameters (its
metric, return, trades and walk-forward efficiency: out-of-sample annualised return over in-sample);
under the table, the out-of-sample windows compounded fold after fold and the means in-sample against
out-of-sample, so a trader sees at once how much of the in-sample edge survived. The figures are
those of :mod:`services.lab.folds`, as the headless report gives them. GUI thread only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QSplitter, QTableView, QVBoxLayout, QWidget

from services.lab.folds import Fold, best_point, compare
from services.lab.model import PointResult
from widgets import theme
from widgets.lab.points_model import METRIC_TITLES, metric_text, value_text
from widgets.message_label import MessageLabel
from widgets.models.common import named

Index = QModelIndex | QPersistentModelIndex
NO_CURVE = "Stitched out-of-sample equity: drawn when a walk-forward sweep ends."
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


@dataclass(slots=True)
class FoldRow:
    number: int  # 0-based
    in_sample: list[PointResult] = field(default_factory=list)
    best: PointResult | None = None  # the best in-sample point so far
    out_of_sample: PointResult | None = None
    window: Fold | None = None  # the fold's dates, when the spec's range lays them out
    compared: dict[str, Any] = field(default_factory=dict)  # its row of services.lab.folds.compare


def _figure(point: PointResult | None, metric: str) -> float | None:
    if point is None or point.metrics is None or point.error:
        return None
    value = point.metrics.get(metric)
    return None if value is None or not math.isfinite(float(value)) else float(value)


COLUMNS = 9


class FoldsModel(QAbstractTableModel):
    """One row per fold, in fold order. :meth:`add` takes a batch of points of any phase; the best
    in-sample point and the comparison are those of :mod:`services.lab.folds` (the headless report's)."""

    def __init__(self, metric: str = "sharpe", parent: Any = None) -> None:
        super().__init__(parent)
        self.metric = metric
        self.folds: list[FoldRow] = []
        self.windows: dict[int, Fold] = {}
        self.report: dict[str, Any] = {}

    def headers(self) -> list[str]:
        title = METRIC_TITLES.get(self.metric, self.metric)
        return ["Fold", "Out-of-sample days", "In-sample best", f"In-sample {title}", "Points",
                f"Out-of-sample {title}", "OOS return", "OOS trades", "Efficiency"]  # fmt: skip

    def reset(self, metric: str, windows: list[Fold] | None = None) -> None:
        self.beginResetModel()
        self.metric, self.folds, self.report = metric, [], {}
        self.windows = {f.index: f for f in windows or ()}
        self.endResetModel()

    def _row(self, number: int) -> FoldRow:
        """Fold ``number``'s row, inserted in order when new."""
        for fold in self.folds:
            if fold.number == number:
                return fold
        row = sum(1 for f in self.folds if f.number < number)
        self.beginInsertRows(QModelIndex(), row, row)
        fold = FoldRow(number, window=self.windows.get(number))
        self.folds.insert(row, fold)
        self.endInsertRows()
        return fold

    def add(self, points: Iterable[PointResult]) -> None:
        touched = False
        for point in points:
            if point.fold is None or point.phase not in ("in_sample", "out_of_sample"):
                continue
            fold = self._row(point.fold)
            if point.phase == "out_of_sample":
                fold.out_of_sample = point
            else:
                fold.in_sample = [p for p in fold.in_sample if p.key != point.key] + [point]
            touched = True
        if not touched:
            return
        for fold in self.folds:
            fold.best = best_point(fold.in_sample, self.metric)
        in_sample = [p for f in self.folds for p in f.in_sample]
        done = [f.out_of_sample for f in self.folds if f.out_of_sample is not None]
        self.report = compare(in_sample, done, self.metric, folds=list(self.windows.values()) or None)
        rows = {r["fold"]: r for r in self.report["folds"]}
        for fold in self.folds:
            fold.compared = rows.get(fold.number, {})
        if self.folds:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.folds) - 1, COLUMNS - 1))

    def summary(self) -> str:
        """The out-of-sample windows compounded, and in-sample against out-of-sample."""
        done = [f for f in self.folds if _figure(f.out_of_sample, "total_return") is not None]
        if not done:
            return "Out-of-sample runs: none yet."
        growth = 1.0
        for fold in done:
            growth *= 1.0 + (_figure(fold.out_of_sample, "total_return") or 0.0)
        title = METRIC_TITLES.get(self.metric, self.metric)
        stitched = metric_text("total_return", growth - 1)
        text = f"Out-of-sample windows compounded over {len(done)} fold(s): {stitched}"
        report = self.report
        if report.get("out_of_sample_annual_return") is not None:
            text += f" ({metric_text('total_return', report['out_of_sample_annual_return'])} a year)"
        text += "."
        if report.get("in_sample_mean") is not None and report.get("out_of_sample_mean") is not None:
            text += (f" Mean {title}: in-sample {metric_text(self.metric, report['in_sample_mean'])}, "
                     f"out-of-sample {metric_text(self.metric, report['out_of_sample_mean'])}.")  # fmt: skip
        if report.get("efficiency") is not None:
            text += f" Walk-forward efficiency {report['efficiency']:.2f}."
        return text

    # -- QAbstractTableModel ------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.folds)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else COLUMNS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < COLUMNS:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers()[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == COLUMNS - 1:
            return (
                "Out-of-sample annualised return ÷ in-sample annualised return (when the latter is positive)"
            )
        return None

    def _text(self, fold: FoldRow, column: int) -> str:
        best, oos = fold.best, fold.out_of_sample
        if column == 0:
            return str(fold.number + 1)
        if column == 1:
            w = fold.window
            return "—" if w is None else f"{w.out_start:%Y-%m-%d} to {w.out_end:%Y-%m-%d}"
        if column == 2:
            return "—" if best is None else ", ".join(f"{k}={value_text(v)}" for k, v in best.params.items())
        if column == 3:
            return metric_text(self.metric, _figure(best, self.metric))
        if column == 4:
            return f"{len(fold.in_sample):,}"
        if oos is not None and oos.error:
            return "failed" if column == 5 else ""
        if column == 5:
            return metric_text(self.metric, _figure(oos, self.metric))
        if column == 6:
            return metric_text("total_return", _figure(oos, "total_return"))
        if column == 7:
            return metric_text("trades", _figure(oos, "trades"))
        efficiency = fold.compared.get("efficiency")
        return "—" if efficiency is None else f"{efficiency:.2f}"

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.folds) or not 0 <= index.column() < COLUMNS:
            return None
        fold = self.folds[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(fold, index.column())
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() not in (1, 2):
            return _RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and index.column() in (5, 6):
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
    """objectName ``labWalkForward``: the folds table (``labFolds``), the summary
    (``labFoldsSummary``) and the stitched out-of-sample equity (``labStitchedPlot``, its caption
    ``labStitchedCaption``)."""

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
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self._build_plot())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split, 1)
        lay.addWidget(self.summary)

    def _build_plot(self) -> QWidget:
        from widgets.backtest_dialog import DateAxis

        self.axis = DateAxis(orientation="bottom", utcOffset=0)
        self.plot = pg.PlotWidget(axisItems={"bottom": self.axis})
        self.plot.setObjectName("labStitchedPlot")
        self.plot.setBackground(theme.PLOT_BG)
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "Equity (USD)")
        self.curve = self.plot.plot([], [], pen=pg.mkPen(theme.INFO, width=1.5))
        self.caption = named(MessageLabel(NO_CURVE), "labStitchedCaption")
        self.caption.setStyleSheet(f"color: {theme.MUTED};")
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.caption)
        lay.addWidget(self.plot, 1)
        return box

    def reset(self, metric: str, windows: list[Fold] | None = None) -> None:
        self.model.reset(metric, windows)
        self.summary.setText("Out-of-sample runs: none yet.")
        self.show_equity([], NO_CURVE)

    def show_equity(self, curve: Sequence[tuple[datetime, Decimal]], caption: str | None = None) -> None:
        """The out-of-sample windows' equity chained fold after fold (UTC time axis)."""
        xs = [ts.timestamp() for ts, _ in curve]
        ys = [float(e) for _, e in curve]
        self.curve.setData(xs, ys)
        self.axis.empty = not xs
        self.plot.getAxis("left").setStyle(showValues=bool(xs))  # no 0..1 equity before a curve
        if xs:
            self.plot.enableAutoRange()
        if caption is None and curve:
            (first, low), (last, high) = curve[0], curve[-1]
            caption = (f"Stitched out-of-sample equity, recomputed here: {low:,.2f} to {high:,.2f} USD, "
                       f"{first:%Y-%m-%d} to {last:%Y-%m-%d} UTC")  # fmt: skip
        self.caption.setText(caption or NO_CURVE)

    def add(self, points: Iterable[PointResult]) -> None:
        self.model.add(points)
        self.summary.setText(self.model.summary())
