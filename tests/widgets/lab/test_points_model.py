"""The lab's table of points: batches, replacement, numeric sorting with missing figures last, error rows."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor

from services.lab.model import PointResult
from widgets import theme
from widgets.lab.points_model import PointsModel, PointsProxy, metric_text


def point(
    fast: int, sharpe: float | None, *, error: str | None = None, key: str | None = None
) -> PointResult:
    metrics = None if error else {"total_return": 0.01, "sharpe": sharpe, "max_drawdown": 0.02, "trades": 3,
                                  "win_rate": 0.5, "final_equity": 101_000.0}  # fmt: skip
    return PointResult(key or f"k{fast}", {"fast": fast, "slow": 30}, metrics, error)


def column(model: PointsModel, title: str) -> int:
    return model.headers().index(title)


def test_batches_insert_once_and_a_point_reported_again_replaces_its_row(qtmodeltester: Any) -> None:
    model = PointsModel()
    model.set_params(["fast", "slow"])
    inserts: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserts.append((first, last)))
    assert model.add([point(2, 1.0), point(3, 0.5), point(2, 1.5)]) == 2  # k2 twice in one batch: the last
    assert model.add([point(9, 0.1), point(3, 0.7)]) == 1
    assert inserts == [(0, 1), (2, 2)]
    assert model.rowCount() == 3
    sharpe = column(model, "Sharpe")
    assert model.index(0, sharpe).data() == "1.500" and model.index(1, sharpe).data() == "0.700"
    assert model.headers()[:3] == ["#", "fast", "slow"] and model.headers()[-3:] == ["Fold", "Phase", "Error"]
    qtmodeltester.check(model, force_py=True)


def test_sorting_is_numeric_and_a_missing_figure_comes_last_either_way(qtmodeltester: Any) -> None:
    model = PointsModel()
    model.set_params(["fast", "slow"])
    model.add([point(10, 0.2), point(9, None), point(2, 1.1), point(3, None, error="boom"), point(100, -0.3)])
    proxy = PointsProxy()
    proxy.setSourceModel(model)
    fast, sharpe = column(model, "fast"), column(model, "Sharpe")

    def shown(col: int) -> list[str]:
        return [proxy.index(r, col).data() for r in range(proxy.rowCount())]

    proxy.sort(fast, Qt.SortOrder.AscendingOrder)
    assert shown(fast) == ["2", "3", "9", "10", "100"]  # not "10" < "2"
    proxy.sort(sharpe, Qt.SortOrder.AscendingOrder)
    assert shown(sharpe) == ["-0.300", "0.200", "1.100", "—", "—"]
    proxy.sort(sharpe, Qt.SortOrder.DescendingOrder)
    assert shown(sharpe) == ["1.100", "0.200", "-0.300", "—", "—"]
    qtmodeltester.check(proxy, force_py=True)


def test_a_failed_point_stays_visible_with_its_error_in_words() -> None:
    model = PointsModel()
    model.set_params(["fast"])
    model.add([point(4, None, error="the point killed its worker 4 times")])
    row = model.index(0, column(model, "Error"))
    assert row.data() == "the point killed its worker 4 times"
    assert model.index(0, column(model, "Sharpe")).data() == "—"
    assert model.data(row, Qt.ItemDataRole.ForegroundRole) == QColor(theme.DOWN)
    assert model.data(row, Qt.ItemDataRole.ToolTipRole) == "the point killed its worker 4 times"
    assert model.index(0, 0, QModelIndex()).data() == "1"


def test_metric_text() -> None:
    assert metric_text("total_return", 0.0123) == "1.23 %"
    assert metric_text("total_return", -0.0000123) == "-0.0012 %"
    assert metric_text("total_return", -0.0) == "0.00 %"
    assert metric_text("trades", 1234) == "1,234"
    assert metric_text("sharpe", None) == "—" and metric_text("sharpe", float("nan")) == "—"
