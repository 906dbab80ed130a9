from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from services.shadow.inference import InferenceEngine, SklearnPredictor
from services.shadow.registry import ModelRegistry
from services.shadow.tracker import ShadowTracker
from services.shadow.training import (
    TrainingCancelled,
    TrainingDataError,
    build_dataset,
    fit_models,
    save_fitted,
    train_models,
)
from services.strategies.synthetic import synthetic_bars

from .support import close_bars


def small_models() -> dict[str, object]:
    return {
        "logreg": LogisticRegression(max_iter=200),
        "gboost": GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0),
    }


def test_dataset_labels_are_forward_return_signs() -> None:
    closes = [100.0 + (i % 7) for i in range(70)]
    data = build_dataset(close_bars(closes), horizon=2)
    # vectors from bar 60 on; the last 2 bars have no label
    assert len(data.rows) == 70 - 60 - 2
    assert data.labels == [1 if closes[i + 2] > closes[i] else 0 for i in range(60, 68)]
    assert data.ts == sorted(data.ts)


def test_train_store_and_shadow_trade(tmp_path: Path) -> None:
    bars = synthetic_bars("AAPL", 700, seed=21, volatility_bps=15)
    reg = ModelRegistry(tmp_path)
    stages: list[tuple[str, float]] = []
    reports = train_models(
        bars, reg, horizon=3, models=small_models(), progress=lambda s, f: stages.append((s, f))
    )
    assert [r.model.name for r in reports] == ["logreg", "gboost"]
    assert [s for s, _ in stages] == ["features", "fit logreg", "fit gboost", "done"]
    assert [f for _, f in stages] == sorted(f for _, f in stages)
    for r in reports:
        assert 0.0 <= r.test_accuracy <= 1.0 and 0.0 <= r.test_brier <= 1.0
        assert r.train_rows + 3 + r.test_rows == 700 - 60 - 3
        assert reg.load(r.model.name).info.metadata["horizon"] == 3
    engines = [InferenceEngine(SklearnPredictor(reg.load(n))) for n in reg.names()]
    tracker = ShadowTracker(engines, horizon=3)
    for b in synthetic_bars("AAPL", 100, seed=22):
        tracker.on_bar(b)
    assert tracker.scored > 0 and all(e.fallbacks == 0 for e in engines)


def test_cancel_and_insufficient_data(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TrainingCancelled):
        train_models(synthetic_bars("AAPL", 400, seed=1), reg, models=small_models(), cancel=cancel)
    with pytest.raises(TrainingDataError, match="labelled rows"):
        train_models(synthetic_bars("AAPL", 100, seed=1), reg, models=small_models())
    assert reg.names() == []


def test_fitting_stores_nothing_and_the_fitted_models_travel_by_pickle(tmp_path: Path) -> None:
    bars = synthetic_bars("AAPL", 700, seed=21, volatility_bps=15)
    fitted = fit_models(bars, horizon=3, models=small_models())
    assert [f.name for f in fitted] == ["logreg", "gboost"]
    assert not any(tmp_path.iterdir())
    copy = pickle.loads(pickle.dumps(fitted))
    rows = build_dataset(bars, 3).rows[-20:]
    for a, b in zip(fitted, copy, strict=True):
        assert (a.test_accuracy, a.test_brier, a.train_rows) == (b.test_accuracy, b.test_brier, b.train_rows)
        assert a.estimator.predict_proba(rows).tolist() == b.estimator.predict_proba(rows).tolist()

    reg = ModelRegistry(tmp_path)
    report = save_fitted(reg, copy[1], name="gboost-AAPL-h3", metadata={"symbol": "AAPL"})
    loaded = reg.load("gboost-AAPL-h3")
    assert report.model == loaded.info and report.test_brier == copy[1].test_brier
    assert loaded.info.metadata == {**copy[1].metadata(), "symbol": "AAPL"}
    assert loaded.info.metadata["test_rows"] == report.test_rows
    assert loaded.estimator.predict_proba(rows).tolist() == fitted[1].estimator.predict_proba(rows).tolist()


def test_training_cancelled_between_models_saves_none_of_them(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    cancel = threading.Event()

    def progress(stage: str, fraction: float) -> None:
        if stage == "fit logreg":
            cancel.set()  # logreg is fitted, gboost is not

    with pytest.raises(TrainingCancelled, match="fit gboost"):
        train_models(
            synthetic_bars("AAPL", 700, seed=21, volatility_bps=15),
            reg,
            horizon=3,
            models=small_models(),
            progress=progress,
            cancel=cancel,
        )
    assert reg.names() == []
