"""Per-key token bucket with Alpaca's 429 body and ``X-RateLimit-*`` headers."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.exchange.errors import TOO_MANY_REQUESTS
from services.exchange.http.auth import PRINCIPAL
from services.exchange.http.responses import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int  # Unix seconds when the bucket is full again


class RateLimiter:
    """``limit`` requests per minute per key, refilled continuously; ``limit <= 0`` disables it.

    ``clock`` returns monotonic seconds; ``wall`` returns Unix seconds (for the Reset header).
    """

    def __init__(
        self,
        limit_per_minute: int = 200,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = int(limit_per_minute)
        self._clock = clock
        self._wall = wall
        self._buckets: dict[str, _Bucket] = {}
        self.rejected = 0

    def check(self, key: str) -> Decision:
        """Take one token for ``key`` if there is one."""
        if self.limit <= 0:
            return Decision(True, 0, 0, int(self._wall()))
        now = self._clock()
        rate = self.limit / 60.0
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) > 10_000:  # anonymous peers must not grow this without bound
                self._buckets.clear()
            b = self._buckets[key] = _Bucket(float(self.limit), now)
        b.tokens = min(float(self.limit), b.tokens + (now - b.updated) * rate)
        b.updated = now
        allowed = b.tokens >= 1.0
        if allowed:
            b.tokens -= 1.0
        else:
            self.rejected += 1
        reset = self._wall() + (self.limit - b.tokens) / rate
        return Decision(allowed, self.limit, math.floor(b.tokens), math.ceil(reset))


def ratelimit_middleware(limiter: RateLimiter, *, exempt_prefixes: tuple[str, ...] = ()) -> Middleware:
    """Apply ``limiter`` to REST requests keyed by ``request[PRINCIPAL]`` (set by auth)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = request.get(PRINCIPAL)
        if limiter.limit <= 0 or principal in (None, "ws") or request.path.startswith(exempt_prefixes):
            return await handler(request)
        d = limiter.check(str(principal))
        headers = {
            "X-RateLimit-Limit": str(d.limit),
            "X-RateLimit-Remaining": str(d.remaining),
            "X-RateLimit-Reset": str(d.reset_epoch),
        }
        if not d.allowed:
            resp = json_error(429, TOO_MANY_REQUESTS, "too many requests")
            resp.headers.update(headers)
            return resp
        response = await handler(request)
        if not response.prepared:
            response.headers.update(headers)
        return response

    return middleware
