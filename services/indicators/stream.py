"""Incremental (streaming) indicators: each ``update`` is O(1) (amortised O(1) for rolling min/max).

The strategies and the shadow features feed these one bar at a time. ``update`` uses only the
values given so far, so nothing here can look ahead. ``value`` is ``None`` until the window is
full. ``services.indicators.series`` computes the same indicators over a whole array at once (the
chart); ``tests/unit/indicators/test_agreement.py`` holds the two forms to the same values.
The one-step rules both forms share (``wilder_step``, ``rsi_from_averages``) live here.
"""

from __future__ import annotations

import math
from collections import deque


def wilder_step(average: float, x: float, n: int) -> float:
    """Wilder's smoothing: the running average after one more value ``x`` (alpha = 1/n)."""
    return (average * (n - 1) + x) / n


def rsi_from_averages(avg_gain: float, avg_loss: float) -> float:
    """RSI (0..100) from Wilder's average gain and loss. No losses reads 100 if there were gains;
    no movement at all reads 50 (neither side dominates)."""
    if avg_loss == 0.0:
        return 100.0 if avg_gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class SMA:
    """Simple moving average over ``n`` values (running sum over a ring buffer)."""

    __slots__ = ("_buf", "_i", "_n", "_sum", "count", "value")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("SMA window must be >= 1")
        self._n = n
        self._buf = [0.0] * n
        self._i = 0
        self._sum = 0.0
        self.count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        i = self._i
        self._sum += x - self._buf[i]
        self._buf[i] = x
        self._i = i + 1 if i + 1 < self._n else 0
        if self.count < self._n:
            self.count += 1
            if self.count < self._n:
                return None
        self.value = self._sum / self._n
        return self.value


class EMA:
    """Exponential moving average, seeded with the SMA of the first ``n`` values."""

    __slots__ = ("_alpha", "_n", "_seed", "count", "value")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("EMA window must be >= 1")
        self._n = n
        self._alpha = 2.0 / (n + 1)
        self._seed = 0.0
        self.count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self.count += 1
        if self.value is None:
            self._seed += x
            if self.count == self._n:
                self.value = self._seed / self._n
            return self.value
        self.value += self._alpha * (x - self.value)
        return self.value


class RSI:
    """Wilder's relative strength index over ``n`` changes (0..100)."""

    __slots__ = ("_avg_gain", "_avg_loss", "_n", "_prev", "count", "value")

    def __init__(self, n: int = 14) -> None:
        if n < 1:
            raise ValueError("RSI period must be >= 1")
        self._n = n
        self._prev: float | None = None
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self.count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev = self._prev
        self._prev = x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self._n
        self.count += 1
        if self.count <= n:
            self._avg_gain += gain / n
            self._avg_loss += loss / n
            if self.count < n:
                return None
        else:
            self._avg_gain = wilder_step(self._avg_gain, gain, n)
            self._avg_loss = wilder_step(self._avg_loss, loss, n)
        self.value = rsi_from_averages(self._avg_gain, self._avg_loss)
        return self.value


class RollingMeanStd:
    """Rolling mean and population standard deviation over ``n`` values."""

    __slots__ = ("_buf", "_i", "_n", "_sum", "_sumsq", "count", "mean", "std")

    def __init__(self, n: int) -> None:
        if n < 2:
            raise ValueError("rolling std window must be >= 2")
        self._n = n
        self._buf = [0.0] * n
        self._i = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self.count = 0
        self.mean: float | None = None
        self.std: float | None = None

    def update(self, x: float) -> float | None:
        i = self._i
        old = self._buf[i]
        self._sum += x - old
        self._sumsq += x * x - old * old
        self._buf[i] = x
        self._i = i + 1 if i + 1 < self._n else 0
        if self.count < self._n:
            self.count += 1
            if self.count < self._n:
                return None
        n = self._n
        mean = self._sum / n
        var = self._sumsq / n - mean * mean
        self.mean = mean
        self.std = math.sqrt(var) if var > 0.0 else 0.0
        return self.mean

    def zscore(self, x: float) -> float:
        """(x - mean) / std of the current window (0 when the window is flat or not full)."""
        if self.mean is None or not self.std:
            return 0.0
        return (x - self.mean) / self.std


class Bollinger:
    """Bollinger bands: SMA(n) ± k standard deviations."""

    __slots__ = ("_k", "_ms", "lower", "middle", "upper")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self._ms = RollingMeanStd(n)
        self._k = k
        self.middle: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, x: float) -> float | None:
        mid = self._ms.update(x)
        if mid is None:
            return None
        width = self._k * (self._ms.std or 0.0)
        self.middle = mid
        self.upper = mid + width
        self.lower = mid - width
        return mid


class RollingVWAP:
    """Volume-weighted average of the typical price over the last ``n`` bars."""

    __slots__ = ("_i", "_n", "_pv", "_pv_sum", "_v", "_v_sum", "count", "value")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("VWAP window must be >= 1")
        self._n = n
        self._pv = [0.0] * n
        self._v = [0.0] * n
        self._i = 0
        self._pv_sum = 0.0
        self._v_sum = 0.0
        self.count = 0
        self.value: float | None = None

    def update(self, price: float, volume: float) -> float | None:
        i = self._i
        pv = price * volume
        self._pv_sum += pv - self._pv[i]
        self._v_sum += volume - self._v[i]
        self._pv[i] = pv
        self._v[i] = volume
        self._i = i + 1 if i + 1 < self._n else 0
        if self.count < self._n:
            self.count += 1
            if self.count < self._n:
                return None
        self.value = self._pv_sum / self._v_sum if self._v_sum > 0 else price
        return self.value


class ATR:
    """Wilder's average true range over ``n`` bars."""

    __slots__ = ("_n", "_prev_close", "_seed", "count", "value")

    def __init__(self, n: int = 14) -> None:
        if n < 1:
            raise ValueError("ATR period must be >= 1")
        self._n = n
        self._prev_close: float | None = None
        self._seed = 0.0
        self.count = 0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev_close
        tr = high - low if pc is None else max(high - low, abs(high - pc), abs(low - pc))
        self._prev_close = close
        self.count += 1
        if self.value is None:
            self._seed += tr
            if self.count == self._n:
                self.value = self._seed / self._n
            return self.value
        self.value = wilder_step(self.value, tr, self._n)
        return self.value


class RollingExtreme:
    """Rolling minimum (``mode="min"``) or maximum over the last ``n`` values (monotonic deque)."""

    __slots__ = ("_dq", "_i", "_max", "_n", "value")

    def __init__(self, n: int, mode: str = "min") -> None:
        if n < 1:
            raise ValueError("window must be >= 1")
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self._n = n
        self._max = mode == "max"
        self._dq: deque[tuple[int, float]] = deque()
        self._i = 0
        self.value: float | None = None

    @property
    def full(self) -> bool:
        return self._i >= self._n

    def update(self, x: float) -> float:
        dq = self._dq
        if self._max:
            while dq and dq[-1][1] <= x:
                dq.pop()
        else:
            while dq and dq[-1][1] >= x:
                dq.pop()
        dq.append((self._i, x))
        self._i += 1
        if dq[0][0] <= self._i - 1 - self._n:
            dq.popleft()
        self.value = dq[0][1]
        return self.value
