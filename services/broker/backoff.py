"""Non-blocking exponential backoff with equal jitter for REST retries.

The SDK's own retry sleeps on the calling thread for 3 s per attempt; ours waits with
``asyncio.sleep`` (or an injected sleep in tests) so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Backoff:
    """Delay for attempt ``n`` (0-based) is ``min(cap, base * factor**n)`` with equal jitter.

    Equal jitter draws uniformly from ``[d/2, d]`` so retries from many callers spread out but a
    retry never comes sooner than half the nominal delay. ``max_retries`` counts retries, so a call
    is attempted at most ``max_retries + 1`` times.
    """

    base: float = 0.25
    factor: float = 2.0
    cap: float = 8.0
    max_retries: int = 4
    rng: random.Random = field(default_factory=random.Random)
    sleep: Sleep = asyncio.sleep

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")

    def delay(self, attempt: int) -> float:
        nominal = min(self.cap, self.base * self.factor**attempt)
        return nominal / 2 + self.rng.uniform(0, nominal / 2)

    async def wait(self, attempt: int, minimum: float = 0.0) -> float:
        """Wait before retry number ``attempt`` (0-based); returns the delay used."""
        d = max(self.delay(attempt), minimum)
        await self.sleep(d)
        return d
