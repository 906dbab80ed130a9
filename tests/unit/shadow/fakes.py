"""Predictor fakes for shadow tests."""

from __future__ import annotations

from collections.abc import Sequence


class ScriptedPredictor:
    """Returns scripted probabilities in call order, then 0.5."""

    def __init__(self, probs: list[float], name: str = "scripted", version: str = "v1") -> None:
        self.name = name
        self.version = version
        self._probs = list(probs)

    def predict_up(self, rows: Sequence[tuple[float, ...]]) -> list[float]:
        return [self._probs.pop(0) if self._probs else 0.5 for _ in rows]


class BrokenPredictor:
    def __init__(self, mode: str) -> None:
        self.name = "broken"
        self.version = "v3"
        self.mode = mode

    def predict_up(self, rows: Sequence[tuple[float, ...]]) -> list[float]:
        if self.mode == "raise":
            raise RuntimeError("model exploded")
        if self.mode == "short":
            return [0.5] * (len(rows) - 1)
        return [float("nan")] * len(rows)
