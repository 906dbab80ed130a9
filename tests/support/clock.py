"""Clocks tests move by hand. Two kinds, as Heron has two kinds of time:

- :class:`FakeClock`: monotonic seconds (a float), for timeouts, backoff, rate limits and health
  probes; its ``sleep`` advances the clock instead of waiting and runs what was scheduled with ``at``.
- :class:`ManualClock`: UTC wall-clock time (an aware ``datetime``), for timestamps, sessions and
  market hours.

Both are callables, as Heron's services take a clock: ``clock()`` is "now".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: The default wall-clock start: a Monday, 10:00 New York, regular trading hours.
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class FakeClock:
    """Monotonic seconds that only move when the test says so.

    ``advance(s)`` and ``await sleep(s)`` move it on and run every callback registered with
    ``at(t, fn)`` whose time has come; ``sleep`` also records each duration (``sleeps``) and yields
    to the running loop once, as a real sleep would.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._due: list[tuple[float, Callable[[], object]]] = []

    def __call__(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` once the clock reaches ``t``."""
        self._due.append((t, fn))

    def advance(self, seconds: float) -> float:
        self.now += seconds
        for item in [d for d in self._due if d[0] <= self.now + 1e-9]:
            self._due.remove(item)
            item[1]()
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class ManualClock:
    """UTC wall-clock time that only moves when the test says so; never sleeps."""

    def __init__(self, start: datetime = T0) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move on by ``seconds`` and/or ``timedelta`` keywords (``minutes=5``, ``days=1``)."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now
