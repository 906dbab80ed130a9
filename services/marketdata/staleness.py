"""Per-symbol data freshness: the risk gate refuses orders on stale prices, the UI greys them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
                symbol, True, age,
                f"{symbol} data is {age:.0f} s old (limit {self.max_age:.0f} s)",
            )
        return StalenessVerdict(symbol, False, age, f"{symbol} updated {max(age, 0.0):.1f} s ago")

    def is_stale(self, symbol: str, now: datetime) -> bool:
        return self.verdict(symbol, now).stale
