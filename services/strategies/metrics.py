"""Performance figures of an equity curve, shared by the backtest and the strategy lab.

Pure functions over Decimal equity values: no state, no I/O, cheap to import on a worker.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from decimal import Decimal


def max_drawdown(equity: Sequence[Decimal]) -> float:
    """Largest peak-to-trough fall as a fraction of the peak (0.0 for a curve that never falls)."""
    peak: Decimal | None = None
    worst = 0.0
    for e in equity:
        if peak is None or e > peak:
            peak = e
        elif peak > 0:
            dd = float((peak - e) / peak)
            if dd > worst:
                worst = dd
    return worst


def sharpe_ratio(equity: Sequence[Decimal], periods_per_year: float) -> float | None:
    """Annualised Sharpe ratio of per-period simple returns (risk-free 0, sample std).

    None when there are fewer than two returns or the returns do not vary.
    """
    values = [float(e) for e in equity]
    returns = [b / a - 1.0 for a, b in itertools.pairwise(values) if a != 0]
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)
