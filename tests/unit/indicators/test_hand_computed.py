"""Both indicator forms against values worked out by hand (small inputs, exact arithmetic).

Each case is checked against the whole-series function (``series``) and the streaming class
(``stream``), so the two forms share one set of definitions as well as one set of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from services.indicators import series, stream

NAN = math.nan


def streamed(indicator: stream.SMA | stream.EMA | stream.RSI, xs: Sequence[float]) -> list[float]:
    """The stream form's value after each input, NaN where it has none yet (as the series form)."""
    out = []
    for x in xs:
        v = indicator.update(x)
        out.append(NAN if v is None else v)
    return out


def same(got: Sequence[float] | np.ndarray, want: Sequence[float]) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_sma_of_three() -> None:
    xs = [1.0, 2.0, 3.0, 4.0, 9.0]
    want = [NAN, NAN, 2.0, 3.0, 16.0 / 3]  # (1+2+3)/3, (2+3+4)/3, (3+4+9)/3
    same(series.sma(xs, 3), want)
    same(streamed(stream.SMA(3), xs), want)
    assert series.sma_last(xs, 3) == pytest.approx(16.0 / 3)


def test_ema_of_three_is_seeded_with_the_sma() -> None:
    # alpha = 2/(3+1) = 0.5; seed = mean(2, 4, 6) = 4; then 4 + 0.5*(8-4) = 6; 6 + 0.5*(4-6) = 5
    xs = [2.0, 4.0, 6.0, 8.0, 4.0]
    want = [NAN, NAN, 4.0, 6.0, 5.0]
    same(series.ema(xs, 3), want)
    same(streamed(stream.EMA(3), xs), want)
    assert series.ema_next(5.0, 7.0, 3) == 6.0


def test_rsi_of_two_with_wilder_smoothing() -> None:
    # changes +1, -1, +2, 0, -1. Seed over the first two: gain 0.5, loss 0.5 -> RSI 50.
    # +2: gain (0.5+2)/2 = 1.25, loss 0.5/2 = 0.25 -> RS 5 -> 100 - 100/6 = 250/3
    #  0: gain 0.625, loss 0.125 -> RS 5 -> 250/3
    # -1: gain 0.3125, loss (0.125+1)/2 = 0.5625 -> RS 5/9 -> 100 - 100*9/14 = 250/7
    xs = [10.0, 11.0, 10.0, 12.0, 12.0, 11.0]
    want = [NAN, NAN, 50.0, 250.0 / 3, 250.0 / 3, 250.0 / 7]
    same(series.rsi(xs, 2), want)
    same(streamed(stream.RSI(2), xs), want)
    assert series.rsi_state(xs, 2) == pytest.approx((0.3125, 0.5625))
    assert series.rsi_next((0.3125, 0.5625), 11.0, 12.0, 2) == pytest.approx(
        100 - 100 / (1 + ((0.3125 + 1) / 2) / (0.5625 / 2))
    )


@pytest.mark.parametrize(
    ("xs", "value"),
    [([1.0, 2.0, 3.0, 4.0], 100.0), ([5.0, 5.0, 5.0, 5.0], 50.0), ([4.0, 3.0, 2.0, 1.0], 0.0)],
)
def test_rsi_edges(xs: list[float], value: float) -> None:
    """Only gains read 100, no movement reads 50, only losses read 0."""
    assert series.rsi(xs, 2)[-1] == value
    assert streamed(stream.RSI(2), xs)[-1] == value


def test_shared_one_step_rules() -> None:
    assert stream.wilder_step(1.0, 4.0, 3) == 2.0  # (1*2 + 4) / 3
    assert stream.rsi_from_averages(1.0, 3.0) == 25.0  # RS 1/3 -> 100 - 100/(4/3)
    assert stream.rsi_from_averages(1.0, 0.0) == 100.0
    assert stream.rsi_from_averages(0.0, 0.0) == 50.0


def test_bollinger_of_three_uses_population_std() -> None:
    # window [1, 2, 3]: mean 2, population variance (1+0+1)/3 = 2/3
    xs = [1.0, 2.0, 3.0]
    width = 2.0 * math.sqrt(2.0 / 3.0)
    mid, upper, lower = series.bollinger(xs, 3, 2.0)
    same(mid, [NAN, NAN, 2.0])
    same(upper, [NAN, NAN, 2.0 + width])
    same(lower, [NAN, NAN, 2.0 - width])
    bands = stream.Bollinger(3, 2.0)
    for x in xs:
        bands.update(x)
    assert (bands.middle, bands.upper, bands.lower) == pytest.approx((2.0, 2.0 + width, 2.0 - width))


def test_rolling_vwap_of_two() -> None:
    tp, v = [10.0, 20.0, 30.0], [1.0, 3.0, 1.0]
    want = [NAN, 17.5, 22.5]  # (10*1 + 20*3)/4, (20*3 + 30*1)/4
    same(series.vwap_rolling(tp, v, 2), want)
    vwap = stream.RollingVWAP(2)
    same([NAN if (r := vwap.update(p, q)) is None else r for p, q in zip(tp, v, strict=True)], want)


def test_session_vwap_restarts_each_session() -> None:
    tp, v, sessions = [10.0, 20.0, 30.0, 40.0], [1.0, 1.0, 2.0, 2.0], [0, 0, 1, 1]
    same(series.vwap_session(tp, v, sessions), [10.0, 15.0, 30.0, 35.0])


def test_atr_of_two() -> None:
    # true ranges 2, max(2, 2, 0) = 2, max(3, 2, 1) = 3, max(1, 0, 1) = 1
    # seed (2+2)/2 = 2; (2*1 + 3)/2 = 2.5; (2.5*1 + 1)/2 = 1.75
    atr = stream.ATR(2)
    got = [atr.update(h, lo, c) for h, lo, c in ((11, 9, 10), (12, 10, 11), (13, 10, 12), (12, 11, 11))]
    assert got == [None, 2.0, 2.5, 1.75]
