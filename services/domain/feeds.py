"""The feeds whose freshness Heron shows (stock and crypto market data, the trade updates stream)
and the verdict on one of them. Market data measures it (:mod:`services.marketdata.staleness`), the
broker's status derives the link's health from it (:mod:`services.broker.status`)."""

from __future__ import annotations

from dataclasses import dataclass

from services.domain.enums import Channel

#: The feeds whose freshness is shown: stock and crypto market data, and the trade updates stream.
FEEDS: tuple[str, ...] = (Channel.STOCK, Channel.CRYPTO, Channel.TRADING)
FEED_NAMES: dict[str, str] = {
    Channel.STOCK: "stock data",
    Channel.CRYPTO: "crypto data",
    Channel.TRADING: "trade updates",
}


@dataclass(frozen=True, slots=True)
class FeedVerdict:
    feed: str
    stale: bool
    age_seconds: float | None  # None: nothing received yet
    reason: str

    @property
    def label(self) -> str:
        """Short text: the feed's name, with its age when stale ("stock data 14 s old")."""
        name = FEED_NAMES.get(self.feed, self.feed)
        if self.age_seconds is None:
            return f"{name}: none yet"
        return f"{name} {describe_age(self.age_seconds)} old" if self.stale else f"{name} fresh"


def describe_age(seconds: float) -> str:
    """An age for a person: "14 s", "3 min", "2 h"."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
