from __future__ import annotations

import math
from decimal import Decimal

import pytest

from services.domain.models import Bar, Quote
from services.shadow.features import FEATURE_NAMES, FeatureEngine
from services.strategies.synthetic import synthetic_bars

from .support import T0


def vectors(bars: list[Bar]) -> list[tuple[float, ...] | None]:
    fe = FeatureEngine("AAPL")
    out = []
    for b in bars:
        v = fe.update(b)
        out.append(None if v is None else v.values)
    return out


def test_warm_up_and_values() -> None:
    bars = synthetic_bars("AAPL", 80, seed=4)
    fe = FeatureEngine("AAPL")
    fe.on_quote(Quote("AAPL", Decimal("99.99"), Decimal("100.01"), Decimal(1), Decimal(1), T0))
    out = [fe.update(b) for b in bars]
    assert all(v is None for v in out[:60]) and all(v is not None for v in out[60:])
    v = out[70]
    assert v is not None and len(v.values) == len(FEATURE_NAMES)
    d = v.as_dict()
    c = [float(b.close) for b in bars]
    assert d["ret_1"] == pytest.approx(math.log(c[70] / c[69]))
    assert d["ret_60"] == pytest.approx(math.log(c[70] / c[10]))
    assert d["spread_bps"] == pytest.approx(2.0)
    assert -0.5 <= d["rsi_14"] <= 0.5
    assert d["tod_sin"] ** 2 + d["tod_cos"] ** 2 == pytest.approx(1.0)


def test_features_never_depend_on_later_bars() -> None:
    bars = synthetic_bars("AAPL", 200, seed=8)
    k = 120
    mutated = bars[: k + 1] + [
        Bar(b.symbol, b.ts, b.open * 2, b.high * 2, b.low * 2, b.close * 2, b.volume * 5)
        for b in bars[k + 1 :]
    ]
    a, b = vectors(bars), vectors(mutated)
    assert a[: k + 1] == b[: k + 1]
    assert a[k + 1] != b[k + 1]  # the mutation is visible from the bar it happens on


def test_non_positive_close_is_refused() -> None:
    fe = FeatureEngine("AAPL")
    with pytest.raises(ValueError, match="non-positive close"):
        fe.update(Bar("AAPL", T0, Decimal(1), Decimal(1), Decimal(0), Decimal(0), Decimal(1)))
