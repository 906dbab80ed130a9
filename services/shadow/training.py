"""Training shadow models from stored bars, off the GUI thread, with progress and cancellation.

Dataset: the live :class:`~services.shadow.features.FeatureEngine` run over each symbol's bars in
time order; the label of the vector at bar *t* is 1 when the close at *t + horizon* is strictly
higher than the close at *t* (the tracker's scoring rule). The last ``horizon`` bars of each symbol
have no label and are dropped.

Split: by time, never shuffled. Rows are ordered by timestamp; the last ``test_fraction`` is held
out, and the ``horizon`` rows before the cut are dropped (an embargo) so no training label overlaps
the test period.

Models: a logistic regression (with standard scaling) and a gradient-boosting classifier, both
scikit-learn, seeded. Each is stored in the :class:`~services.shadow.registry.ModelRegistry` with
its test accuracy and Brier score in the metadata.

Fitting and saving are separate: :func:`fit_models` is pure (bars in, :class:`FittedModel` objects
out, picklable, no registry or disk), so it can run on a worker process or a Dask worker;
:func:`save_fitted` writes one to the registry on the process that owns it.
:func:`train_models` does both, for the shadow panel.

Cancellation is checked between stages (dataset, each model); a scikit-learn ``fit`` in progress is
not interruptible, so cancel takes effect when the current fit returns, and nothing is saved.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.domain.models import Bar
from services.shadow.features import FEATURE_NAMES, FeatureEngine

if TYPE_CHECKING:  # the registry (SQLAlchemy) stays out of worker processes
    from services.shadow.registry import ModelRegistry, ModelVersion

Progress = Callable[[str, float], None]


class TrainingCancelled(Exception):
    """Training stopped because the cancel event was set."""


class TrainingDataError(ValueError):
    """Not enough usable data to train (the message says what is missing)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    rows: list[tuple[float, ...]]
    labels: list[int]
    ts: list[datetime]


@dataclass(frozen=True, slots=True)
class TrainingReport:
    model: ModelVersion
    train_rows: int
    test_rows: int
    test_accuracy: float
    test_brier: float


def build_dataset(bars: Iterable[Bar], horizon: int) -> Dataset:
    """Features and forward-return-sign labels, rows sorted by time (stable across symbols)."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    by_symbol: dict[str, list[Bar]] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, []).append(bar)
    items: list[tuple[datetime, str, tuple[float, ...], int]] = []
    for symbol, series in by_symbol.items():
        series.sort(key=lambda b: b.ts)
        engine = FeatureEngine(symbol)
        for i, bar in enumerate(series):
            vector = engine.update(bar)
            if vector is None or i + horizon >= len(series):
                continue
            label = 1 if series[i + horizon].close > bar.close else 0
            items.append((bar.ts, symbol, vector.values, label))
    items.sort(key=lambda t: (t[0], t[1]))
    return Dataset([t[2] for t in items], [t[3] for t in items], [t[0] for t in items])


def default_models(seed: int = 0) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)),
        "gboost": GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=seed),
    }


@dataclass(frozen=True, slots=True)
class FittedModel:
    """One fitted estimator and its held-out figures: no registry, no file, picklable (it travels back
    from a worker process). :func:`save_fitted` stores it."""

    name: str
    estimator: Any
    horizon: int
    train_rows: int
    test_rows: int
    test_accuracy: float
    test_brier: float
    first_ts: datetime
    last_ts: datetime

    def metadata(self) -> dict[str, Any]:
        """What the registry keeps beside the model."""
        return {
            "horizon": self.horizon,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "test_accuracy": round(self.test_accuracy, 6),
            "test_brier": round(self.test_brier, 6),
            "first_ts": self.first_ts.isoformat(),
            "last_ts": self.last_ts.isoformat(),
        }


def fit_models(
    bars: Sequence[Bar],
    *,
    horizon: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    models: dict[str, Any] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[FittedModel]:
    """Build the dataset, fit each model and evaluate it on the held-out tail; pure (bars in, fitted
    models out: nothing is stored, so it can run on any worker)."""
    import numpy as np

    def step(stage: str, fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled(f"training cancelled at {stage}")
        if progress is not None:
            progress(stage, fraction)

    if not 0.0 < test_fraction < 0.9:
        raise ValueError("test_fraction must be between 0 and 0.9")
    step("features", 0.0)
    data = build_dataset(bars, horizon)
    n = len(data.rows)
    cut = int(n * (1.0 - test_fraction))
    train_end = cut - horizon  # embargo: no training label reaches into the test period
    if train_end < 50 or n - cut < 20:
        raise TrainingDataError(
            f"only {n} labelled rows; need at least 50 for training and 20 for testing "
            "(features need 61 bars of warm-up per symbol)"
        )
    x = np.asarray(data.rows, dtype=float)
    y = np.asarray(data.labels, dtype=int)
    x_train, y_train = x[:train_end], y[:train_end]
    x_test, y_test = x[cut:], y[cut:]
    if len(set(y_train.tolist())) < 2:
        raise TrainingDataError("the training labels are all one class; more varied history is needed")
    candidates = models if models is not None else default_models(seed)
    fitted: list[FittedModel] = []
    for k, (name, estimator) in enumerate(candidates.items()):
        step(f"fit {name}", 0.1 + 0.9 * k / len(candidates))
        estimator.fit(x_train, y_train)
        classes = list(estimator.classes_)
        proba = estimator.predict_proba(x_test)[:, classes.index(1)]
        accuracy = float(np.mean((proba >= 0.5).astype(int) == y_test))
        brier = float(np.mean((proba - y_test) ** 2))
        fitted.append(
            FittedModel(
                name,
                estimator,
                horizon,
                int(train_end),
                int(n - cut),
                accuracy,
                brier,
                data.ts[0],
                data.ts[-1],
            )
        )
    return fitted


def save_fitted(
    registry: ModelRegistry,
    fitted: FittedModel,
    *,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> TrainingReport:
    """Store ``fitted`` in ``registry`` (as ``name``, default its own) with its figures and any extra
    ``metadata``; blocking file and database I/O, on the process that owns the registry."""
    record = registry.save(
        name or fitted.name,
        fitted.estimator,
        feature_names=FEATURE_NAMES,
        metadata={**fitted.metadata(), **(metadata or {})},
    )
    return TrainingReport(
        record, fitted.train_rows, fitted.test_rows, fitted.test_accuracy, fitted.test_brier
    )


def train_models(
    bars: Sequence[Bar],
    registry: ModelRegistry,
    *,
    horizon: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    models: dict[str, Any] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[TrainingReport]:
    """:func:`fit_models`, then :func:`save_fitted` for each model once all are fitted (a cancelled
    training stores nothing)."""
    fitted = fit_models(
        bars,
        horizon=horizon,
        test_fraction=test_fraction,
        seed=seed,
        models=models,
        progress=progress,
        cancel=cancel,
    )
    reports = [save_fitted(registry, f) for f in fitted]
    if progress is not None:
        progress("done", 1.0)
    return reports


async def train_models_async(
    bars: Sequence[Bar],
    registry: ModelRegistry,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    **kwargs: Any,
) -> list[TrainingReport]:
    """:func:`train_models` on a worker thread; ``progress`` is relayed to the event-loop thread."""
    loop = asyncio.get_running_loop()
    stop = cancel or threading.Event()
    relay: Progress | None = None
    if progress is not None:
        report = progress

        def relay(stage: str, fraction: float) -> None:
            loop.call_soon_threadsafe(report, stage, fraction)

    try:
        return await asyncio.to_thread(train_models, bars, registry, progress=relay, cancel=stop, **kwargs)
    except asyncio.CancelledError:
        stop.set()
        raise
