"""Bars of a configurable interval built from the per-frame trade statistics of live batches."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.domain.models import Bar
from services.marketdata.coalescer import TradeStats
from services.marketdata.intervals import IntervalBarBuilder


def _stats(last: float, high: float, low: float, volume: float) -> TradeStats:
    return TradeStats(last, high, low, volume, 1, 0)


def test_interval_bars_close_on_the_next_bucket_with_exact_high_low_volume() -> None:
    out: list[Bar] = []
    b = IntervalBarBuilder(5, [out.extend], wall=lambda: 0.0)
    b.add("AAPL", _stats(10.0, 10.5, 9.5, 3), 100.0)
    b.add("AAPL", _stats(11.0, 11.2, 10.8, 2), 103.0)
    assert out == []
    b.add("AAPL", _stats(12.0, 12.0, 12.0, 1), 105.0)  # next 5-second bucket
    (bar,) = out
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("10.0"),
        Decimal("11.2"),
        Decimal("9.5"),
        Decimal("11.0"),
        Decimal("5"),
    )
    assert bar.ts.timestamp() == 100.0
    b.close_due(111.0)
    assert len(out) == 2 and out[1].open == Decimal("11.0")  # opens at the previous close


@pytest.mark.expected_log(r"^services\.marketdata\.intervals: a bar consumer failed; the others still")
def test_a_failing_bar_consumer_does_not_starve_the_others() -> None:
    got: list[Bar] = []

    def boom(_: list[Bar]) -> None:
        raise RuntimeError("x")

    b = IntervalBarBuilder(1, [boom, got.extend])
    b.add("MSFT", _stats(1.0, 1.0, 1.0, 1), 10.0)
    b.close_due(12.0)
    assert len(got) == 1
