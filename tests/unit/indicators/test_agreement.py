"""The whole-series form (the chart) and the streaming form (the strategies) give the same values.

Same inputs, same warm-up (NaN in the series exactly where the stream still says None), and values
equal to within float rounding: the series form sums in a different order (cumulative sums,
blocked EMA filters), so the last bits may differ; nothing else may.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from services.indicators import series, stream


def walk(n: int = 4000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    x[300:340] = x[299]  # a flat stretch and a stretch of gains only: with n = 1 the RSI
    x[400:430] = x[399] + np.arange(30) * 0.01  # reads exactly 50 and 100 there
    return x


def streamed(update: Callable[[float], float | None], xs: Sequence[float] | np.ndarray) -> np.ndarray:
    out = np.empty(len(xs))
    for i, x in enumerate(xs):
        v = update(float(x))
        out[i] = math.nan if v is None else v
    return out


def agree(got: np.ndarray, want: np.ndarray, rtol: float = 1e-10, atol: float = 0.0) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # the same warm-up
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 14, 20, 200])
def test_sma(n: int) -> None:
    x = walk()
    agree(series.sma(x, n), streamed(stream.SMA(n).update, x))


@pytest.mark.parametrize("n", [1, 2, 12, 50, 200])
def test_ema(n: int) -> None:
    x = walk()
    agree(series.ema(x, n), streamed(stream.EMA(n).update, x))


@pytest.mark.parametrize("n", [1, 2, 14, 30])
def test_rsi(n: int) -> None:
    x = walk()
    want = streamed(stream.RSI(n).update, x)
    agree(series.rsi(x, n), want, rtol=0.0, atol=1e-9)
    if n == 1:
        assert (want == 50.0).any() and (want == 100.0).any()


def test_rsi_live_value_agrees_with_the_next_stream_value() -> None:
    """The chart's live-bar RSI (state + one more close) is the stream's next value."""
    x = walk(600)
    rsi = stream.RSI(14)
    values = streamed(rsi.update, x[:-1])
    assert not math.isnan(values[-1])
    live = series.rsi_next(series.rsi_state(x[:-1], 14), float(x[-2]), float(x[-1]), 14)
    assert live == pytest.approx(rsi.update(float(x[-1])), abs=1e-9)


@pytest.mark.parametrize("n", [5, 20])
def test_bollinger(n: int) -> None:
    x = walk()
    bands = stream.Bollinger(n, 2.0)
    rows = []
    for v in x:
        ready = bands.update(float(v)) is not None
        rows.append((bands.middle, bands.upper, bands.lower) if ready else (math.nan,) * 3)
    want = np.array(rows)
    # The stream keeps running sums of squares (O(1) a bar); the series takes each window's exact
    # deviation. Over a flat window the stream's sums leave a rounding residue of about 1e-12,
    # whose square root puts its bands about 3e-6 off the exact zero width; elsewhere they agree
    # to about 1e-10.
    got_bands = series.bollinger(x, n, 2.0)
    for got, column in zip(got_bands, want.T, strict=True):
        agree(got, column, rtol=0.0, atol=1e-5)
    moving = np.ones(x.shape[0], dtype=bool)
    moving[300 : 340 + n] = False
    for got, column in zip(got_bands, want.T, strict=True):
        agree(got[moving], column[moving], rtol=0.0, atol=1e-8)


@pytest.mark.parametrize("n", [1, 3, 30])
def test_rolling_vwap(n: int) -> None:
    x = walk()
    volume = np.random.default_rng(3).uniform(100, 1000, x.shape[0])
    vwap = stream.RollingVWAP(n)
    want = np.array(
        [
            math.nan if (r := vwap.update(float(p), float(v))) is None else r
            for p, v in zip(x, volume, strict=True)
        ]
    )
    agree(series.vwap_rolling(x, volume, n), want)
