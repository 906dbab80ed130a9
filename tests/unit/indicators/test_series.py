"""Whole-series indicator maths against straightforward loop implementations."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from services.indicators import series as ind


@pytest.fixture
def closes() -> np.ndarray:
    rng = np.random.default_rng(42)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000)))


def ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    return np.array([np.nan if i < n - 1 else sum(x[i - n + 1 : i + 1]) / n for i in range(len(x))])


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    a = 2 / (n + 1)
    out[n - 1] = sum(x[:n]) / n
    for i in range(n, len(x)):
        out[i] = a * x[i] + (1 - a) * out[i - 1]
    return out


def ref_rsi(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    d = np.diff(x)
    g = [max(v, 0.0) for v in d]
    lo = [max(-v, 0.0) for v in d]
    ag, al = sum(g[:n]) / n, sum(lo[:n]) / n
    out[n] = 100 - 100 / (1 + ag / al)
    for i in range(n + 1, len(x)):
        ag = (ag * (n - 1) + g[i - 1]) / n
        al = (al * (n - 1) + lo[i - 1]) / n
        out[i] = 100 - 100 / (1 + ag / al)
    return out


@pytest.mark.parametrize("n", [1, 2, 20, 200])
def test_sma_matches_reference(closes: np.ndarray, n: int) -> None:
    np.testing.assert_allclose(ind.sma(closes, n), ref_sma(closes, n), rtol=1e-10, equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 9, 50, 400])
def test_ema_matches_loop(closes: np.ndarray, n: int) -> None:
    np.testing.assert_allclose(ind.ema(closes, n), ref_ema(closes, n), rtol=1e-9, equal_nan=True)


def test_ema_large_prices_long_series_stays_accurate() -> None:
    x = 60_000 + np.cumsum(np.random.default_rng(1).normal(0, 30, 50_000))
    np.testing.assert_allclose(ind.ema(x, 3), ref_ema(x, 3), rtol=1e-10, equal_nan=True)


def test_short_input_is_all_nan() -> None:
    assert np.isnan(ind.sma([1.0, 2.0], 3)).all()
    assert np.isnan(ind.ema([1.0, 2.0], 3)).all()
    assert np.isnan(ind.rsi([1.0, 2.0], 3)).all()


def test_bad_period_rejected() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="period"):
            ind.sma([1.0, 2.0], bad)  # type: ignore[arg-type]


def test_bollinger_matches_population_std(closes: np.ndarray) -> None:
    mid, up, lo = ind.bollinger(closes, 20, 2.0)
    i = 500
    w = closes[i - 19 : i + 1]
    assert mid[i] == pytest.approx(w.mean(), rel=1e-12)
    assert up[i] == pytest.approx(w.mean() + 2 * w.std(ddof=0), rel=1e-12)
    assert lo[i] == pytest.approx(w.mean() - 2 * w.std(ddof=0), rel=1e-12)
    assert np.isnan(mid[:19]).all() and not np.isnan(mid[19:]).any()
    assert ind.bollinger_last(closes, 20, 2.0) == pytest.approx((mid[-1], up[-1], lo[-1]), rel=1e-12)


def test_rsi_matches_wilder_loop(closes: np.ndarray) -> None:
    np.testing.assert_allclose(ind.rsi(closes, 14), ref_rsi(closes, 14), rtol=1e-9, equal_nan=True)


def test_rsi_edge_cases() -> None:
    assert ind.rsi(np.arange(30.0), 14)[-1] == 100.0  # only gains
    assert ind.rsi(np.full(30, 5.0), 14)[-1] == 50.0  # no movement
    assert ind.rsi(np.arange(30.0)[::-1], 14)[-1] == pytest.approx(0.0)


def test_incremental_last_values_equal_full_recompute(closes: np.ndarray) -> None:
    hist, new = closes[:-1], closes[-1]
    assert ind.sma_last(closes, 20) == pytest.approx(ind.sma(closes, 20)[-1], rel=1e-12)
    assert ind.ema_next(ind.ema(hist, 50)[-1], new, 50) == pytest.approx(ind.ema(closes, 50)[-1], rel=1e-12)
    state = ind.rsi_state(hist, 14)
    assert ind.rsi_next(state, hist[-1], new, 14) == pytest.approx(ind.rsi(closes, 14)[-1], rel=1e-10)


def test_vwap_session_resets_each_day() -> None:
    ny = ZoneInfo("America/New_York")
    times = [
        datetime(2024, 3, 8, 15, 0, tzinfo=ny),
        datetime(2024, 3, 8, 15, 1, tzinfo=ny),
        datetime(2024, 3, 11, 9, 30, tzinfo=ny),  # across a weekend and the DST change
        datetime(2024, 3, 11, 9, 31, tzinfo=ny),
    ]
    t = np.array([int(d.timestamp()) * 10**9 for d in times], dtype=np.int64)
    sessions = ind.session_ids(t, ny)
    assert sessions[0] == sessions[1] != sessions[2] == sessions[3]
    tp = np.array([10.0, 20.0, 30.0, 40.0])
    v = np.array([1.0, 3.0, 2.0, 2.0])
    out = ind.vwap_session(tp, v, sessions)
    np.testing.assert_allclose(out, [10.0, (10 + 60) / 4, 30.0, (60 + 80) / 4])


def test_session_ids_follow_local_midnight() -> None:
    ny = ZoneInfo("America/New_York")
    before = datetime(2024, 7, 1, 3, 59, tzinfo=UTC)  # 23:59 in New York, June 30
    after = datetime(2024, 7, 1, 4, 0, tzinfo=UTC)  # 00:00 in New York, July 1
    t = np.array([int(before.timestamp()) * 10**9, int(after.timestamp()) * 10**9])
    s = ind.session_ids(t, ny)
    assert s[1] - s[0] == 1
    assert ind.session_ids(t)[0] == ind.session_ids(t)[1]  # same UTC day


def test_vwap_rolling_matches_reference() -> None:
    rng = np.random.default_rng(3)
    tp = rng.uniform(90, 110, 200)
    v = rng.uniform(0, 1000, 200)
    out = ind.vwap_rolling(tp, v, 10)
    i = 57
    assert out[i] == pytest.approx((tp[i - 9 : i + 1] * v[i - 9 : i + 1]).sum() / v[i - 9 : i + 1].sum())
    assert np.isnan(out[:9]).all()
    assert math.isnan(ind.vwap_rolling(tp, np.zeros(200), 5)[-1])  # no volume → undefined
