"""Deterministic generated history (a seeded random walk of one-minute bars) for replays and benches.

Not market data and never shown as such: it exists so a backtest, a test or a benchmark can run
without a stored history. Same seed, same bars, on every machine.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.domain.enums import Timeframe
from services.domain.models import Bar

#: when generated history starts unless told otherwise (a Tuesday's US open)
DEFAULT_START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def synthetic_range(
    count: int, *, start: datetime | None = None, timeframe: Timeframe = Timeframe.MIN_1
) -> tuple[datetime, datetime]:
    """The times of the first and last of ``count`` (>= 1) generated bars: back to back, with no
    session gaps."""
    first = start or DEFAULT_START
    return first, first + timedelta(seconds=timeframe.seconds) * (max(count, 1) - 1)


def synthetic_bars(
    symbol: str,
    count: int,
    *,
    seed: int = 1,
    start: datetime | None = None,
    timeframe: Timeframe = Timeframe.MIN_1,
    start_price: Decimal = Decimal(100),
    volatility_bps: float = 8.0,
) -> list[Bar]:
    """``count`` bars of ``symbol``; prices in cents, volumes whole shares, timestamps UTC."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(seed)
    ts = start or DEFAULT_START
    step = timedelta(seconds=timeframe.seconds)
    cents = int(start_price * 100)
    sigma = volatility_bps / 10_000.0
    bars: list[Bar] = []
    drift = 0.0
    for _ in range(count):
        drift = 0.95 * drift + rng.gauss(0.0, sigma * 0.05)  # short regimes so trends exist
        open_c = cents
        close_c = max(1, round(open_c * (1.0 + drift + rng.gauss(0.0, sigma))))
        wick = abs(rng.gauss(0.0, sigma)) * open_c
        high_c = max(open_c, close_c) + round(wick * rng.random())
        low_c = max(1, min(open_c, close_c) - round(wick * rng.random()))
        volume = 100 + int(rng.expovariate(1 / 900))
        bars.append(
            Bar(
                symbol=symbol,
                ts=ts,
                open=Decimal(open_c).scaleb(-2),
                high=Decimal(high_c).scaleb(-2),
                low=Decimal(low_c).scaleb(-2),
                close=Decimal(close_c).scaleb(-2),
                volume=Decimal(volume),
            )
        )
        cents = close_c
        ts += step
    return bars
