from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from sklearn.linear_model import LogisticRegression

from services.shadow.features import FEATURE_NAMES, FeatureVector
from services.shadow.inference import InferenceEngine, MomentumRule, SklearnPredictor
from services.shadow.registry import LoadedModel, ModelVersion

from .fakes import BrokenPredictor, ScriptedPredictor
from .support import T0

N = len(FEATURE_NAMES)
RET5 = FEATURE_NAMES.index("ret_5")


def vec(ret5: float) -> FeatureVector:
    values = [0.0] * N
    values[RET5] = ret5
    return FeatureVector("AAPL", T0, Decimal(100), tuple(values))


def test_momentum_rule() -> None:
    assert MomentumRule().predict_up([vec(0.01).values, vec(-0.01).values, vec(0.0).values]) == [
        0.55,
        0.45,
        0.5,
    ]


def test_primary_predictions_are_attributed_to_the_model() -> None:
    engine = InferenceEngine(ScriptedPredictor([0.7, 0.2]))
    preds = engine.predict_batch([vec(0.0), vec(0.0)])
    assert [(p.model, p.version, p.prob_up, p.direction, p.fallback_for) for p in preds] == [
        ("scripted", "v1", 0.7, 1, None),
        ("scripted", "v1", 0.2, -1, None),
    ]
    assert engine.fallbacks == 0 and engine.predict_batch([]) == []


@pytest.mark.parametrize(
    ("mode", "why"),
    [("raise", "model exploded"), ("short", "returned 1 values"), ("nan", "not a probability")],
)
@pytest.mark.expected_log(
    r"^services\.shadow\.inference: shadow model broken \S+ failed \(RuntimeError: model",
    r"^services\.shadow\.inference: shadow model broken \S+ failed \(ValueError: returned",
)
def test_any_model_error_falls_back_to_the_rule_and_is_logged(
    mode: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = InferenceEngine(BrokenPredictor(mode))
    with caplog.at_level(logging.WARNING, logger="services.shadow.inference"):
        preds = engine.predict_batch([vec(0.02), vec(-0.02)])
    assert [(p.model, p.prob_up, p.fallback_for) for p in preds] == [
        ("rule.momentum", 0.55, "broken@v3"),
        ("rule.momentum", 0.45, "broken@v3"),
    ]
    assert engine.fallbacks == 1 and engine.last_error is not None and why in engine.last_error
    assert any("using fallback rule.momentum" in r.getMessage() for r in caplog.records)


@pytest.mark.expected_log(r"^services\.shadow\.inference: shadow model n \S+ failed \(ValueError: X")
def test_sklearn_predictor_uses_the_up_class_and_checks_features() -> None:
    model = LogisticRegression().fit([[0.0] * N, [1.0] * N, [0.1] * N, [0.9] * N], [0, 1, 0, 1])
    info = ModelVersion("lr", "v1", "0" * 64, "", FEATURE_NAMES)
    p = SklearnPredictor(LoadedModel(info, model))
    up, down = p.predict_up([tuple([1.0] * N), tuple([0.0] * N)])
    assert up > 0.5 > down
    wrong = ModelVersion("lr", "v1", "0" * 64, "", ("a", "b"))
    with pytest.raises(ValueError, match="different features"):
        SklearnPredictor(LoadedModel(wrong, model))
    # a model fed the wrong width raises inside predict_up, and the engine falls back
    narrow = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    engine = InferenceEngine(SklearnPredictor(LoadedModel(ModelVersion("n", "v1", "0" * 64, "", ()), narrow)))
    assert engine.predict_batch([vec(0.01)])[0].model == "rule.momentum" and engine.fallbacks == 1
