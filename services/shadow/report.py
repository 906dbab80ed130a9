"""The ``shadow`` section of the state report (docs/state-report.md)."""

from __future__ import annotations

from typing import Any

from services.shadow.tracker import ShadowTracker


def shadow_report(tracker: ShadowTracker) -> dict[str, Any]:
    """Totals and one entry per model version: predictions, scored and hit rate (None if unscored)."""
    return {
        "predictions": tracker.predictions,
        "scored": tracker.scored,
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "predictions": m.predictions,
                "scored": m.scored,
                "hit_rate": None if m.hit_rate is None else round(m.hit_rate, 4),
            }
            for m in tracker.comparison()
        ],
    }
