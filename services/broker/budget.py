"""A token-bucket request budget with a reserve that only cancels may use.

Alpaca allows 200 requests a minute per key. Normal calls (reads, submits) may not take the last
``reserve`` tokens; cancels may, so a kill switch still gets its DELETEs out when reconciliation
and order entry have exhausted the budget. :meth:`RequestBudget.acquire` waits without blocking
the event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RequestKind(StrEnum):
    NORMAL = "normal"
    CANCEL = "cancel"


class RequestBudget:
    """Token bucket: ``per_minute`` tokens, refilled continuously; ``reserve_fraction`` for cancels.

    Runs on the event-loop thread only (not thread-safe by design: every caller is a coroutine on
    the one loop). ``clock`` is monotonic seconds; ``sleep`` is awaited while waiting for tokens.
    """

    def __init__(
        self,
        per_minute: int = 200,
        *,
        reserve_fraction: float = 0.2,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if not 0 <= reserve_fraction < 1:
            raise ValueError("reserve_fraction must be in [0, 1)")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.reserve = float(math.ceil(per_minute * reserve_fraction))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self.waits = 0
        self.waited_seconds = 0.0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)

    @property
    def available(self) -> float:
        """Tokens available right now (including the cancel reserve)."""
        self._refill()
        return self._tokens

    def _floor(self, kind: RequestKind) -> float:
        return 0.0 if kind is RequestKind.CANCEL else self.reserve

    def try_acquire(self, kind: RequestKind = RequestKind.NORMAL) -> bool:
        """Take a token now if the kind may; never waits."""
        self._refill()
        if self._tokens - 1.0 >= self._floor(kind) - 1e-9:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self, kind: RequestKind = RequestKind.NORMAL) -> float:
        """Seconds until a token of this kind would be available (0 when one is)."""
        self._refill()
        missing = self._floor(kind) + 1.0 - self._tokens
        return max(0.0, missing / self.rate)

    async def acquire(self, kind: RequestKind = RequestKind.NORMAL) -> float:
        """Wait (non-blocking) until a token may be taken, take it; returns seconds waited."""
        waited = 0.0
        while not self.try_acquire(kind):
            delay = max(self.wait_time(kind), 0.001)
            self.waits += 1
            await self._sleep(delay)
            waited += delay
        self.waited_seconds += waited
        return waited
