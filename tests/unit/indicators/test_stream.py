from __future__ import annotations

import itertools
import math
import random

import pytest

from services.indicators.stream import (
    ATR,
    EMA,
    RSI,
    SMA,
    Bollinger,
    RollingExtreme,
    RollingMeanStd,
    RollingVWAP,
)


def series(n: int = 300, seed: int = 5) -> list[float]:
    rng = random.Random(seed)
    x, out = 100.0, []
    for _ in range(n):
        x += rng.gauss(0, 1)
        out.append(x)
    return out


def test_sma_and_rolling_std_match_naive_windows() -> None:
    xs = series()
    sma, ms, bb = SMA(7), RollingMeanStd(7), Bollinger(7, 2.0)
    for i, x in enumerate(xs):
        v = sma.update(x)
        ms.update(x)
        bb.update(x)
        if i < 6:
            assert v is None and ms.mean is None
            continue
        window = xs[i - 6 : i + 1]
        mean = sum(window) / 7
        std = math.sqrt(sum((w - mean) ** 2 for w in window) / 7)
        assert v == pytest.approx(mean, rel=1e-9)
        assert ms.std == pytest.approx(std, rel=1e-6, abs=1e-9)
        assert bb.upper == pytest.approx(mean + 2 * std, rel=1e-6)


def test_rolling_extremes_match_naive() -> None:
    xs = series(seed=9)
    lo, hi = RollingExtreme(5, "min"), RollingExtreme(5, "max")
    for i, x in enumerate(xs):
        assert lo.update(x) == min(xs[max(0, i - 4) : i + 1])
        assert hi.update(x) == max(xs[max(0, i - 4) : i + 1])
        assert lo.full == (i >= 4)


def test_rsi_matches_wilder_reference() -> None:
    xs = series(50, seed=3)
    rsi = RSI(14)
    values = [rsi.update(x) for x in xs]
    gains = [max(b - a, 0) for a, b in itertools.pairwise(xs)]
    losses = [max(a - b, 0) for a, b in itertools.pairwise(xs)]
    ag, al = sum(gains[:14]) / 14, sum(losses[:14]) / 14
    expected = [100 - 100 / (1 + ag / al)]
    for g, lo in zip(gains[14:], losses[14:], strict=True):
        ag, al = (ag * 13 + g) / 14, (al * 13 + lo) / 14
        expected.append(100 - 100 / (1 + ag / al))
    assert values[:14] == [None] * 14
    assert values[14:] == pytest.approx(expected, rel=1e-9)
    flat = RSI(3)
    assert [flat.update(1.0) for _ in range(5)][-1] == 50.0


def test_vwap_ema_atr() -> None:
    v = RollingVWAP(2)
    assert v.update(10, 1) is None
    assert v.update(20, 3) == pytest.approx(17.5)
    assert v.update(30, 1) == pytest.approx((60 + 30) / 4)
    e = EMA(3)
    assert [e.update(x) for x in (1, 2, 3)] == [None, None, 2.0]
    assert e.update(4) == pytest.approx(3.0)
    a = ATR(2)
    assert a.update(10, 8, 9) is None
    assert a.update(12, 9, 11) == pytest.approx((2 + 3) / 2)  # TR = max(3, |12-9|, |9-9|) = 3
    with pytest.raises(ValueError):
        SMA(0)
