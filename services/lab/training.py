"""Shadow-model training as tasks: one fit per symbol, horizon, fold and model, on any executor.

:func:`plan_training` lays out the tasks; :func:`fit_task` runs one on a worker (pure: bars in, a
:class:`~services.shadow.training.FittedModel` out, picklable; no registry, no disk);
:func:`train_distributed` submits them to a :class:`concurrent.futures.Executor` (a Dask client's
``client.get_executor()``, or a local thread or process pool) and saves each fitted model to the
:class:`~services.shadow.registry.ModelRegistry` on the calling thread as it completes: workers never
touch the registry, so a remote cluster needs neither Heron's database nor its data folder.

A task trains on its symbol's bars in ``[start, end)``: for a walk-forward fold that is the fold's
in-sample window, so its model never saw the out-of-sample bars it is later judged on. Bars outside
the window or of another symbol are dropped by :func:`fit_task` whatever the loader returns.

Registry names show what a model is: ``<model>-<symbol>-h<horizon>`` and ``-f<fold>`` for a fold
(``gboost-AAPL-h5-f2``); characters a name may not hold (``/`` in ``BTC/USD``) become ``_``. Each
version's metadata also records the symbol, fold and window.

Threading: :func:`train_distributed` blocks; call it from a worker or coordinator thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.domain.models import Bar
from services.lab.folds import Fold
from services.shadow.training import FittedModel, TrainingReport, default_models, fit_models, save_fitted

if TYPE_CHECKING:  # the registry (SQLAlchemy) stays out of worker processes
    from services.shadow.registry import ModelRegistry

#: The models a task can fit (the keys of ``default_models``); each (symbol, horizon, fold) gets all.
MODELS: tuple[str, ...] = ("logreg", "gboost")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_POLL_S = 0.1  # how often a wait for results looks at the cancel flag


@dataclass(frozen=True, slots=True)
class TrainingTask:
    symbol: str
    horizon: int
    fold: int | None
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    model: str = "logreg"  # a key of default_models
    seed: int = 0
    test_fraction: float = 0.2

    @property
    def registry_name(self) -> str:
        """The registry name of this task's model: model, symbol, horizon and fold in plain sight."""
        fold = f"-f{self.fold}" if self.fold is not None else ""
        return f"{self.model}-{_UNSAFE.sub('_', self.symbol)}-h{self.horizon}{fold}"


@dataclass(frozen=True, slots=True)
class TaskReport:
    """How one task ended: saved (``report``), failed (``error``) or cancelled."""

    task: TrainingTask
    report: TrainingReport | None = None
    error: str | None = None
    cancelled: bool = False
    elapsed_s: float = 0.0  # from submission to completion

    @property
    def ok(self) -> bool:
        return self.report is not None


def plan_training(
    symbols: Iterable[str],
    horizons: Iterable[int],
    folds: Sequence[Fold] | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    models: Sequence[str] = MODELS,
    seed: int = 0,
) -> list[TrainingTask]:
    """One task per symbol x horizon x fold x model. With ``folds`` each trains on its fold's
    in-sample window; without, on ``[start, end)`` (then required)."""
    windows: list[tuple[int | None, datetime, datetime]]
    if folds is not None:
        windows = [(f.index, f.in_start, f.in_end) for f in folds]
    elif start is None or end is None:
        raise ValueError("training without folds needs a start and an end")
    elif start >= end:
        raise ValueError(f"training window is empty: {start.isoformat()} to {end.isoformat()}")
    else:
        windows = [(None, start, end)]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    horizons = list(horizons)
    if any(h < 1 for h in horizons):
        raise ValueError("horizons must be >= 1")
    return [
        TrainingTask(symbol, horizon, fold, lo, hi, model, seed)
        for symbol in symbols
        for horizon in horizons
        for fold, lo, hi in windows
        for model in models
    ]


def fit_task(task: TrainingTask, bars: list[Bar]) -> FittedModel:
    """Fit ``task``'s model on its symbol's bars in its window; runs on a worker, stores nothing."""
    window = [b for b in bars if b.symbol == task.symbol and task.start <= b.ts < task.end]
    estimator = default_models(task.seed)[task.model]
    (fitted,) = fit_models(
        window,
        horizon=task.horizon,
        test_fraction=task.test_fraction,
        seed=task.seed,
        models={task.model: estimator},
    )
    return fitted


def _metadata(task: TrainingTask) -> dict[str, Any]:
    return {
        "symbol": task.symbol,
        "fold": task.fold,
        "window_start": task.start.isoformat(),
        "window_end": task.end.isoformat(),
        "model": task.model,
    }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def train_distributed(
    executor: cf.Executor,
    tasks: Sequence[TrainingTask],
    load_bars: Callable[[TrainingTask], list[Bar]],
    registry: ModelRegistry,
    *,
    cancel: threading.Event | None = None,
    on_done: Callable[[TaskReport], None] | None = None,
) -> list[TaskReport]:
    """Fit every task on ``executor`` and save each model here as it completes; blocking.

    ``load_bars`` runs on this thread before a task is submitted, once per symbol and window (tasks
    that differ only in horizon or model share the loaded bars). A task whose bars cannot be loaded,
    whose fit raises or whose model cannot be saved is reported with its error; the others go on.
    Setting ``cancel`` stops submitting, cancels what has not started and returns without waiting
    for fits still running (their results are dropped, never saved). ``on_done`` is called on this
    thread with each task's report as it ends. Reports come back in the order of ``tasks``. With
    Dask, pass ``client.get_executor(pure=False)``: the bars need no content hash for a task key.
    """
    stop = cancel or threading.Event()
    reports: dict[int, TaskReport] = {}
    loaded: dict[tuple[str, datetime, datetime], list[Bar]] = {}
    pending: dict[cf.Future[FittedModel], tuple[int, float]] = {}

    def finish(i: int, report: TaskReport) -> None:
        reports[i] = report
        if on_done is not None:
            on_done(report)

    for i, task in enumerate(tasks):
        if stop.is_set():
            break
        window = (task.symbol, task.start, task.end)
        try:
            bars = loaded[window] if window in loaded else loaded.setdefault(window, load_bars(task))
        except Exception as exc:  # a loader failure is this task's error, not the run's
            finish(i, TaskReport(task, error=f"loading bars: {_describe(exc)}"))
            continue
        if stop.is_set():
            break
        pending[executor.submit(fit_task, task, bars)] = (i, time.monotonic())
        _collect(pending, tasks, registry, finish, block=False)
    while pending and not stop.is_set():
        _collect(pending, tasks, registry, finish, block=True)
    for future in pending:
        future.cancel()
    for i, task in enumerate(tasks):
        if i not in reports:
            finish(i, TaskReport(task, error="cancelled", cancelled=True))
    return [reports[i] for i in range(len(tasks))]


def _collect(
    pending: dict[cf.Future[FittedModel], tuple[int, float]],
    tasks: Sequence[TrainingTask],
    registry: ModelRegistry,
    finish: Callable[[int, TaskReport], None],
    *,
    block: bool,
) -> None:
    """Save what has completed (waiting up to a poll interval for something when ``block``)."""
    done, _ = cf.wait(pending, timeout=_POLL_S if block else 0, return_when=cf.FIRST_COMPLETED)
    for future in done:
        i, started = pending.pop(future)
        task = tasks[i]
        elapsed = time.monotonic() - started
        if future.cancelled():
            finish(i, TaskReport(task, error="cancelled", cancelled=True, elapsed_s=elapsed))
            continue
        failure = future.exception()
        if failure is not None:  # the fit raised, or (Dask) its worker kept dying
            finish(i, TaskReport(task, error=_describe(failure), elapsed_s=elapsed))
            continue
        try:
            report = save_fitted(registry, future.result(), name=task.registry_name, metadata=_metadata(task))
        except Exception as exc:  # the registry refused this one; keep the others
            finish(i, TaskReport(task, error=f"saving: {_describe(exc)}", elapsed_s=elapsed))
            continue
        finish(i, TaskReport(task, report=report, elapsed_s=elapsed))
