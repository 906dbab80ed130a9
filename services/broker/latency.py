"""Per-endpoint REST latency: last value and rolling p50/p95, calls in flight, and failing calls.

A call is measured from its start (:meth:`LatencyRecorder.begin`), so a call that has not answered
yet already counts as slow while it waits; a call that fails (timeout, refused connection, 5xx)
shows as failing, never as the last good latency. ``clock`` is monotonic seconds (injectable).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    endpoint: str
    count: int
    last: float
    p50: float
    p95: float


@dataclass(frozen=True, slots=True)
class InFlight:
    """The oldest broker call still waiting for its answer."""

    endpoint: str
    age: float  # seconds since the call started


@dataclass(frozen=True, slots=True)
class CallFailure:
    endpoint: str
    reason: str
    seconds: float  # how long the call ran before it failed
    at: float  # clock time of the failure


class LatencyState(StrEnum):
    UNKNOWN = "unknown"  # no call measured yet
    OK = "ok"
    SLOW = "slow"  # a call in flight, or the last answer, took longer than ``warn_above``
    FAILING = "failing"  # the newest outcome is a failed call


@dataclass(frozen=True, slots=True)
class LatencyView:
    """What the status bar shows: ``text`` (short) and ``detail`` (a sentence)."""

    state: LatencyState
    text: str
    detail: str
    seconds: float | None  # the figure shown (a call's duration or a waiting call's age)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"


class LatencyRecorder:
    """Keeps the last ``window`` samples per endpoint (seconds). Loop thread only."""

    def __init__(
        self, window: int = 200, warn_above: float = 1.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.warn_above = warn_above
        self.clock = clock
        self._samples: dict[str, deque[float]] = {}
        self._count: dict[str, int] = {}
        self._tokens = itertools.count(1)
        self._in_flight: dict[int, tuple[str, float]] = {}  # token -> (endpoint, started)
        self.last_answer: float | None = None  # clock time of the newest answer from the broker
        self._last_sample: tuple[str, float] | None = None
        self.last_failure: CallFailure | None = None
        self.failures = 0
        self._outcomes = 0  # order of outcomes: a failure and an answer in the same clock tick
        self._answer_seq = 0
        self._failure_seq = 0

    # -- measuring ------------------------------------------------------------------------------

    def begin(self, endpoint: str) -> int:
        """A call starts now; returns the token for :meth:`end`."""
        token = next(self._tokens)
        self._in_flight[token] = (endpoint, self.clock())
        return token

    def end(self, token: int, *, error: str | None = None, answered: bool = True) -> None:
        """The call of ``token`` ended. ``error`` None: success. With an ``error``, ``answered``
        says whether the broker answered (a refusal: the connection works) or the call failed
        (timeout, connection error, 5xx). Ending with ``answered=False`` and no error: the call was
        abandoned (cancelled) and says nothing about the broker."""
        entry = self._in_flight.pop(token, None)
        if entry is None:
            return
        endpoint, started = entry
        now = self.clock()
        seconds = max(0.0, now - started)
        if error is None and not answered:
            return
        self._outcomes += 1
        if error is None or answered:
            self.last_answer = now
            self._answer_seq = self._outcomes
            self.record(endpoint, seconds)
            return
        self.failures += 1
        self._failure_seq = self._outcomes
        self.last_failure = CallFailure(endpoint, error, seconds, now)
        log.info("broker call %s failed after %s: %s", endpoint, _seconds(seconds), error)

    def record(self, endpoint: str, seconds: float) -> None:
        """One answered call of ``seconds``."""
        q = self._samples.get(endpoint)
        if q is None:
            q = self._samples[endpoint] = deque(maxlen=self.window)
        q.append(seconds)
        self._count[endpoint] = self._count.get(endpoint, 0) + 1
        self._last_sample = (endpoint, seconds)
        if seconds > self.warn_above:
            log.warning("slow broker call %s took %.2f s", endpoint, seconds)

    # -- reading --------------------------------------------------------------------------------

    def stats(self, endpoint: str) -> LatencyStats | None:
        q = self._samples.get(endpoint)
        if not q:
            return None
        values = sorted(q)
        return LatencyStats(
            endpoint, self._count[endpoint], q[-1], _percentile(values, 0.5), _percentile(values, 0.95)
        )

    def all_stats(self) -> dict[str, LatencyStats]:
        return {ep: s for ep in self._samples if (s := self.stats(ep)) is not None}

    @property
    def last(self) -> float | None:
        """The most recent answered call's duration, over all endpoints."""
        return None if self._last_sample is None else self._last_sample[1]

    def oldest_in_flight(self) -> InFlight | None:
        """The call that has waited longest for its answer, or None when nothing is in flight."""
        if not self._in_flight:
            return None
        endpoint, started = min(self._in_flight.values(), key=lambda e: e[1])
        return InFlight(endpoint, max(0.0, self.clock() - started))

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def failing(self) -> CallFailure | None:
        """The newest failure when it is newer than the newest answer (the broker has not answered
        since), else None."""
        if self._failure_seq <= self._answer_seq:
            return None
        return self.last_failure

    def answer_age(self) -> float | None:
        """Seconds since the broker last answered a call; None before the first answer."""
        return None if self.last_answer is None else max(0.0, self.clock() - self.last_answer)

    def view(self) -> LatencyView:
        """The figure a person should see: a waiting call's age when it is slower than the last
        answer's duration, a failure when the broker has not answered since, else the last value."""
        waiting = self.oldest_in_flight()
        failure = self.failing()
        last = self._last_sample
        if waiting is not None and waiting.age > self.warn_above:
            return LatencyView(
                LatencyState.SLOW,
                f"{_seconds(waiting.age)}… (waiting)",
                f"{waiting.endpoint} has waited {_seconds(waiting.age)} for an answer",
                waiting.age,
            )
        if failure is not None:
            return LatencyView(
                LatencyState.FAILING,
                "failing",
                f"{failure.endpoint} failed after {_seconds(failure.seconds)}: {failure.reason}",
                failure.seconds,
            )
        if last is None:
            return LatencyView(LatencyState.UNKNOWN, "—", "no broker call answered yet", None)
        endpoint, seconds = last
        state = LatencyState.SLOW if seconds > self.warn_above else LatencyState.OK
        return LatencyView(state, _seconds(seconds), f"{endpoint} answered in {_seconds(seconds)}", seconds)
