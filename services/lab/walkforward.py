"""Walk-forward orchestration: what the coordinator runs per fold, and what it means afterwards.

Per fold (:func:`~services.lab.folds.make_folds`): the in-sample sweep over ``[in_start, in_end)``
(phase ``in_sample``, the spec's search), then, once every in-sample point of that fold is in, the best
point by the spec's metric (:func:`~services.lab.folds.best_point`) is run out of sample (phase
``out_of_sample``): bars from ``in_start`` to ``out_end`` replayed, measured from ``out_start`` (the
in-sample bars only warm the strategy up). Every fold's in-sample points run side by side; each is
a Dask task stored like any point, keyed by (parameters, fold, phase), so a resumed walk-forward
skips what is done. Afterwards :func:`summary` compares in-sample with out-of-sample figures and
:func:`stitched_equity` recomputes the out-of-sample runs here and chains their equity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from services.lab.folds import Fold, best_point, compare, make_folds, stitch
from services.lab.model import PointResult, SweepSpec, point_key
from services.strategies.api import Strategy

if TYPE_CHECKING:
    from services.lab.coordinator import BarLoader

IN_SAMPLE: Final = "in_sample"
OUT_OF_SAMPLE: Final = "out_of_sample"


def folds_of(spec: SweepSpec) -> list[Fold]:
    """The spec's folds (raises :class:`~services.lab.folds.FoldError` when they do not fit)."""
    if spec.walk_forward is None:
        return []
    return make_folds(spec.start, spec.end, spec.walk_forward)


def oos_key(params: Mapping[str, Any], fold: int) -> str:
    """An out-of-sample run's key: never equal to the in-sample key of the same parameters."""
    return point_key({**params, "@phase": OUT_OF_SAMPLE}, fold)


def best_in_sample(results: Iterable[PointResult], fold: int, metric: str) -> PointResult | None:
    return best_point((r for r in results if r.phase == IN_SAMPLE and r.fold == fold), metric)


def summary(spec: SweepSpec, results: Iterable[PointResult]) -> dict[str, Any]:
    """In-sample against out-of-sample figures per fold and overall (JSON-ready)."""
    done = list(results)
    return compare(
        [r for r in done if r.phase == IN_SAMPLE],
        [r for r in done if r.phase == OUT_OF_SAMPLE],
        spec.metric,
        folds=folds_of(spec),
    )


def stitched_equity(
    spec: SweepSpec,
    results: Iterable[PointResult],
    load_bars: BarLoader,
    registry: Mapping[str, type[Strategy]],
) -> list[tuple[datetime, Decimal]]:
    """The out-of-sample equity of every fold chained from the spec's cash, recomputed here (the
    workers return metrics only; the backtest is deterministic). ``load_bars`` is the sweep's loader."""
    from services.lab.coordinator import costs_of, load_all, strategy_params
    from services.strategies.backtest import run_backtest

    folds = {f.index: f for f in folds_of(spec)}
    cls = registry[spec.strategy]
    curves = []
    for result in sorted((r for r in results if r.phase == OUT_OF_SAMPLE), key=lambda r: r.fold or 0):
        fold = folds.get(result.fold) if result.fold is not None else None
        if fold is None or result.error:
            continue
        swept = {k: v for k, v in result.params.items() if k in spec.space}
        run = run_backtest(
            cls(strategy_params(spec, swept)),
            load_all(replace(spec, start=fold.in_start, end=fold.out_end), load_bars),
            config=costs_of(spec).config(),
            measure_from=fold.out_start,
        )
        curves.append(run.based_curve())
    return stitch(curves, Decimal(spec.initial_cash))
