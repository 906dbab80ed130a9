"""Incremental feature engineering for shadow models, from bars (and quotes when there are some).

Every feature at bar *t* uses bars up to and including *t* and quotes received before *t*'s
update; nothing reads ahead. The same :class:`FeatureEngine` computes features live and for
training, so the model sees identical inputs in both.

Features (``FEATURE_NAMES`` order):

* ``ret_1``, ``ret_5``, ``ret_15``, ``ret_60``: log returns of the close over 1/5/15/60 bars
* ``vol_20``: realised volatility, population std of the last 20 one-bar log returns
* ``rsi_14``: Wilder RSI rescaled to -0.5..0.5
* ``volume_z_20``: z-score of this bar's volume against the 20 bars before it
* ``range_pct``: (high - low) / close of this bar
* ``spread_bps``: last quote's spread in basis points of the mid (0 when no quote was seen, e.g.
  in training from stored bars)
* ``tod_sin``, ``tod_cos``: time of day (UTC) on the unit circle
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.domain.models import Bar, Quote
from services.indicators.stream import RSI, RollingMeanStd

FEATURE_NAMES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_15",
    "ret_60",
    "vol_20",
    "rsi_14",
    "volume_z_20",
    "range_pct",
    "spread_bps",
    "tod_sin",
    "tod_cos",
)
_HORIZONS = (1, 5, 15, 60)
_LONGEST = max(_HORIZONS)
_TAU = 2.0 * math.pi


@dataclass(frozen=True, slots=True)
class FeatureVector:
    symbol: str
    ts: datetime
    close: Decimal
    values: tuple[float, ...]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values, strict=True))


class FeatureEngine:
    """Features for one symbol. ``update(bar)`` returns a vector once warmed up (61 bars), else None."""

    __slots__ = ("_closes", "_i", "_n", "_rets", "_rsi", "_spread_bps", "_volume", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._closes = [0.0] * (_LONGEST + 1)  # ring of log closes
        self._i = 0
        self._n = 0
        self._rets = RollingMeanStd(20)
        self._rsi = RSI(14)
        self._volume = RollingMeanStd(20)
        self._spread_bps = 0.0

    def on_quote(self, quote: Quote) -> None:
        if quote.bid > 0 and quote.ask >= quote.bid:
            mid = float(quote.mid)
            self._spread_bps = float(quote.ask - quote.bid) / mid * 10_000.0

    def update(self, bar: Bar) -> FeatureVector | None:
        close = float(bar.close)
        if close <= 0:
            raise ValueError(f"{bar.symbol} bar at {bar.ts.isoformat()} has a non-positive close")
        log_close = math.log(close)
        size = _LONGEST + 1
        ring = self._closes
        i = self._i
        prev = ring[(i - 1) % size] if self._n else log_close
        ring[i] = log_close
        self._i = (i + 1) % size
        self._n += 1
        if self._n > 1:
            self._rets.update(log_close - prev)
        rsi = self._rsi.update(close)
        volume = float(bar.volume)
        volume_z = self._volume.zscore(volume)  # window before this bar
        self._volume.update(volume)
        if self._n <= _LONGEST or rsi is None or self._rets.std is None:
            return None
        rets = tuple(log_close - ring[(i - h) % size] for h in _HORIZONS)
        minutes = bar.ts.hour * 60 + bar.ts.minute
        angle = _TAU * minutes / 1440.0
        values = (
            *rets,
            self._rets.std,
            rsi / 100.0 - 0.5,
            volume_z,
            (float(bar.high) - float(bar.low)) / close,
            self._spread_bps,
            math.sin(angle),
            math.cos(angle),
        )
        return FeatureVector(bar.symbol, bar.ts, bar.close, values)
