"""What a worker reports for one point (run here, without a cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.domain.enums import Timeframe
from services.lab.packing import pack_bars
from services.lab.tasks import Costs, Dataset, run_point
from services.strategies.backtest import BacktestConfig, run_backtest
from services.strategies.builtin import builtin_registry
from services.strategies.synthetic import synthetic_bars


def test_an_out_of_sample_point_reports_the_cash_plus_its_own_profit_as_final_equity() -> None:
    """A run measured from a later bar (walk-forward out of sample): its final equity is the spec's
    cash plus the profit made inside the measured window, as its total return says, not the equity
    carried over from the in-sample warm-up."""
    bars = synthetic_bars("AAPL", 2000, seed=3, start=datetime(2024, 4, 1, 13, 30, tzinfo=UTC))
    measure_from = bars[1200].ts
    sma = builtin_registry()["sma_crossover"]
    params = {"fast": 5, "slow": 20}
    full = run_backtest(sma(params), bars, config=BacktestConfig(), measure_from=measure_from)
    assert full.initial_equity != Decimal(100000)  # the warm-up made or lost money
    packed = pack_bars(bars)
    costs = Costs("100000", "0", "0", Timeframe.MIN_1)
    out = run_point(sma, params, Dataset(packed, packed.digest), costs, None, measure_from=measure_from)
    metrics = out["metrics"]
    pnl = full.final_equity - full.initial_equity
    assert metrics["total_return"] == pytest.approx(full.total_return)
    assert metrics["final_equity"] == pytest.approx(float(Decimal(100000) + pnl))
    assert metrics["final_equity"] - 100000 == pytest.approx(
        metrics["total_return"] * float(full.initial_equity)
    )


def test_a_point_measured_throughout_reports_its_final_equity() -> None:
    bars = synthetic_bars("AAPL", 800, seed=4)
    sma = builtin_registry()["sma_crossover"]
    full = run_backtest(
        sma({"fast": 5, "slow": 20}), bars, config=BacktestConfig(initial_cash=Decimal(50000))
    )
    packed = pack_bars(bars)
    costs = Costs("50000", "0", "0", Timeframe.MIN_1)
    out = run_point(sma, {"fast": 5, "slow": 20}, Dataset(packed, packed.digest), costs, None)
    assert out["metrics"]["final_equity"] == pytest.approx(float(full.final_equity))
