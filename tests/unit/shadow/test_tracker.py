from __future__ import annotations

from decimal import Decimal

import pytest

from services.domain.bus import EventBus
from services.domain.events import BarEvent
from services.shadow.inference import InferenceEngine
from services.shadow.report import shadow_report
from services.shadow.tracker import PredictionRecord, ShadowTracker

from .fakes import ScriptedPredictor
from .support import close_bars

# 60 warm-up bars, then predictions from bar 60 on (entry close shown), horizon 2:
#   bar 60 close 100 p=0.8 → scored at bar 62 (102 > 100: up)    hit, TP, pnl +2
#   bar 61 close 101 p=0.3 → scored at bar 63 (100 < 101: down)  hit, TN, pnl +1
#   bar 62 close 102 p=0.6 → scored at bar 64 (101 < 102: down)  miss, FP, pnl -1
#   bar 63 close 100 p=0.4 → scored at bar 65 (100 = 100: not up) hit, TN, pnl 0
CLOSES = [100.0] * 60 + [100, 101, 102, 100, 101, 100]


def tracked(scored: list[PredictionRecord] | None = None) -> tuple[ShadowTracker, list]:
    tracker = ShadowTracker(
        [InferenceEngine(ScriptedPredictor([0.8, 0.3, 0.6, 0.4]))],
        horizon=2,
        on_scored=None if scored is None else scored.append,
    )
    return tracker, close_bars(CLOSES)


def test_hand_built_scoring() -> None:
    scored: list[PredictionRecord] = []
    tracker, bars = tracked(scored)
    made = [tracker.on_bar(b) for b in bars]
    assert [len(m) for m in made] == [0] * 60 + [1] * 6
    assert tracker.predictions == 6 and tracker.scored == 4
    assert [(r.entry, r.exit, r.actual_up, r.hit) for r in scored] == [
        (Decimal(100), Decimal(102), True, True),
        (Decimal(101), Decimal(100), False, True),
        (Decimal(102), Decimal(101), False, False),
        (Decimal(100), Decimal(100), False, True),
    ]
    m = tracker.metrics("scripted", "v1")
    assert (m.predictions, m.scored, m.hits) == (6, 4, 3)
    assert m.hit_rate == 0.75 and m.precision == 0.5 and m.recall == 1.0
    assert m.brier == pytest.approx((0.04 + 0.09 + 0.36 + 0.16) / 4)
    assert m.pnl == Decimal(2)
    bins = {(round(b.low, 1)): (b.count, b.observed_up) for b in m.calibration if b.count}
    assert bins == {0.8: (1, 1.0), 0.3: (1, 0.0), 0.6: (1, 0.0), 0.4: (1, 0.0)}
    record = scored[0]
    assert record.model == "scripted" and record.horizon == 2 and len(record.features) == 11
    assert record.exit_ts == bars[62].ts and record.ts == bars[60].ts


def test_predictions_are_never_scored_early() -> None:
    tracker, bars = tracked()
    for b in bars[:62]:
        tracker.on_bar(b)
    assert tracker.scored == 0  # bar 60's prediction waits for bar 62
    tracker.on_bar(bars[62])
    assert tracker.scored == 1


def test_bus_wiring_and_report() -> None:
    tracker = ShadowTracker(
        [InferenceEngine(ScriptedPredictor([0.8, 0.3, 0.6, 0.4])), InferenceEngine(None)], horizon=2
    )
    bus = EventBus()
    tracker.attach(bus)
    for b in close_bars(CLOSES):
        bus.publish(BarEvent(b.ts, b, is_partial=True))  # ignored
        bus.publish(BarEvent(b.ts, b))
    report = shadow_report(tracker)
    assert report["predictions"] == 12 and report["scored"] == 8
    assert report["models"][0] == {
        "name": "scripted",
        "version": "v1",
        "predictions": 6,
        "scored": 4,
        "hit_rate": 0.75,
    }
    assert report["models"][1]["name"] == "rule.momentum" and report["models"][1]["scored"] == 4
    assert tracker.fallbacks() == {"scripted@v1": 0, "rule.momentum@v1": 0}


def test_several_symbols_are_batched_and_kept_apart() -> None:
    calls: list[int] = []

    class Counting(ScriptedPredictor):
        def predict_up(self, rows):  # type: ignore[no-untyped-def]
            calls.append(len(rows))
            return super().predict_up(rows)

    tracker = ShadowTracker([InferenceEngine(Counting([]))], horizon=1)
    a, b = close_bars(CLOSES, "AAPL"), close_bars([c * 2 for c in CLOSES], "MSFT")
    for x, y in zip(a, b, strict=True):
        tracker.on_bars([x, y])
    assert set(calls) == {2}
    assert {r.symbol for r in tracker.records} == {"AAPL", "MSFT"}
    assert tracker.scored == 10 and tracker.metrics("scripted", "v1").scored == 10


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        ShadowTracker([InferenceEngine(None)], horizon=0)
    with pytest.raises(ValueError, match="at least one"):
        ShadowTracker([])


def test_warm_up_fills_the_feature_windows_without_predicting() -> None:
    tracker, bars = tracked()
    tracker.warm_up(bars[:60])
    assert tracker.predictions == 0 and tracker.scored == 0
    # the windows are full, so the very next live bar is predicted (without warm-up it takes 61)
    assert len(tracker.on_bar(bars[60])) == 1
    cold, _ = tracked()
    assert cold.on_bar(bars[60]) == []
