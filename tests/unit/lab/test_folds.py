"""Walk-forward folds over NYSE trading days, the best point, stitching and the IS/OOS comparison.

Calendar facts used (services/domain/calendar.py): NYSE is closed on weekends and on Good Friday
(2024-03-29); New York left standard time on 2024-03-10, so New York midnight is 05:00 UTC before
and 04:00 UTC after.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.domain.calendar import MarketCalendar
from services.domain.enums import Timeframe
from services.lab.folds import (
    Fold,
    FoldError,
    annualised_return,
    best_point,
    compare,
    make_folds,
    stitch,
    trading_days,
)
from services.lab.model import FoldKind, PointResult, WalkForwardSpec
from services.strategies.backtest import BacktestConfig, run_backtest
from services.strategies.builtin import builtin_registry
from services.strategies.synthetic import synthetic_bars

NY = ZoneInfo("America/New_York")


def ny(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=NY)


def utc(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def wf(kind: FoldKind, folds: int, ins: int, oos: int) -> WalkForwardSpec:
    return WalkForwardSpec(kind=kind, folds=folds, in_sample_days=ins, out_of_sample_days=oos)


# 2024-03-04 (Mon) to 2024-03-16 (Sat): ten trading days, 3/4-3/8 and 3/11-3/15
START, END = ny(2024, 3, 4), ny(2024, 3, 16)


def test_rolling_folds_over_two_weeks_cross_the_weekend_and_the_clock_change() -> None:
    folds = make_folds(START, END, wf(FoldKind.ROLLING, 3, 4, 2))
    assert folds == [
        Fold(0, utc(2024, 3, 4, 5), utc(2024, 3, 8, 5), utc(2024, 3, 8, 5), utc(2024, 3, 12, 4)),
        Fold(1, utc(2024, 3, 6, 5), utc(2024, 3, 12, 4), utc(2024, 3, 12, 4), utc(2024, 3, 14, 4)),
        Fold(2, utc(2024, 3, 8, 5), utc(2024, 3, 14, 4), utc(2024, 3, 14, 4), utc(2024, 3, 16, 4)),
    ]
    assert all(f.in_start.tzinfo is UTC and f.out_end.tzinfo is UTC for f in folds)


def test_anchored_folds_keep_the_in_sample_start() -> None:
    folds = make_folds(START, END, wf(FoldKind.ANCHORED, 3, 4, 2))
    assert [(f.in_start, f.in_end, f.out_start, f.out_end) for f in folds] == [
        (utc(2024, 3, 4, 5), utc(2024, 3, 8, 5), utc(2024, 3, 8, 5), utc(2024, 3, 12, 4)),
        (utc(2024, 3, 4, 5), utc(2024, 3, 12, 4), utc(2024, 3, 12, 4), utc(2024, 3, 14, 4)),
        (utc(2024, 3, 4, 5), utc(2024, 3, 14, 4), utc(2024, 3, 14, 4), utc(2024, 3, 16, 4)),
    ]


def test_a_range_too_short_for_the_folds_is_refused_with_the_counts() -> None:
    with pytest.raises(FoldError, match=r"holds 9 trading days.*need 10"):
        make_folds(START, ny(2024, 3, 15), wf(FoldKind.ROLLING, 3, 4, 2))
    with pytest.raises(FoldError, match="at least 1 fold"):
        make_folds(START, END, wf(FoldKind.ROLLING, 0, 4, 2))
    with pytest.raises(FoldError, match="timezone-aware"):
        make_folds(datetime(2024, 3, 4), END, wf(FoldKind.ROLLING, 1, 1, 1))


def test_one_fold_over_good_friday_and_a_weekend() -> None:
    # 3/25-3/28 and 4/1 are the five trading days (3/29 Good Friday, 3/30-31 weekend)
    (fold,) = make_folds(ny(2024, 3, 25), ny(2024, 4, 2), wf(FoldKind.ROLLING, 1, 3, 2))
    assert fold == Fold(0, utc(2024, 3, 25, 4), utc(2024, 3, 28, 4), utc(2024, 3, 28, 4), utc(2024, 4, 2, 4))
    assert trading_days(fold.out_start, fold.out_end) == [
        datetime(2024, 3, 28).date(),
        datetime(2024, 4, 1).date(),
    ]


def test_partial_days_at_the_ends_do_not_count_and_spare_days_stay_in_front() -> None:
    # 3/4 starts after its open; 3/14 ends after its close: 3/5-3/14, eight days, for six needed
    start, end = ny(2024, 3, 4, 10), ny(2024, 3, 14, 18)
    assert trading_days(start, ny(2024, 3, 14, 15)) == trading_days(start, end)[:-1]  # ends before a close
    assert len(trading_days(start, end)) == 8
    rolling = make_folds(start, end, wf(FoldKind.ROLLING, 2, 2, 2))
    assert rolling[0].in_start == utc(2024, 3, 7, 5)  # 3/5 and 3/6 are spare
    assert rolling[-1].out_end == end and rolling[-1].out_end.tzinfo is UTC  # clipped to the range
    anchored = make_folds(start, end, wf(FoldKind.ANCHORED, 2, 2, 2))
    assert anchored[0].in_start == start and anchored[0].in_end == rolling[0].in_end


@pytest.mark.parametrize("kind", [FoldKind.ROLLING, FoldKind.ANCHORED])
def test_many_folds_over_a_year_tile_the_out_of_sample_period(kind: FoldKind) -> None:
    start, end = ny(2024, 1, 1), ny(2025, 1, 1)
    assert len(trading_days(start, end)) == 252  # NYSE 2024
    folds = make_folds(start, end, wf(kind, 12, 60, 15))
    assert [f.index for f in folds] == list(range(12))
    for a, b in itertools.pairwise(folds):
        assert a.out_end == b.out_start  # consecutive, never overlapping
    for k, f in enumerate(folds):
        assert f.in_end == f.out_start
        assert len(trading_days(f.out_start, f.out_end)) == 15
        ins = len(trading_days(f.in_start, f.in_end))
        assert ins == (60 if kind is FoldKind.ROLLING else 72 + 15 * k)  # 252 - 180 = 72 spare days
    assert folds[-1].out_end == utc(2025, 1, 1, 5)
    # 252 - (60 + 12 x 15) = 12 spare days: in-sample from day 12 (1/19; 1/1 and 1/15 closed), out of
    # sample from day 72 (4/16: 21 days in January, 20 in February, 20 in March without Good Friday)
    assert folds[0].in_start == (utc(2024, 1, 19, 5) if kind is FoldKind.ROLLING else utc(2024, 1, 1, 5))
    assert folds[0].out_start == utc(2024, 4, 16, 4)


def test_every_calendar_day_counts_when_the_market_never_closes() -> None:
    folds = make_folds(START, END, wf(FoldKind.ROLLING, 2, 3, 4), calendar=MarketCalendar(always_open=True))
    assert [(f.in_start, f.out_start, f.out_end) for f in folds] == [
        (utc(2024, 3, 5, 5), utc(2024, 3, 8, 5), utc(2024, 3, 12, 4)),
        (utc(2024, 3, 9, 5), utc(2024, 3, 12, 4), utc(2024, 3, 16, 4)),
    ]


def point(
    key: str, fold: int | None = None, error: str | None = None, **metrics: float | None
) -> PointResult:
    return PointResult(key=key, params={"k": key}, metrics=None if error else metrics, error=error, fold=fold)


def test_best_point_maximises_ignores_failures_and_breaks_ties_by_key() -> None:
    results = [
        point("c", sharpe=1.5),
        point("b", sharpe=2.0),
        point("a", sharpe=2.0),
        point("z", sharpe=None),
        point("y", sharpe=math.nan),
        point("x", error="strategy raised"),
        PointResult(key="w", params={}, metrics={"sharpe": 9.0}, error="killed its worker 4 times"),
    ]
    assert best_point(results, "sharpe") == results[2]
    assert best_point(reversed(results), "sharpe") == results[2]
    assert best_point([point("z", sharpe=None)], "sharpe") is None
    assert best_point([], "sharpe") is None


def test_best_point_minimises_the_drawdown() -> None:
    results = [point("a", max_drawdown=0.2), point("b", max_drawdown=0.05), point("c", max_drawdown=0.3)]
    assert best_point(results, "max_drawdown") == results[1]
    assert best_point(results, "total_return") is None


T = [utc(2024, 3, 4 + i, 21) for i in range(8)]


def test_stitch_chains_each_curves_returns_into_one_continuous_curve() -> None:
    a = [(T[0], Decimal(100)), (T[1], Decimal(110))]
    b = [(T[1], Decimal(200)), (T[2], Decimal(220)), (T[3], Decimal(210))]  # base at a's last time
    c = [(T[5], Decimal(50)), (T[6], Decimal(55))]  # a gap before it: its base is kept as a point
    assert stitch([a, [], b, c], Decimal(1000)) == [
        (T[0], Decimal(1000)),
        (T[1], Decimal(1100)),
        (T[2], Decimal(1210)),
        (T[3], Decimal("1155")),
        (T[5], Decimal("1155")),
        (T[6], Decimal("1270.5")),
    ]
    assert stitch([], Decimal(1000)) == []
    with pytest.raises(ValueError, match="overlap"):
        stitch([b, a], Decimal(1000))
    with pytest.raises(ValueError, match="no positive base"):
        stitch([[(T[0], Decimal(0)), (T[1], Decimal(1))]], Decimal(1000))


def test_stitched_backtests_compound_their_measured_returns() -> None:
    """Out-of-sample runs measured from each fold's start, stitched: the final equity is the initial
    one times the product of the folds' measured growth, and no warm-up bar is in the curve."""
    cal = MarketCalendar(always_open=True)
    bars = synthetic_bars("AAPL", 24 * 12, seed=5, start=utc(2024, 4, 1, 4), timeframe=Timeframe.HOUR_1)
    folds = make_folds(
        bars[0].ts, bars[-1].ts + timedelta(hours=1), wf(FoldKind.ROLLING, 3, 3, 3), calendar=cal
    )
    cfg = BacktestConfig(timeframe=Timeframe.HOUR_1, periods_per_year=24 * 365)
    results = []
    for f in folds:
        window = [b for b in bars if f.in_start <= b.ts < f.out_end]
        strategy = builtin_registry()["sma_crossover"]({"fast": 3, "slow": 8})
        results.append(run_backtest(strategy, window, config=cfg, measure_from=f.out_start))
    assert all(r.warmup_bars == 72 and r.bars == 72 for r in results)
    assert all(r.trades for r in results) and len({r.total_return for r in results}) == 3
    stitched = stitch([r.based_curve() for r in results], Decimal(1000))
    growth = math.prod(1 + r.total_return for r in results)
    assert float(stitched[-1][1]) == pytest.approx(1000 * growth)
    assert stitched[0][0] == folds[0].out_start - timedelta(hours=1)  # the first fold's base
    assert all(folds[0].out_start <= ts < folds[-1].out_end for ts, _ in stitched[1:])
    assert len(stitched) == 1 + 3 * 72


FOLDS = [
    Fold(0, utc(2024, 1, 1), utc(2024, 7, 1), utc(2024, 7, 1), utc(2024, 10, 1)),
    Fold(1, utc(2024, 4, 1), utc(2024, 10, 1), utc(2024, 10, 1), utc(2025, 1, 1)),
]


def test_compare_reports_each_fold_and_the_walk_forward_efficiency() -> None:
    in_sample = [
        point("a", 0, sharpe=1.0, total_return=0.10),
        point("b", 0, sharpe=2.0, total_return=0.20),
        point("a", 1, sharpe=1.5, total_return=0.05),
        point("b", 1, error="boom"),
    ]
    oos = [point("b", 0, sharpe=0.5, total_return=0.02), point("a", 1, sharpe=-0.5, total_return=-0.01)]
    report = compare(in_sample, list(reversed(oos)), "sharpe", folds=FOLDS)

    def ann(r: float, start: datetime, end: datetime) -> float:
        return (1 + r) ** (365.25 / (end - start).days) - 1

    is0, is1 = ann(0.20, *FOLDS[0].in_sample), ann(0.05, *FOLDS[1].in_sample)
    oos0, oos1 = ann(0.02, *FOLDS[0].out_of_sample), ann(-0.01, *FOLDS[1].out_of_sample)
    f0, f1 = report["folds"]
    assert (f0["fold"], f0["key"], f0["in_sample"], f0["out_of_sample"]) == (0, "b", 2.0, 0.5)
    assert (f1["fold"], f1["key"], f1["in_sample"], f1["out_of_sample"]) == (1, "a", 1.5, -0.5)
    assert f0["in_sample_annual_return"] == pytest.approx(is0)
    assert f0["out_of_sample_annual_return"] == pytest.approx(oos0)
    assert f0["efficiency"] == pytest.approx(oos0 / is0)
    assert f1["efficiency"] == pytest.approx(oos1 / is1)
    assert report["in_sample_mean"] == pytest.approx(1.75)
    assert report["out_of_sample_mean"] == pytest.approx(0.0)
    overall_oos = (1.02 * 0.99) ** (365.25 / 184) - 1  # 7/1 to 1/1 is 184 days
    assert report["out_of_sample_annual_return"] == pytest.approx(overall_oos)
    assert report["in_sample_annual_return"] == pytest.approx((is0 + is1) / 2)
    assert report["efficiency"] == pytest.approx(overall_oos / ((is0 + is1) / 2))


def test_compare_leaves_undefined_figures_as_none() -> None:
    in_sample = [point("a", 0, sharpe=1.0, total_return=-0.1), point("a", 1, sharpe=None, total_return=0.1)]
    oos = [point("a", 0, sharpe=0.3, total_return=0.05), point("a", 1, error="killed its worker")]
    report = compare(in_sample, oos, "sharpe", folds=FOLDS)
    f0, f1 = report["folds"]
    assert f0["efficiency"] is None  # the in-sample lost money: no ratio
    assert f1["key"] is None and f1["in_sample"] is None and f1["out_of_sample"] is None
    assert f1["error"] == "killed its worker"
    assert report["out_of_sample_annual_return"] is None and report["efficiency"] is None
    without_windows = compare(in_sample, oos, "sharpe")
    assert without_windows["folds"][0]["out_of_sample_annual_return"] is None
    assert compare([], [], "sharpe")["efficiency"] is None


def test_annualised_return_edges() -> None:
    assert annualised_return(0.1, timedelta(days=365.25)) == pytest.approx(0.1)
    assert annualised_return(0.21, timedelta(days=730.5)) == pytest.approx(0.1)
    assert annualised_return(-1.0, timedelta(days=10)) is None
    assert annualised_return(0.1, timedelta(0)) is None
    assert annualised_return(None, timedelta(days=1)) is None
