"""Walk-forward building blocks: folds over trading days, the best point of a fold, the stitched
out-of-sample equity and the in-sample / out-of-sample comparison.

Folds count **trading days** of a :class:`~services.domain.calendar.MarketCalendar` (NYSE by default:
weekends and exchange holidays are not days; ``MarketCalendar(always_open=True)`` makes every day
one, for crypto). A day of the range is usable when its whole regular session lies inside
``[start, end)``. A day runs from New York midnight of its date to New York midnight of the next
trading day's date, so consecutive windows meet exactly and a window ending on a Friday ends at
Monday's midnight (the weekend holds no bars). Every bound is a UTC datetime; windows are half-open,
``[in_start, in_end)`` then ``[out_start, out_end)`` with ``in_end == out_start``.

* Rolling: the in-sample window is ``in_sample_days`` long and slides by ``out_of_sample_days``.
* Anchored: the in-sample window always starts at ``start`` and grows by ``out_of_sample_days``.

Out-of-sample windows are consecutive and never overlap, and the folds end at the range's last
usable day: days the folds do not need are left at the front (for a rolling walk-forward they can
still warm indicators up; an anchored one takes them into its in-sample windows).

Pure functions, Qt-free and cheap to import on a worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from services.domain.calendar import NEW_YORK, MarketCalendar
from services.lab.model import FoldKind, PointResult, WalkForwardSpec

#: Metrics where smaller is better; every other metric is maximised.
MINIMISED: frozenset[str] = frozenset({"max_drawdown"})
_YEAR = timedelta(days=365.25)


class FoldError(ValueError):
    """The walk-forward cannot be laid over the range (the message says what is missing)."""


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    in_start: datetime
    in_end: datetime
    out_start: datetime
    out_end: datetime

    @property
    def in_sample(self) -> tuple[datetime, datetime]:
        return self.in_start, self.in_end

    @property
    def out_of_sample(self) -> tuple[datetime, datetime]:
        return self.out_start, self.out_end


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)


def trading_days(start: datetime, end: datetime, calendar: MarketCalendar | None = None) -> list[date]:
    """The trading days whose whole regular session lies in ``[start, end)``, in order."""
    cal = calendar or MarketCalendar()
    first = start.astimezone(NEW_YORK).date()
    last = end.astimezone(NEW_YORK).date()
    return [s.day for s in cal.sessions(first, last) if s.open >= start and s.close <= end]


def make_folds(
    start: datetime, end: datetime, wf: WalkForwardSpec, *, calendar: MarketCalendar | None = None
) -> list[Fold]:
    """The folds of ``wf`` over ``[start, end)`` (UTC-aware); :class:`FoldError` when they do not fit."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise FoldError("walk-forward range: start and end must be timezone-aware (UTC)")
    if wf.folds < 1 or wf.in_sample_days < 1 or wf.out_of_sample_days < 1:
        raise FoldError(
            "walk-forward needs at least 1 fold, 1 in-sample day and 1 out-of-sample day "
            f"(got {wf.folds} folds, {wf.in_sample_days} + {wf.out_of_sample_days} days)"
        )
    days = trading_days(start, end, calendar)
    need = wf.in_sample_days + wf.folds * wf.out_of_sample_days
    if len(days) < need:
        raise FoldError(
            f"the range {start:%Y-%m-%d} to {end:%Y-%m-%d} holds {len(days)} trading days; "
            f"{wf.folds} {wf.kind.value} fold(s) of {wf.in_sample_days} in-sample and "
            f"{wf.out_of_sample_days} out-of-sample days need {need}"
        )
    # bounds[i] opens day i of the used days; bounds[-1] closes the last one
    offset = len(days) - need
    used = days[offset:]
    bounds = [_midnight(d) for d in used] + [_midnight(used[-1] + timedelta(days=1))]
    bounds[0] = max(bounds[0], start)
    bounds[-1] = min(bounds[-1], end)
    bounds = [b.astimezone(UTC) for b in bounds]
    folds: list[Fold] = []
    for k in range(wf.folds):
        out_first = wf.in_sample_days + k * wf.out_of_sample_days
        in_start = start if wf.kind is FoldKind.ANCHORED else bounds[k * wf.out_of_sample_days]
        folds.append(
            Fold(
                index=k,
                in_start=in_start.astimezone(UTC),
                in_end=bounds[out_first],
                out_start=bounds[out_first],
                out_end=bounds[out_first + wf.out_of_sample_days],
            )
        )
    return folds


def _metric(result: PointResult, metric: str) -> float | None:
    """The result's ``metric`` as a finite float, or None (failed point, undefined or not a number)."""
    if result.error is not None or result.metrics is None:
        return None
    value = result.metrics.get(metric)
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def best_point(results: Iterable[PointResult], metric: str) -> PointResult | None:
    """The result with the best ``metric`` (largest; smallest for :data:`MINIMISED` metrics).

    Failed points and points whose metric is undefined never win; equal values go to the smallest
    point key, so the choice is the same in every run. None when no point has the metric.
    """
    sign = 1.0 if metric in MINIMISED else -1.0
    best: tuple[float, str] | None = None
    winner: PointResult | None = None
    for result in results:
        value = _metric(result, metric)
        if value is None:
            continue
        rank = (sign * value, result.key)
        if best is None or rank < best:
            best, winner = rank, result
    return winner


def stitch(
    curves: Sequence[list[tuple[datetime, Decimal]]], initial: Decimal
) -> list[tuple[datetime, Decimal]]:
    """Chain out-of-sample equity curves into one continuous curve starting at ``initial``.

    Each curve contributes its own returns: its first point is its base and lands on the stitched
    curve's last value (the first curve's on ``initial``); each later point is that value times the
    curve's equity over its base. A base at the same time as the stitched curve's last point is that
    point and is not repeated. Pass curves that begin with their base
    (:meth:`~services.strategies.backtest.BacktestResult.based_curve`) so the first measured bar's
    return is counted. Empty curves are skipped.
    """
    out: list[tuple[datetime, Decimal]] = []
    level = initial
    for curve in curves:
        if not curve:
            continue
        ts0, base = curve[0]
        if base <= 0:
            raise ValueError(f"an equity curve starting at {ts0.isoformat()} has no positive base ({base})")
        if not out or ts0 > out[-1][0]:
            out.append((ts0, level))
        elif ts0 < out[-1][0]:
            raise ValueError(f"equity curves overlap: one starts at {ts0.isoformat()}, before the last point")
        for ts, equity in curve[1:]:
            out.append((ts, level * equity / base))
        level = out[-1][1]
    return out


def annualised_return(total_return: float | None, duration: timedelta) -> float | None:
    """``total_return`` over ``duration`` compounded to one year of 365.25 days (None if undefined)."""
    if total_return is None or total_return <= -1.0 or duration <= timedelta(0):
        return None
    try:
        return (1.0 + total_return) ** (_YEAR / duration) - 1.0
    except OverflowError:
        return None


def _efficiency(oos: float | None, ins: float | None) -> float | None:
    """Walk-forward efficiency; undefined unless the in-sample annualised return is positive."""
    if oos is None or ins is None or ins <= 0:
        return None
    return oos / ins


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def compare(
    in_sample: Sequence[PointResult],
    out_of_sample: Sequence[PointResult],
    metric: str,
    *,
    folds: Sequence[Fold] | None = None,
) -> dict[str, Any]:
    """In-sample against out-of-sample figures, per fold and overall (a JSON-ready dict).

    Per fold (the folds of ``out_of_sample``, by :attr:`PointResult.fold`): the best in-sample point
    by ``metric`` and its value, the out-of-sample value, both annualised returns and the walk-forward
    efficiency (out-of-sample annualised return ÷ in-sample annualised return). Overall: the mean of
    each metric column, the out-of-sample return compounded over all windows and annualised, the mean
    in-sample annualised return, and their efficiency. Annualised returns need each window's length:
    pass ``folds``, or give the points an ``annual_return`` metric; otherwise they (and the
    efficiency) are None. The efficiency is None when the in-sample annualised return is not
    positive: a ratio to a loss says nothing.
    """
    by_fold = {f.index: f for f in folds or ()}
    rows: list[dict[str, Any]] = []
    growth, oos_time, complete = 1.0, timedelta(0), True
    for oos in sorted(out_of_sample, key=lambda r: (r.fold is None, r.fold or 0, r.key)):
        fold = by_fold.get(oos.fold) if oos.fold is not None else None
        best = best_point((r for r in in_sample if r.fold == oos.fold), metric)
        is_ann = _annual(best, fold.in_end - fold.in_start if fold else None)
        oos_ann = _annual(oos, fold.out_end - fold.out_start if fold else None)
        total = _metric(oos, "total_return")
        if total is None or fold is None:
            complete = False
        else:
            growth *= 1.0 + total
            oos_time += fold.out_end - fold.out_start
        rows.append(
            {
                "fold": oos.fold,
                "key": best.key if best else None,
                "params": {k: _plain(v) for k, v in best.params.items()} if best else None,
                "in_sample": _metric(best, metric) if best else None,
                "out_of_sample": _metric(oos, metric),
                "in_sample_annual_return": is_ann,
                "out_of_sample_annual_return": oos_ann,
                "efficiency": _efficiency(oos_ann, is_ann),
                "error": oos.error,
            }
        )
    is_mean_ann = _mean(r["in_sample_annual_return"] for r in rows)
    oos_overall = annualised_return(growth - 1.0, oos_time) if complete and rows else None
    return {
        "metric": metric,
        "folds": rows,
        "in_sample_mean": _mean(r["in_sample"] for r in rows),
        "out_of_sample_mean": _mean(r["out_of_sample"] for r in rows),
        "in_sample_annual_return": is_mean_ann,
        "out_of_sample_annual_return": oos_overall,
        "efficiency": _efficiency(oos_overall, is_mean_ann),
    }


def _annual(result: PointResult | None, duration: timedelta | None) -> float | None:
    if result is None:
        return None
    given = _metric(result, "annual_return")
    if given is not None:
        return given
    return annualised_return(_metric(result, "total_return"), duration) if duration else None


def _plain(value: Any) -> Any:
    """A parameter value as JSON can hold it (Decimal as text)."""
    return str(value) if isinstance(value, Decimal) else value
