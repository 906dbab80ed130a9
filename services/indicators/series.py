"""Whole-series indicators in numpy: the chart computes these over its full history.

Every full-series function returns float64 arrays the length of its input, NaN where the window
is not yet full. The ``*_next`` / ``*_last`` helpers give the value for one more (live) bar from
the previous state in O(1) or O(window), which is what a tick needs; the ``*_extend`` helpers
continue a series by the bars appended to it.

These are the vectorised form of ``services.indicators.stream`` (same windows, seeds and
conventions: SMA-seeded EMA, Wilder RSI, population standard deviation); the one-step helpers use
the stream form's rules, and ``tests/unit/indicators/test_agreement.py`` holds the two together.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
import numpy.typing as npt

from services.indicators.stream import rsi_from_averages, wilder_step

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_NS_PER_DAY = 86_400 * 10**9
_NS_PER_HOUR = 3_600 * 10**9


def _as_f64(x: npt.ArrayLike, name: str = "x") -> F64:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_period(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"period must be a positive integer, got {n!r}")
    return int(n)


# ------------------------------------------------------------------------------------------ SMA


def sma(x: npt.ArrayLike, n: int) -> F64:
    """Simple moving average over ``n`` values (NaN for the first n-1)."""
    x = _as_f64(x)
    n = _check_period(n)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    # Windowed sums from a cumulative sum; shifting by the first value keeps the running total
    # small so long series of large prices do not lose digits.
    ref = x[0]
    cs = np.cumsum(x - ref)
    sums = cs[n - 1 :].copy()
    sums[1:] -= cs[:-n]
    out[n - 1 :] = sums / n + ref
    return out


def sma_last(x: npt.ArrayLike, n: int) -> float:
    """SMA of the last ``n`` values (NaN if there are fewer)."""
    x = _as_f64(x)
    n = _check_period(n)
    if x.shape[0] < n:
        return math.nan
    return float(x[-n:].mean())


# ------------------------------------------------------------------------------------------ EMA


def _ema_filter(x: F64, alpha: float, y0: float) -> F64:
    """y[i] = alpha*x[i] + (1-alpha)*y[i-1], with y[-1] = y0, vectorised in blocks.

    Inside a block of length B the recurrence has the closed form
    y[j] = (1-a)^(j+1) * y0 + a * (1-a)^j * cumsum(x[i] * (1-a)^-i)[j]; B is chosen so (1-a)^-B
    stays far from overflow. The block carries are a short Python loop (N / B iterations).
    """
    m = x.shape[0]
    if m == 0:
        return np.empty(0)
    if alpha >= 1.0:
        return x.copy()
    beta = 1.0 - alpha
    # (1-a)^-B <= 1e150  →  B <= 150 * ln(10) / -ln(1-a)
    block = int(max(1, min(4096, math.floor(150 * math.log(10) / -math.log(beta)))))
    nblk = -(-m // block)
    pad = nblk * block - m
    xb = np.concatenate((x, np.zeros(pad))).reshape(nblk, block)
    j = np.arange(block, dtype=np.float64)
    inv_pow = beta ** (-j)
    pow_j = beta**j
    local = alpha * pow_j * np.cumsum(xb * inv_pow, axis=1)  # each block started from 0
    carry_w = beta ** (j + 1)  # weight of the incoming carry at position j
    out = np.empty_like(xb)
    prev = y0
    for b in range(nblk):
        row = local[b] + carry_w * prev
        out[b] = row
        prev = row[-1]
    return out.reshape(-1)[:m]


def ema(x: npt.ArrayLike, n: int) -> F64:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first ``n`` values.

    NaN for the first n-1 values (the TA-Lib convention).
    """
    x = _as_f64(x)
    n = _check_period(n)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    seed = float(x[:n].mean())
    out[n - 1] = seed
    out[n:] = _ema_filter(x[n:], 2.0 / (n + 1), seed)
    return out


def ema_next(prev: float, x: float, n: int) -> float:
    """The EMA value after ``x`` given the previous EMA ``prev`` (NaN stays NaN)."""
    alpha = 2.0 / (_check_period(n) + 1)
    return alpha * x + (1.0 - alpha) * prev


# ------------------------------------------------------------------------------------ Bollinger


def rolling_std(x: npt.ArrayLike, n: int) -> F64:
    """Population standard deviation over ``n`` values (NaN for the first n-1)."""
    x = _as_f64(x)
    n = _check_period(n)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    # Two-pass per window (exact, no cancellation from running sums of squares).
    win = np.lib.stride_tricks.sliding_window_view(x, n)
    chunk = max(1, 2_000_000 // n)
    for a in range(0, win.shape[0], chunk):
        w = win[a : a + chunk]
        out[n - 1 + a : n - 1 + a + w.shape[0]] = w.std(axis=1)
    return out


def bollinger(x: npt.ArrayLike, n: int = 20, k: float = 2.0) -> tuple[F64, F64, F64]:
    """Bollinger bands: (middle = SMA(n), upper = mid + k*std, lower = mid - k*std), population std."""
    if not math.isfinite(k) or k < 0:
        raise ValueError(f"band width k must be a finite non-negative number, got {k!r}")
    mid = sma(x, n)
    sd = rolling_std(x, n)
    return mid, mid + k * sd, mid - k * sd


def bollinger_last(x: npt.ArrayLike, n: int = 20, k: float = 2.0) -> tuple[float, float, float]:
    x = _as_f64(x)
    n = _check_period(n)
    if x.shape[0] < n:
        return math.nan, math.nan, math.nan
    w = x[-n:]
    mid, sd = float(w.mean()), float(w.std())
    return mid, mid + k * sd, mid - k * sd


# ------------------------------------------------------------------------------------------ RSI


def _wilder_state(x: F64, n: int) -> tuple[F64, F64]:
    """Wilder-smoothed average gain and loss per index (NaN before index n)."""
    m = x.shape[0]
    gain = np.full(m, np.nan)
    loss = np.full(m, np.nan)
    if m <= n:
        return gain, loss
    d = np.diff(x)
    g = np.where(d > 0, d, 0.0)
    lo = np.where(d < 0, -d, 0.0)
    g0, l0 = float(g[:n].mean()), float(lo[:n].mean())
    gain[n] = g0
    loss[n] = l0
    gain[n + 1 :] = _ema_filter(g[n:], 1.0 / n, g0)
    loss[n + 1 :] = _ema_filter(lo[n:], 1.0 / n, l0)
    return gain, loss


def _rsi_from(avg_gain: F64 | float, avg_loss: F64 | float) -> F64:
    """``rsi_from_averages`` over arrays."""
    g = np.asarray(avg_gain, dtype=np.float64)
    lo = np.asarray(avg_loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + g / lo)
    # No losses: 100 if there were gains; no movement at all: 50 (neither side dominates).
    out = np.where((lo == 0) & (g > 0), 100.0, out)
    out = np.where((lo == 0) & (g == 0), 50.0, out)
    return np.asarray(out, dtype=np.float64)


def rsi(x: npt.ArrayLike, n: int = 14) -> F64:
    """Relative Strength Index with Wilder's smoothing (alpha = 1/n), seeded with the mean of the
    first ``n`` changes. NaN for the first ``n`` values. A window with no losses reads 100; one
    with no movement at all reads 50.
    """
    x = _as_f64(x)
    n = _check_period(n)
    gain, loss = _wilder_state(x, n)
    return _rsi_from(gain, loss)


def rsi_state(x: npt.ArrayLike, n: int = 14) -> tuple[float, float]:
    """(average gain, average loss) after the last value of ``x``: the state ``rsi_next`` needs."""
    x = _as_f64(x)
    gain, loss = _wilder_state(x, _check_period(n))
    if x.shape[0] <= n:
        return math.nan, math.nan
    return float(gain[-1]), float(loss[-1])


def rsi_next(state: tuple[float, float], prev_close: float, close: float, n: int = 14) -> float:
    """RSI for one more value ``close`` from ``rsi_state`` of the series ending at ``prev_close``."""
    n = _check_period(n)
    g0, l0 = state
    d = close - prev_close
    return rsi_from_averages(wilder_step(g0, max(d, 0.0), n), wilder_step(l0, max(-d, 0.0), n))


# ----------------------------------------------------------------------------------------- VWAP


def typical_price(h: npt.ArrayLike, low: npt.ArrayLike, c: npt.ArrayLike) -> F64:
    return (_as_f64(h, "h") + _as_f64(low, "l") + _as_f64(c, "c")) / 3.0


def session_ids(t_ns: npt.ArrayLike, tz: tzinfo = UTC) -> I64:
    """Calendar day of each timestamp in ``tz`` (days since the epoch), DST-aware.

    The UTC offset is looked up once per distinct UTC hour (offsets change on hour boundaries in
    every market time zone), so this is cheap for long series.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    if t.size == 0:
        return np.empty(0, dtype=np.int64)
    hours = t // _NS_PER_HOUR
    uniq, inv = np.unique(hours, return_inverse=True)
    offsets = np.empty(uniq.shape[0], dtype=np.int64)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for i, hour in enumerate(uniq.tolist()):
        off = (epoch + timedelta(hours=hour)).astimezone(tz).utcoffset()
        offsets[i] = 0 if off is None else int(off.total_seconds()) * 10**9
    return np.asarray((t + offsets[inv.reshape(-1)]) // _NS_PER_DAY, dtype=np.int64)


def vwap_session(tp: npt.ArrayLike, v: npt.ArrayLike, sessions: npt.ArrayLike) -> F64:
    """Volume-weighted average price that restarts at each new session id.

    ``tp`` is the price per bar (usually the typical price), ``sessions`` one id per bar
    (non-decreasing, e.g. from ``session_ids``). Before any volume in a session the value is NaN.
    """
    tp = _as_f64(tp, "tp")
    v = _as_f64(v, "v")
    s = np.asarray(sessions)
    if not (tp.shape == v.shape == s.shape):
        raise ValueError(f"tp, v and sessions must have equal lengths, got {tp.shape}, {v.shape}, {s.shape}")
    m = tp.shape[0]
    if m == 0:
        return np.empty(0)
    pv = np.cumsum(tp * v)
    cv = np.cumsum(v)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    # Subtract the running totals as they stood just before each session began.
    seg = np.repeat(starts, np.diff(np.append(starts, m)))
    base_pv = np.where(seg > 0, pv[seg - 1], 0.0)
    base_cv = np.where(seg > 0, cv[seg - 1], 0.0)
    num = pv - base_pv
    den = cv - base_cv
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / den, np.nan)
    return np.asarray(out, dtype=np.float64)


def vwap_rolling(tp: npt.ArrayLike, v: npt.ArrayLike, n: int) -> F64:
    """VWAP over the last ``n`` bars (NaN for the first n-1 and for windows with no volume)."""
    tp = _as_f64(tp, "tp")
    v = _as_f64(v, "v")
    n = _check_period(n)
    if tp.shape != v.shape:
        raise ValueError(f"tp and v must have equal lengths, got {tp.shape} and {v.shape}")
    out = np.full(tp.shape[0], np.nan)
    if tp.shape[0] < n:
        return out
    pv = np.cumsum(tp * v)
    cv = np.cumsum(v)
    num = pv[n - 1 :].copy()
    num[1:] -= pv[:-n]
    den = cv[n - 1 :].copy()
    den[1:] -= cv[:-n]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n - 1 :] = np.where(den > 0, num / den, np.nan)
    return out


# ----------------------------------------------------------------------------- tail extension
# When bars are appended, only the new values are computed, from the previous values/state.


def ema_extend(prev: float, x_tail: npt.ArrayLike, n: int) -> F64:
    """EMA values for ``x_tail`` continuing from the previous EMA value ``prev``."""
    return _ema_filter(_as_f64(x_tail), 2.0 / (_check_period(n) + 1), float(prev))


def rsi_extend(
    state: tuple[float, float], closes: npt.ArrayLike, n: int = 14
) -> tuple[F64, tuple[float, float]]:
    """RSI for ``closes[1:]`` given the Wilder state after ``closes[0]`` (from ``rsi_state``).

    Returns the new values and the state after the last close.
    """
    n = _check_period(n)
    x = _as_f64(closes)
    if x.shape[0] < 2:
        return np.empty(0), state
    d = np.diff(x)
    g = _ema_filter(np.where(d > 0, d, 0.0), 1.0 / n, state[0])
    lo = _ema_filter(np.where(d < 0, -d, 0.0), 1.0 / n, state[1])
    return _rsi_from(g, lo), (float(g[-1]), float(lo[-1]))


def vwap_session_extend(
    carry: tuple[int, float, float] | None, tp: npt.ArrayLike, v: npt.ArrayLike, sessions: npt.ArrayLike
) -> tuple[F64, tuple[int, float, float] | None]:
    """Session VWAP for new bars continuing a session in progress.

    ``carry`` is (session id, Σ price·volume, Σ volume) of the session the previous bars ended in.
    Returns the new values and the carry after the last new bar.
    """
    tp_a, v_a, s_a = _as_f64(tp, "tp"), _as_f64(v, "v"), np.asarray(sessions, dtype=np.int64)
    if tp_a.shape[0] == 0:
        return np.empty(0), carry
    if carry is not None and carry[2] > 0:
        # The carried session acts as one earlier bar with its VWAP as price and its volume.
        tp_a = np.concatenate(([carry[1] / carry[2]], tp_a))
        v_a = np.concatenate(([carry[2]], v_a))
        s_a = np.concatenate(([carry[0]], s_a))
        out = vwap_session(tp_a, v_a, s_a)[1:]
    else:
        out = vwap_session(tp_a, v_a, s_a)
    last = int(s_a[-1])
    start = int(np.searchsorted(s_a, last, side="left"))
    pv = float(np.sum(tp_a[start:] * v_a[start:]))
    cv = float(np.sum(v_a[start:]))
    return out, (last, pv, cv)
