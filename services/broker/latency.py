"""Per-endpoint REST latency: last value and rolling p50/p95; a warning above a threshold."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    endpoint: str
    count: int
    last: float
    p50: float
    p95: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


class LatencyRecorder:
    """Keeps the last ``window`` samples per endpoint (seconds). Loop thread only."""

    def __init__(self, window: int = 200, warn_above: float = 1.0) -> None:
        self.window = window
        self.warn_above = warn_above
        self._samples: dict[str, deque[float]] = {}
        self._count: dict[str, int] = {}

    def record(self, endpoint: str, seconds: float) -> None:
        q = self._samples.get(endpoint)
        if q is None:
            q = self._samples[endpoint] = deque(maxlen=self.window)
        q.append(seconds)
        self._count[endpoint] = self._count.get(endpoint, 0) + 1
        if seconds > self.warn_above:
            log.warning("slow broker call %s took %.2f s", endpoint, seconds)

    def stats(self, endpoint: str) -> LatencyStats | None:
        q = self._samples.get(endpoint)
        if not q:
            return None
        values = sorted(q)
        return LatencyStats(endpoint, self._count[endpoint], q[-1], _percentile(values, 0.5),
                            _percentile(values, 0.95))

    def all_stats(self) -> dict[str, LatencyStats]:
        return {ep: s for ep in self._samples if (s := self.stats(ep)) is not None}

    @property
    def last(self) -> float | None:
        """The most recent sample over all endpoints (for a status-bar latency figure)."""
        latest: float | None = None
        for q in self._samples.values():
            if q:
                latest = q[-1]
        return latest
