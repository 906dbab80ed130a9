"""The strategy lab's shared vocabulary: what a sweep is, what each point returns, and how a running
sweep tells its owner (the window or the headless runner) what happened.

Threading: a sweep is driven by one coordinator thread (a synchronous Dask client; the asynchronous
client does not run on the GUI's qasync loop). :class:`SweepListener` methods are called on that
thread; a window adapter posts them to its loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from services.domain.enums import Timeframe

#: Metrics every point reports (more may follow); ``None`` where undefined (no trades: no Sharpe).
METRICS: tuple[str, ...] = ("total_return", "sharpe", "max_drawdown", "trades", "win_rate", "final_equity")


class SearchKind(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    BAYES = "bayes"  # Optuna ask/tell, driven by the coordinator


class FoldKind(StrEnum):
    ROLLING = "rolling"
    ANCHORED = "anchored"


class SweepState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"  # the cluster went away, a spec that cannot run...: ``message`` says why


@dataclass(frozen=True, slots=True)
class WalkForwardSpec:
    kind: FoldKind
    folds: int
    in_sample_days: int
    out_of_sample_days: int


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated sweep. ``space`` maps a parameter name to its candidate values, already typed by the
    strategy's :class:`~services.strategies.api.Param` (random and Bayesian search draw from them)."""

    strategy: str
    symbols: tuple[str, ...]
    timeframe: Timeframe
    start: datetime  # UTC
    end: datetime  # UTC
    search: SearchKind
    space: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)  # strategy parameters not swept
    metric: str = "sharpe"  # maximised (max_drawdown is minimised)
    max_points: int | None = None  # random/bayes budget; grid: the whole grid
    seed: int = 0
    walk_forward: WalkForwardSpec | None = None
    initial_cash: str = "100000"  # Decimal text
    commission_per_share: str = "0"
    slippage_bps: str = "0"


def point_key(params: Mapping[str, Any], fold: int | None = None) -> str:
    """A point's identity: the same parameters (and fold) give the same key in every run, so a
    restarted sweep skips what is done and duplicates are dropped."""
    canon = json.dumps({"p": {k: str(v) for k, v in sorted(params.items())}, "f": fold}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class PointResult:
    key: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float | int | None] | None  # None when the point failed
    error: str | None = None  # the strategy raised, or the point kept killing its worker
    fold: int | None = None  # walk-forward fold (None: a plain sweep)
    phase: str = "sweep"  # "sweep", "in_sample" or "out_of_sample"
    worker: str | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SweepProgress:
    sweep_id: str
    total: int
    completed: int  # includes errors and points found done by a resumed sweep
    errors: int
    running: int
    rate_per_s: float | None  # points per second over the recent past
    eta_s: float | None
    workers: int


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    sweep_id: str
    state: SweepState
    total: int
    completed: int
    errors: int
    workers: int
    elapsed_s: float
    best: PointResult | None
    message: str = ""


class SweepListener(Protocol):
    """What the coordinator tells its owner; every call comes from the coordinator thread."""

    def on_point(self, result: PointResult) -> None: ...

    def on_progress(self, progress: SweepProgress) -> None: ...

    def on_finished(self, outcome: SweepOutcome) -> None: ...
