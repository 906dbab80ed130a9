"""The walk-forward view: per fold the best in-sample point, its figure, and the out-of-sample run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from services.lab.folds import Fold
from services.lab.model import PointResult
from services.strategies.builtin import builtin_registry
from tests.support.polling import qt_pump, wait_for
from tests.widgets.lab.fake_backend import FakeBackend
from widgets import theme
from widgets.lab.dialog import StrategyLabDialog
from widgets.lab.walk_forward import FoldsModel


def p(
    fold: int, phase: str, fast: int, sharpe: float | None, ret: float = 0.0, error: str | None = None
) -> PointResult:
    metrics = None if error else {"sharpe": sharpe, "total_return": ret, "trades": 7}
    return PointResult(f"{fold}-{phase}-{fast}", {"fast": fast, "slow": 20}, metrics, error, fold, phase)


def test_each_fold_shows_its_best_in_sample_point_and_its_out_of_sample_run(qtmodeltester: Any) -> None:
    model = FoldsModel("sharpe")
    model.add(
        [p(1, "in_sample", 3, 0.5), p(1, "in_sample", 5, 1.5), p(1, "in_sample", 7, None, error="boom")]
    )
    model.add([p(0, "in_sample", 4, 0.9), p(1, "out_of_sample", 5, -0.2, ret=-0.01), p(2, "sweep", 5, 9.0)])
    model.add([p(0, "out_of_sample", 4, 0.4, ret=0.02)])
    assert [f.number for f in model.folds] == [0, 1]  # in fold order, a plain sweep point ignored

    def row(r: int) -> list[str]:
        return [model.index(r, c).data() for c in range(model.columnCount())]

    assert model.headers()[3] == "In-sample Sharpe" and model.headers()[5] == "Out-of-sample Sharpe"
    assert row(0) == ["1", "—", "fast=4, slow=20", "0.900", "1", "0.400", "2.00 %", "7", "—"]
    assert row(1) == ["2", "—", "fast=5, slow=20", "1.500", "3", "-0.200", "-1.00 %", "7", "—"]
    assert model.data(model.index(1, 6), Qt.ItemDataRole.ForegroundRole) == QColor(theme.DOWN)
    # 1.02 × 0.99 − 1 = 0.98 %
    assert model.summary() == ("Out-of-sample windows compounded over 2 fold(s): 0.98 %. "
                               "Mean Sharpe: in-sample 1.200, out-of-sample 0.100.")  # fmt: skip
    qtmodeltester.check(model, force_py=True)


def test_a_failed_out_of_sample_run_is_said(qtmodeltester: Any) -> None:
    model = FoldsModel("sharpe")
    model.add([p(0, "in_sample", 4, 0.9), p(0, "out_of_sample", 4, None, error="no bars in the window")])
    assert model.index(0, 5).data() == "failed"
    assert model.data(model.index(0, 5), Qt.ItemDataRole.ToolTipRole) == "no bars in the window"
    assert model.summary() == "Out-of-sample runs: none yet."
    qtmodeltester.check(model, force_py=True)


def test_the_lab_shows_a_walk_forward_sweep_fold_by_fold(qtbot: Any) -> None:
    backend = FakeBackend(builtin_registry())
    d = StrategyLabDialog(builtin_registry(), backend)
    qtbot.addWidget(d)
    d.form.fields["fast"].setText("3..6")
    d.form.fields["slow"].setText("20, 30")
    d.form.walk_forward.setChecked(True)
    d.form.folds.setValue(3)
    assert d.update_count() and d.count.text() == "8 points per fold × 3 folds"
    assert d.start()
    wait_for("the sweep to end", lambda: d.run is None, 20, pump=qt_pump(qtbot))
    wf = backend.started[0][0].walk_forward
    assert wf is not None and wf.folds == 3
    folds = d.walk.model
    assert folds.rowCount() == 3
    assert [folds.index(r, 2).data() for r in range(3)] == ["fast=5, slow=20"] * 3
    assert d.walk.summary.text().startswith("Out-of-sample windows compounded over 3 fold(s):")
    assert d.points.rowCount() == 3 * 8 + 3  # in-sample points and one out-of-sample run per fold
    assert d.heat_caption.text() == "colour: Sharpe, best over the folds (in-sample)"

    # the stitched out-of-sample equity, recomputed off the GUI thread when the sweep ended
    def drawn() -> bool:
        xs = d.walk.curve.getData()[0]
        return xs is not None and len(xs) == 4

    wait_for("the stitched equity", drawn, 10, pump=qt_pump(qtbot))
    ys = d.walk.curve.getData()[1]
    # the out-of-sample runs (fast=5, slow=20, 21, 22) returned 2 %, 1.95 % and 1.9 %
    assert ys[0] == 100_000 and ys[-1] == pytest.approx(100_000 * 1.02 * 1.0195 * 1.019)
    assert d.walk.caption.text().startswith("Stitched out-of-sample equity, recomputed here: 100,000.00 to")
    backend.stitch_error = "no bars for AAPL in fold 2"
    d.show_past("sw1", backend.stored["sw1"][0], backend.results("sw1"))
    wait_for("the failure said", lambda: "no bars for AAPL" in d.walk.caption.text(), 10, pump=qt_pump(qtbot))
    assert d.walk.caption.text() == "The stitched equity could not be drawn: no bars for AAPL in fold 2"


def test_each_row_has_its_window_and_walk_forward_efficiency(qtmodeltester: Any) -> None:
    day = timedelta(days=1)
    t0 = datetime(2026, 3, 2, 5, tzinfo=UTC)
    # two folds: 10 in-sample days then 5 out-of-sample days each (rolling)
    cut = [t0 + n * day for n in (0, 5, 10, 15, 20)]  # fold k: in cut[k]..cut[k+2], out cut[k+2]..cut[k+3]
    windows = [Fold(k, cut[k], cut[k + 2], cut[k + 2], cut[k + 3]) for k in range(2)]
    model = FoldsModel("total_return")
    model.reset("total_return", windows)
    model.add([p(0, "in_sample", 3, None, ret=0.02), p(0, "in_sample", 5, None, ret=0.04)])
    model.add([p(0, "out_of_sample", 5, None, ret=0.01)])
    assert model.index(0, 1).data() == "2026-03-12 to 2026-03-17"
    assert model.index(0, 2).data() == "fast=5, slow=20" and model.index(0, 3).data() == "4.00 %"
    # efficiency: 1 % over 5 days against 4 % over 10 days, both annualised
    year = timedelta(days=365.25)
    expected = (1.01 ** (year / (5 * day)) - 1) / (1.04 ** (year / (10 * day)) - 1)
    assert model.index(0, 8).data() == f"{expected:.2f}"
    assert model.summary().startswith("Out-of-sample windows compounded over 1 fold(s): 1.00 % (")
    assert "Walk-forward efficiency" in model.summary()
    qtmodeltester.check(model, force_py=True)
