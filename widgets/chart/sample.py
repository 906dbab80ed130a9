"""Deterministic sample bars (a seeded random walk) for the preview, tests and benchmarks.

Generated in code so no data files are needed. These are clearly synthetic and are only ever
shown by the preview (``python -m widgets.chart``), never by the terminal itself.
"""

from __future__ import annotations

import numpy as np

_MIN_NS = 60 * 10**9


def random_walk_bars(
    n: int,
    *,
    start_ns: int = 1_704_205_800 * 10**9,  # 2024-01-02 14:30 UTC (09:30 New York)
    step_ns: int = _MIN_NS,
    session_bars: int | None = None,
    start_price: float = 100.0,
    seed: int = 7,
) -> dict[str, np.ndarray]:
    """``n`` OHLCV bars. With ``session_bars`` set, bars come in daily sessions of that many bars
    (e.g. 390 one-minute bars from 09:30 New York), skipping nights and weekends, so the time axis
    has real gaps to collapse."""
    rng = np.random.default_rng(seed)
    if session_bars:
        day = np.arange(n) // session_bars
        within = np.arange(n) % session_bars
        # Map trading-day number to calendar day, skipping Saturdays and Sundays (start is a Tuesday).
        weekday0 = 1
        cal = day + 2 * ((day + weekday0) // 5)
        t = start_ns + cal * 86_400 * 10**9 + within * step_ns
    else:
        t = start_ns + np.arange(n, dtype=np.int64) * step_ns
    rets = rng.normal(0.0, 0.0012, n)
    rets += 0.0004 * np.sin(np.arange(n) / 250.0) * rng.normal(1.0, 0.3, n)
    close = start_price * np.exp(np.cumsum(rets))
    open_ = np.empty(n)
    open_[0] = start_price
    open_[1:] = close[:-1]
    spread = np.abs(rng.normal(0.0, 0.0009, (2, n))) * close
    high = np.maximum(open_, close) + spread[0]
    low = np.minimum(open_, close) - spread[1]
    vol = np.round(rng.lognormal(8.0, 0.6, n) * (1 + 4 * np.abs(rets) / 0.0012))
    return {"t": t.astype(np.int64), "o": open_, "h": high, "l": low, "c": close, "v": vol}
