"""Shadow panel over a real ShadowTracker and ModelRegistry (generated bars)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from services.shadow.inference import InferenceEngine, MomentumRule
from services.shadow.registry import ModelRegistry
from services.shadow.tracker import ShadowTracker
from services.shadow.training import TrainingCancelled
from services.strategies.synthetic import synthetic_bars
from widgets.shadow import ShadowPanel


class Coin:
    """A second predictor so the comparison has two rows (constant, deterministic)."""

    name, version = "coin", "v1"

    def predict_up(self, rows: Any) -> list[float]:
        return [0.6 for _ in rows]


@pytest.fixture
def tracker() -> ShadowTracker:
    t = ShadowTracker([InferenceEngine(None, MomentumRule()), InferenceEngine(Coin())], horizon=3)
    for bar in synthetic_bars("AAPL", 400, seed=5):
        t.on_bar(bar)
    return t


@pytest.fixture
def panel(qtbot: Any, tracker: ShadowTracker, tmp_path: Path) -> ShadowPanel:
    p = ShadowPanel(tracker, ModelRegistry(tmp_path / "models"), refresh_ms=60_000, prediction_rows=100)
    qtbot.addWidget(p)
    return p


def test_models_pass_qtmodeltester(qtmodeltester: Any, panel: ShadowPanel, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from services.shadow.features import FEATURE_NAMES

    est = LogisticRegression().fit([[0.0] * len(FEATURE_NAMES), [1.0] * len(FEATURE_NAMES)], [0, 1])
    panel.registry.save("logreg", est, feature_names=FEATURE_NAMES, metadata={"test_accuracy": 0.53})
    panel.refresh_models()
    for model in (panel.comparison, panel.predictions, panel.models):
        assert model.rowCount() > 0
        qtmodeltester.check(model, force_py=True)


def test_comparison_shows_the_trackers_metrics(panel: ShadowPanel, tracker: ShadowTracker) -> None:
    rows = {r.name: r for r in panel.comparison.rows()}
    assert set(rows) == {"rule.momentum", "coin"}
    coin = tracker.metrics("coin", "v1")
    assert rows["coin"].scored == coin.scored > 0 and rows["coin"].hit_rate == coin.hit_rate
    r = panel.comparison.row_for_key(("coin", "v1"))
    assert panel.comparison.data(panel.comparison.index(r, 3)) == f"{coin.hit_rate * 100:.1f} %"
    assert panel.comparison.data(panel.comparison.index(r, 7)) == f"{coin.pnl:,.2f}"
    assert panel.predictions.rowCount() == 100  # bounded: the newest only
    assert panel.predictions.row_at(99).id == tracker.records[-1].id
    assert "predictions" in panel.totals.text()


def test_calibration_and_hit_rate_history(panel: ShadowPanel, tracker: ShadowTracker) -> None:
    panel.cal_model.setCurrentText("coin v1")
    [(mean, realised, count)] = panel.calibration_points()  # the coin is always 0.6: one bin
    bins = [b for b in tracker.metrics("coin", "v1").calibration if b.count]
    assert (mean, realised, count) == (bins[0].mean_prob, bins[0].observed_up, bins[0].count)
    _xs, ys = panel.cal_curve.getData()
    assert list(ys) == [realised]
    for bar in synthetic_bars("AAPL", 50, seed=6):
        tracker.on_bar(bar)
    panel.refresh()
    assert len(panel.history["coin v1"]) >= 1


def test_new_predictions_append_incrementally(panel: ShadowPanel, tracker: ShadowTracker) -> None:
    inserted: list[tuple[int, int]] = []
    panel.predictions.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    before = tracker.predictions
    from datetime import timedelta

    last = tracker.records[-1].ts
    for bar in synthetic_bars("AAPL", 5, seed=8, start=last + timedelta(minutes=1)):
        tracker.on_bar(bar)
    panel.refresh()
    assert tracker.predictions > before and len(inserted) == 1


def _more_bars(tracker: ShadowTracker, n: int, seed: int) -> None:
    from datetime import timedelta

    last = tracker.records[-1].ts
    for bar in synthetic_bars("AAPL", n, seed=seed, start=last + timedelta(minutes=1)):
        tracker.on_bar(bar)


def test_refresh_repaints_only_the_predictions_scored_since(
    panel: ShadowPanel, tracker: ShadowTracker
) -> None:
    """A dataChanged over every row made the view measure every cell each second (its columns fit
    their contents): only rows whose outcome changed are announced."""
    pending = {r.id for r in panel.predictions.rows() if r.actual_up is None}
    assert pending and len(pending) < panel.predictions.rowCount()
    announced: list[int] = []
    panel.predictions.dataChanged.connect(
        lambda a, b, *_: announced.extend(panel.predictions.row_at(i).id for i in range(a.row(), b.row() + 1))
    )
    _more_bars(tracker, 1, seed=9)
    scored = {r.id for r in panel.predictions.rows() if r.id in pending and r.actual_up is not None}
    panel.refresh()
    assert scored and set(announced) == scored
    assert panel.predictions.data(panel.predictions.index(panel.predictions.rowCount() - 1, 7)) == "pending"


def test_hidden_panel_keeps_its_hit_rate_history_and_catches_up_when_shown(
    qtbot: Any, tracker: ShadowTracker, tmp_path: Path
) -> None:
    from tests.support.polling import qt_pump, wait_for

    p = ShadowPanel(tracker, ModelRegistry(tmp_path / "models"), refresh_ms=5, prediction_rows=100)
    qtbot.addWidget(p)  # never shown: a tab behind another
    touched: list[str] = []
    for signal in (p.predictions.rowsInserted, p.predictions.dataChanged, p.comparison.dataChanged):
        signal.connect(lambda *_: touched.append("table"))
    shown_before = p.predictions.row_at(99).id
    _more_bars(tracker, 5, seed=10)
    samples = len(p.history["coin v1"])
    wait_for("hit rate sampled while hidden", lambda: len(p.history["coin v1"]) >= samples + 3,
             5, pump=qt_pump(qtbot))  # fmt: skip
    assert touched == [] and p.predictions.row_at(99).id == shown_before
    p.show()
    wait_for("caught up once shown", lambda: p.predictions.row_at(99).id == tracker.records[-1].id,
             5, pump=qt_pump(qtbot))  # fmt: skip
    coin = tracker.metrics("coin", "v1")
    shown = {r.name: r for r in p.comparison.rows()}
    assert shown["coin"].scored == coin.scored


def test_panel_in_a_dock_behind_another_tab_waits_until_its_tab_is_chosen(
    qtbot: Any, tracker: ShadowTracker, tmp_path: Path
) -> None:
    """Qt calls a dock behind another's tab visible: only its on-screen region is empty."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

    from tests.support.polling import qt_pump, wait_for

    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QLabel("chart"))
    front, back = QDockWidget("Log"), QDockWidget("Shadow models")
    front.setObjectName("front")
    back.setObjectName("back")
    front.setWidget(QLabel("log"))
    p = ShadowPanel(tracker, ModelRegistry(tmp_path / "models"), refresh_ms=5, prediction_rows=100)
    back.setWidget(p)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, front)
    window.tabifyDockWidget(front, back)
    window.show()
    front.raise_()
    qtbot.waitExposed(window)
    wait_for("the shadow tab is behind", lambda: p.visibleRegion().isEmpty(), 5, pump=qt_pump(qtbot))
    touched: list[str] = []
    p.predictions.rowsInserted.connect(lambda *_: touched.append("rows"))
    _more_bars(tracker, 5, seed=11)
    samples = len(p.history["coin v1"])
    wait_for("hit rate sampled behind the tab", lambda: len(p.history["coin v1"]) >= samples + 3,
             5, pump=qt_pump(qtbot))  # fmt: skip
    assert p.isVisible() and touched == []
    back.raise_()
    last = tracker.records[-1].id
    wait_for("caught up once its tab is chosen", lambda: p.predictions.row_at(99).id == last,
             5, pump=qt_pump(qtbot))  # fmt: skip


def test_first_time_on_screen_is_announced_once(qtbot: Any, tracker: ShadowTracker, tmp_path: Path) -> None:
    """The trained models (scikit-learn) are loaded when the panel is first seen, not before."""
    from tests.support.polling import qt_pump, wait_for

    calls: list[int] = []
    p = ShadowPanel(tracker, ModelRegistry(tmp_path / "models"), refresh_ms=60_000,
                    on_first_shown=lambda: calls.append(1))  # fmt: skip
    qtbot.addWidget(p)
    p.refresh()
    assert calls == []
    p.show()
    wait_for("announced", lambda: calls, 5, pump=qt_pump(qtbot))
    p.repaint()
    p.hide()
    p.show()
    p.repaint()
    assert calls == [1]


def test_training_runs_off_the_gui_thread_with_progress(qtbot: Any, panel: ShadowPanel) -> None:
    gui = threading.get_ident()
    seen: list[int] = []

    def fake_train(bars: Any, registry: Any, *, progress: Any, cancel: Any) -> list[Any]:
        seen.append(threading.get_ident())
        progress("features", 0.0)
        progress("fit logreg", 0.5)
        return []

    panel._train = fake_train
    panel.training_bars = lambda: []
    with qtbot.waitSignal(panel.bridge.finished, timeout=5000):
        assert panel.start_training()
        assert not panel.train_button.isEnabled() and panel.train_cancel.isEnabled()
    assert seen and seen[0] != gui
    assert panel.progress.value() == 1000 and panel.train_button.isEnabled()


def test_training_cancel(qtbot: Any, panel: ShadowPanel) -> None:
    gate = threading.Event()

    def slow_train(bars: Any, registry: Any, *, progress: Any, cancel: threading.Event) -> list[Any]:
        gate.wait(5)
        if cancel.is_set():
            raise TrainingCancelled("training cancelled at fit logreg")
        return []

    panel._train = slow_train
    panel.training_bars = lambda: []
    with qtbot.waitSignal(panel.bridge.finished, timeout=5000):
        panel.start_training()
        panel.cancel_training()
        gate.set()
    assert "cancelled" in panel.status.text() and "nothing new was stored" in panel.status.text()


@pytest.mark.slow
def test_real_training_stores_versions(qtbot: Any, panel: ShadowPanel) -> None:
    from widgets.shadow import _generated_training_bars

    panel.training_bars = _generated_training_bars
    with qtbot.waitSignal(panel.bridge.finished, timeout=60_000):
        panel.start_training()
    assert {r.name for r in panel.models.rows()} == {"logreg", "gboost"}
    assert panel.status.text().startswith("Trained")
