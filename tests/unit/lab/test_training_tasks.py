"""Shadow training as tasks: planned per symbol, horizon, fold and model, fitted on an executor,
saved to the registry only by the calling thread."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.domain.models import Bar
from services.lab.folds import Fold
from services.lab.training import TaskReport, TrainingTask, fit_task, plan_training, train_distributed
from services.shadow.registry import ModelRegistry
from services.shadow.training import build_dataset
from services.strategies.synthetic import synthetic_bars

BARS = {
    "AAPL": synthetic_bars("AAPL", 700, seed=21, volatility_bps=15),
    "MSFT": synthetic_bars("MSFT", 700, seed=33, volatility_bps=15),
}
START = BARS["AAPL"][0].ts
END = BARS["AAPL"][-1].ts + timedelta(minutes=1)


def load(task: TrainingTask) -> list[Bar]:
    return [b for b in BARS[task.symbol] if task.start <= b.ts < task.end]


class SpyRegistry(ModelRegistry):
    """Records where each save happens; refuses to be pickled, so it can never reach a worker."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.saves: list[tuple[str, int, int]] = []

    def save(self, name: str, estimator: Any, **kwargs: Any) -> Any:
        self.saves.append((name, os.getpid(), threading.get_ident()))
        return super().save(name, estimator, **kwargs)

    def __reduce__(self) -> Any:
        raise TypeError("the model registry must stay in the calling process")


def test_plan_covers_symbols_horizons_folds_and_models() -> None:
    month = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4)]
    folds = [Fold(k, month[k], month[k + 1], month[k + 1], month[k + 2]) for k in (0, 1)]
    tasks = plan_training(["AAPL", "BTC/USD"], [1, 5], folds)
    assert len(tasks) == 2 * 2 * 2 * 2
    assert {(t.symbol, t.horizon, t.fold, t.model) for t in tasks} == {
        (s, h, f, m)
        for s in ("AAPL", "BTC/USD")
        for h in (1, 5)
        for f in (0, 1)
        for m in ("logreg", "gboost")
    }
    for t in tasks:  # a fold trains on its in-sample window only
        assert (t.start, t.end) == (folds[t.fold or 0].in_start, folds[t.fold or 0].in_end)
    names = {t.registry_name for t in tasks}
    assert len(names) == len(tasks)
    assert "gboost-BTC_USD-h5-f1" in names and "logreg-AAPL-h1-f0" in names

    (plain,) = plan_training(["AAPL"], [3], None, start=START, end=END, models=("gboost",))
    assert (plain.fold, plain.start, plain.end, plain.registry_name) == (None, START, END, "gboost-AAPL-h3")
    with pytest.raises(ValueError, match="needs a start and an end"):
        plan_training(["AAPL"], [3], None)
    with pytest.raises(ValueError, match="unknown model"):
        plan_training(["AAPL"], [3], folds, models=("forest",))
    with pytest.raises(ValueError, match="horizons"):
        plan_training(["AAPL"], [0], folds)


def test_fit_task_uses_only_its_symbol_and_window() -> None:
    mid = BARS["AAPL"][400].ts
    task = TrainingTask("AAPL", 3, 0, START, mid)
    everything = [b for pair in zip(BARS["AAPL"], BARS["MSFT"], strict=True) for b in pair]
    fitted = fit_task(task, everything)
    alone = fit_task(task, BARS["AAPL"][:400])
    assert fitted.last_ts < mid and fitted.train_rows == alone.train_rows
    assert (fitted.test_accuracy, fitted.test_brier) == (alone.test_accuracy, alone.test_brier)


def test_distributed_training_equals_a_serial_fit_and_saves_only_here(tmp_path: Path) -> None:
    tasks = plan_training(["AAPL", "MSFT"], [3], None, start=START, end=END)
    registry = SpyRegistry(tmp_path)
    seen: list[TaskReport] = []
    loads: list[str] = []

    def loader(task: TrainingTask) -> list[Bar]:
        loads.append(task.symbol)
        return load(task)

    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        reports = train_distributed(pool, tasks, loader, registry, on_done=seen.append)
    assert len(tasks) == 4 and loads == ["AAPL", "MSFT"]  # both models of a symbol share its bars
    assert [r.task for r in reports] == tasks and all(r.ok and r.error is None for r in reports)
    assert sorted(r.task.registry_name for r in seen) == sorted(t.registry_name for t in tasks)
    here = (os.getpid(), threading.get_ident())
    assert sorted(name for name, *_ in registry.saves) == sorted(t.registry_name for t in tasks)
    assert {(pid, tid) for _, pid, tid in registry.saves} == {here}

    for task, report in zip(tasks, reports, strict=True):
        serial = fit_task(task, load(task))
        assert report.report is not None
        assert (report.report.test_accuracy, report.report.test_brier, report.report.train_rows) == (
            serial.test_accuracy,
            serial.test_brier,
            serial.train_rows,
        )
        loaded = registry.load(task.registry_name)
        assert loaded.info.metadata["symbol"] == task.symbol and loaded.info.metadata["horizon"] == 3
        rows = build_dataset(load(task), 3).rows[-30:]
        assert loaded.estimator.predict_proba(rows).tolist() == serial.estimator.predict_proba(rows).tolist()


def test_a_failing_task_is_reported_and_the_others_are_saved(tmp_path: Path) -> None:
    good = TrainingTask("AAPL", 3, None, START, END)
    short = TrainingTask("MSFT", 3, None, START, START + timedelta(minutes=90))  # too few bars to train
    unloadable = TrainingTask("TSLA", 3, None, START, END)
    also_good = TrainingTask("MSFT", 3, 1, START, END, model="gboost")
    registry = ModelRegistry(tmp_path)

    def loader(task: TrainingTask) -> list[Bar]:
        if task.symbol == "TSLA":
            raise KeyError("no TSLA bars stored")
        return load(task)

    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        reports = train_distributed(pool, [good, short, unloadable, also_good], loader, registry)
    ok, failed, not_loaded, ok2 = reports
    assert ok.ok and ok2.ok
    assert failed.report is None and failed.error is not None and "TrainingDataError" in failed.error
    assert not_loaded.error is not None and not_loaded.error.startswith("loading bars: KeyError")
    assert not failed.cancelled and not not_loaded.cancelled
    assert sorted(registry.names()) == ["gboost-MSFT-h3-f1", "logreg-AAPL-h3"]


class RecordingPool(cf.ThreadPoolExecutor):
    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.futures: list[cf.Future[Any]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


def test_cancel_stops_submitting_and_drops_queued_fits(tmp_path: Path) -> None:
    tasks = plan_training(
        ["AAPL", "MSFT", "NVDA", "AMD"], [3], None, start=START, end=END, models=("logreg",)
    )
    registry = ModelRegistry(tmp_path)
    cancel = threading.Event()
    loaded: list[TrainingTask] = []

    def loader(task: TrainingTask) -> list[Bar]:
        loaded.append(task)
        if len(loaded) == 3:
            cancel.set()
        return load(task) if task.symbol in BARS else []

    release = threading.Event()
    safety = threading.Timer(60, release.set)  # were the queued fits awaited, they would run after this
    safety.start()
    with RecordingPool(max_workers=1) as pool:
        blocker = pool.submit(release.wait)  # the only worker is busy: the fits stay queued
        reports = train_distributed(pool, tasks, loader, registry, cancel=cancel)
        assert not blocker.done()
        release.set()
    safety.cancel()
    assert loaded == tasks[:3]  # cancel came while loading the third: it and the fourth were not submitted
    fits = pool.futures[1:]
    assert len(fits) == 2 and all(f.cancelled() for f in fits)  # the queued fits never ran
    assert all(r.cancelled and r.report is None for r in reports)
    assert registry.names() == []


def test_a_cancel_set_before_the_start_submits_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    tasks = plan_training(["AAPL"], [3], None, start=START, end=END)

    def loader(task: TrainingTask) -> list[Bar]:
        raise AssertionError("nothing is loaded once cancelled")

    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        reports = train_distributed(pool, tasks, loader, ModelRegistry(tmp_path), cancel=cancel)
    assert [r.error for r in reports] == ["cancelled", "cancelled"]
