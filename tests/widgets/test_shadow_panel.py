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
