"""Inference: batched probability-of-up predictions, with a rule-model fallback on any model error.

A :class:`Predictor` turns a batch of feature rows into probabilities that the price is higher
after the horizon. :class:`InferenceEngine` wraps one predictor: if it raises, returns the wrong
number of values, or returns anything that is not a finite probability, the engine logs a warning,
counts the fallback and answers with :class:`MomentumRule` instead. Predictions made by the
fallback carry the rule's own name and version (and ``fallback_for``), so the primary model is
never credited or blamed for them.

Thread: whichever thread calls ``predict_batch`` (the event loop in the tracker; scikit-learn's
``predict_proba`` on one small batch takes well under a millisecond).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.shadow.features import FEATURE_NAMES, FeatureVector
from services.shadow.registry import LoadedModel

log = logging.getLogger(__name__)


class Predictor(Protocol):
    name: str
    version: str

    def predict_up(self, rows: Sequence[tuple[float, ...]]) -> list[float]:
        """P(up) for each row, in order."""
        ...


class SklearnPredictor:
    """A registry-loaded scikit-learn classifier (class 1 = up)."""

    def __init__(self, model: LoadedModel) -> None:
        self.name = model.info.name
        self.version = model.info.version
        self._estimator: Any = model.estimator
        if model.info.feature_names and tuple(model.info.feature_names) != FEATURE_NAMES:
            raise ValueError(
                f"model {self.name} {self.version} was trained on different features "
                f"({len(model.info.feature_names)} named) than this build computes"
            )

    def predict_up(self, rows: Sequence[tuple[float, ...]]) -> list[float]:
        import numpy as np

        proba = self._estimator.predict_proba(np.asarray(rows, dtype=float))
        classes = list(self._estimator.classes_)
        if 1 not in classes:
            raise ValueError(f"model {self.name} has no 'up' class (classes {classes})")
        column = classes.index(1)
        return [float(p) for p in proba[:, column]]


class MomentumRule:
    """The fallback: the sign of short momentum (5-bar return) as a mild probability."""

    name = "rule.momentum"
    version = "v1"

    def __init__(self, edge: float = 0.05) -> None:
        self._edge = edge
        self._index = FEATURE_NAMES.index("ret_5")

    def predict_up(self, rows: Sequence[tuple[float, ...]]) -> list[float]:
        out = []
        for row in rows:
            r = row[self._index]
            out.append(0.5 + self._edge if r > 0 else 0.5 - self._edge if r < 0 else 0.5)
        return out


@dataclass(frozen=True, slots=True)
class Prediction:
    model: str
    version: str
    prob_up: float
    fallback_for: str | None = None

    @property
    def direction(self) -> int:
        """+1 when the model says up (p >= 0.5), -1 otherwise."""
        return 1 if self.prob_up >= 0.5 else -1


class InferenceEngine:
    """One model (or just the rule) with fallback. ``predict_batch`` never raises for model errors."""

    def __init__(self, predictor: Predictor | None, fallback: Predictor | None = None) -> None:
        self.primary = predictor
        self.fallback: Predictor = fallback or MomentumRule()
        self.fallbacks = 0
        self.last_error: str | None = None

    @property
    def key(self) -> str:
        p = self.primary or self.fallback
        return f"{p.name}@{p.version}"

    def predict_batch(self, vectors: Sequence[FeatureVector]) -> list[Prediction]:
        if not vectors:
            return []
        rows = [v.values for v in vectors]
        primary = self.primary
        if primary is not None:
            try:
                probs = primary.predict_up(rows)
                if len(probs) != len(rows):
                    raise ValueError(f"returned {len(probs)} values for {len(rows)} rows")
                for p in probs:
                    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                        raise ValueError(f"returned {p!r}, not a probability")
                return [Prediction(primary.name, primary.version, p) for p in probs]
            except Exception as exc:
                self.fallbacks += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "shadow model %s %s failed (%s); using fallback %s for %d row(s)",
                    primary.name,
                    primary.version,
                    self.last_error,
                    self.fallback.name,
                    len(rows),
                )
        fb = self.fallback
        owner = f"{primary.name}@{primary.version}" if primary is not None else None
        return [Prediction(fb.name, fb.version, p, owner) for p in fb.predict_up(rows)]
