"""Data freshness: per symbol (the risk gate refuses orders on stale prices, the UI greys them
out) and per feed (the newest message on the stock feed, the crypto feed and the trade updates
stream, for the status bar and the state report)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.domain.feeds import FEED_NAMES, FeedVerdict, describe_age


@dataclass(frozen=True, slots=True)
class StalenessVerdict:
    symbol: str
    stale: bool
    age_seconds: float | None  # None: never updated
    reason: str


class StalenessGuard:
    """Remembers when each symbol last had market data (receive time, epoch seconds).

    ``touch`` may be called from the market-data thread and ``verdict`` from the loop thread: one
    float per key is written with a single dict assignment, which is atomic under the GIL.
    """

    def __init__(self, max_age_seconds: float = 90.0) -> None:
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self.max_age = max_age_seconds
        self._last: dict[str, float] = {}
        #: The newest message per feed (receive time), fed by the connections.
        self.feeds = FeedFreshness()

    def touch(self, symbol: str, at: datetime | float) -> None:
        self._last[symbol] = at if isinstance(at, float) else at.timestamp()

    def last_update(self, symbol: str) -> float | None:
        return self._last.get(symbol)

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)

    def verdict(self, symbol: str, now: datetime) -> StalenessVerdict:
        last = self._last.get(symbol)
        if last is None:
            return StalenessVerdict(symbol, True, None, f"no market data received for {symbol}")
        age = now.timestamp() - last
        if age > self.max_age:
            return StalenessVerdict(
                symbol,
                True,
                age,
                f"{symbol} data is {age:.0f} s old (limit {self.max_age:.0f} s)",
            )
        return StalenessVerdict(symbol, False, age, f"{symbol} updated {max(age, 0.0):.1f} s ago")

    def is_stale(self, symbol: str, now: datetime) -> bool:
        return self.verdict(symbol, now).stale


class FeedFreshness:
    """The receive time (epoch seconds) of the newest message on each feed.

    ``heard`` may be called from the market-data thread and ``verdict`` from the loop thread (one
    float per key, a single dict assignment). ``max_age`` is per feed, with ``default_max_age`` for
    the rest; ``wall`` is the injectable clock.
    """

    def __init__(
        self,
        default_max_age: float = 10.0,
        max_age: dict[str, float] | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if default_max_age <= 0 or any(v <= 0 for v in (max_age or {}).values()):
            raise ValueError("feed ages must be positive")
        self.default_max_age = default_max_age
        self.max_age = dict(max_age or {})
        self.wall = wall
        self._last: dict[str, float] = {}

    def heard(self, feed: str, at: float | None = None) -> None:
        t = self.wall() if at is None else at
        if t > self._last.get(feed, 0.0):
            self._last[feed] = t

    def last(self, feed: str) -> float | None:
        return self._last.get(feed)

    def verdict(self, feed: str, now: float | None = None) -> FeedVerdict:
        t = self.wall() if now is None else now
        limit = self.max_age.get(feed, self.default_max_age)
        name = FEED_NAMES.get(feed, feed)
        last = self._last.get(feed)
        if last is None:
            return FeedVerdict(feed, True, None, f"no {name} message received yet")
        age = max(0.0, t - last)
        if age > limit:
            return FeedVerdict(
                feed, True, age, f"newest {name} message is {describe_age(age)} old (limit {limit:.0f} s)"
            )
        return FeedVerdict(feed, False, age, f"newest {name} message {age:.1f} s ago")
