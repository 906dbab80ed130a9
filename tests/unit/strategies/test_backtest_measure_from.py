"""``run_backtest(measure_from=...)``: warm-up bars are replayed but left out of the measured result."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.strategies.backtest import BacktestConfig, run_backtest
from services.strategies.builtin import builtin_registry
from services.strategies.synthetic import synthetic_bars

from .support import bar
from .test_backtest import Scripted

CFG = BacktestConfig(initial_cash=Decimal(1000))
ANNUAL = 252 * 390

# A losing round trip in the warm-up (buy 10 at 101, sell at 88: -130), a winning one measured
# (buy 10 at 90, sell at 97: +70).
BARS = [
    bar(0, 100, 100, 100, 100),
    bar(1, 101, 101, 95, 95),
    bar(2, 95, 95, 90, 90),
    bar(3, 90, 90, 90, 90),
    bar(4, 88, 88, 88, 88),
    bar(5, 88, 88, 88, 88),  # measuring starts here
    bar(6, 90, 92, 90, 92),
    bar(7, 93, 96, 93, 96),
    bar(8, 97, 97, 97, 97),
]
PLAN = "0:10,3:0,5:10,7:0"


def sharpe(values: list[float]) -> float:
    r = [b / a - 1 for a, b in itertools.pairwise(values)]
    mean = sum(r) / len(r)
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))
    return mean / sd * math.sqrt(ANNUAL)


def test_a_losing_warm_up_does_not_show_in_the_measured_result() -> None:
    whole = run_backtest(Scripted({"plan": PLAN}), BARS, config=CFG)
    assert whole.total_return == pytest.approx(-0.06)  # the warm-up loss is real in the whole run

    result = run_backtest(Scripted({"plan": PLAN}), BARS, config=CFG, measure_from=BARS[5].ts)
    # warm-up: cash 1000 - 1010 + 880 = 870 at bar 4's close, the base of the measured part
    assert result.initial_equity == Decimal(870)
    assert result.equity_curve == [
        (BARS[5].ts, Decimal(870)),
        (BARS[6].ts, Decimal(890)),  # cash -30 + 10 x 92
        (BARS[7].ts, Decimal(930)),
        (BARS[8].ts, Decimal(940)),  # sold at 97
    ]
    assert result.final_equity == Decimal(940)
    assert result.total_return == pytest.approx(940 / 870 - 1)
    assert result.max_drawdown == 0.0
    assert result.sharpe == pytest.approx(sharpe([870, 870, 890, 930, 940]))
    (trade,) = result.trades
    assert (trade.entry_ts, trade.entry_price, trade.exit_price, trade.pnl) == (
        BARS[6].ts,
        Decimal(90),
        Decimal(97),
        Decimal(70),
    )
    assert result.win_rate == 1.0
    assert [f.ts for f in result.fills] == [BARS[6].ts, BARS[8].ts]
    assert [s.ts for s in result.signals] == [BARS[5].ts, BARS[7].ts]
    assert (result.bars, result.warmup_bars) == (4, 5)
    assert result.warmup_end == BARS[4].ts
    assert result.based_curve()[0] == (BARS[4].ts, Decimal(870))
    assert result.based_curve()[1:] == result.equity_curve


def test_a_position_carried_into_the_window_is_marked_not_reset() -> None:
    bars = [
        bar(0, 100, 100, 100, 100),
        bar(1, 100, 102, 100, 102),  # buy 10 at 100
        bar(2, 104, 104, 104, 104),
        bar(3, 101, 101, 101, 101),  # measuring starts here
        bar(4, 99, 99, 99, 99),
    ]
    result = run_backtest(Scripted({"plan": "0:10"}), bars, config=CFG, measure_from=bars[3].ts)
    assert result.initial_equity == Decimal(1040)
    assert [e for _, e in result.equity_curve] == [Decimal(1010), Decimal(990)]
    assert result.total_return == pytest.approx(990 / 1040 - 1)
    assert result.max_drawdown == pytest.approx(50 / 1040)  # from the base, the peak before the window
    assert result.sharpe == pytest.approx(sharpe([1040, 1010, 990]))
    assert result.trades == [] and result.win_rate is None  # the carried trade was entered in the warm-up
    assert result.open_position == {"AAPL": Decimal(10)}


def test_measure_from_between_bars_starts_at_the_next_bar() -> None:
    between = BARS[4].ts + timedelta(seconds=30)
    at_bar = run_backtest(Scripted({"plan": PLAN}), BARS, config=CFG, measure_from=BARS[5].ts)
    later = run_backtest(Scripted({"plan": PLAN}), BARS, config=CFG, measure_from=between)
    assert later.equity_curve == at_bar.equity_curve
    assert later.total_return == at_bar.total_return and later.sharpe == at_bar.sharpe


def test_measure_from_before_the_first_bar_measures_everything_as_before() -> None:
    bars = synthetic_bars("AAPL", 600, seed=3)
    strategy = builtin_registry()["sma_crossover"]({"fast": 3, "slow": 12})
    plain = run_backtest(strategy, bars)
    strategy = builtin_registry()["sma_crossover"]({"fast": 3, "slow": 12})
    early = run_backtest(strategy, bars, measure_from=bars[0].ts - timedelta(days=1))
    assert plain.trades and early.equity_curve == plain.equity_curve and early.trades == plain.trades
    assert (early.total_return, early.sharpe, early.max_drawdown, early.win_rate) == (
        plain.total_return,
        plain.sharpe,
        plain.max_drawdown,
        plain.win_rate,
    )
    assert early.warmup_bars == 0 and early.warmup_end is None and early.based_curve() == plain.equity_curve


def test_measure_from_after_the_last_bar_measures_nothing() -> None:
    result = run_backtest(
        Scripted({"plan": "0:10"}), BARS, config=CFG, measure_from=BARS[-1].ts + timedelta(minutes=1)
    )
    assert result.equity_curve == [] and result.bars == 0 and result.warmup_bars == len(BARS)
    assert result.total_return == 0.0 and result.sharpe is None and result.max_drawdown == 0.0
    assert result.final_equity == result.initial_equity


def test_a_naive_measure_from_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run_backtest(Scripted({}), BARS, measure_from=datetime(2024, 3, 4, 14, 35))
