"""The sweep coordinator: one thread per sweep drives a synchronous Dask client.

:class:`SweepRunner` is what the Strategy lab window and the headless sweep use. ``start`` returns a
:class:`SweepHandle` at once; the sweep runs on its own thread, which

1. expands the spec into points (refused ones never reach a worker) and, on ``resume``, reads the
   points already stored, which are skipped;
2. connects to the cluster (starting the local one on the first sweep; versions checked on every
   worker), loads the bars once and packs them into one loader task (its result is fetched once by
   each worker; unlike scattered data, the scheduler computes it again if every holder dies);
3. keeps a bounded number of points in flight (so a cancel drops little, and Bayesian search asks
   with fresh results), writing each result to the :class:`SweepStore` as it completes and telling
   the listener (``on_point`` per point, ``on_progress`` at most :data:`PROGRESS_HZ` times a second,
   ``on_finished`` once with the best point).

Failures: a point that kills its worker :data:`KILLED_WORKER_ATTEMPTS` times is stored as an error
(``KilledWorker``; Dask also blames a point that merely shared the dying worker, so a KilledWorker
point is given one more run of its own first), a strategy that raises comes back as an error point,
a dead scheduler ends the sweep FAILED with the reason (the points done stay stored, a resume
continues from them). Cancel:
queued points are dropped at once (``client.cancel``), running ones stop at their next cancel check
(a named ``distributed.Event``), and the sweep ends only once no worker runs one of its points.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import dask

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.lab.cluster import Cluster, ClusterError, ConnectCancelled, LabSettings
from services.lab.folds import Fold, FoldError
from services.lab.model import (
    PointResult,
    SearchKind,
    SweepListener,
    SweepOutcome,
    SweepProgress,
    SweepSpec,
    SweepState,
    point_key,
)
from services.lab.packing import pack_bars
from services.lab.search import ListSource, OptunaSource, PointSource, metric_value
from services.lab.spec import budget, expand, params_json
from services.lab.store import SweepStore
from services.lab.tasks import Costs, dataset_blob, load_dataset, run_point
from services.lab.versions import heron_code_version
from services.lab.walkforward import IN_SAMPLE, OUT_OF_SAMPLE, best_in_sample, folds_of, oos_key
from services.strategies.api import Strategy
from services.strategies.backtest import BacktestResult, run_backtest

log = logging.getLogger(__name__)

#: How long copying the bars to every worker may take before the sweep starts without it (s).
SPREAD_TIMEOUT_S: Final = 30.0

BarLoader = Callable[[str, Timeframe, datetime, datetime], list[Bar]]

PROGRESS_HZ: Final = 10.0
#: Seconds of completions the rate (and so the ETA) is measured over.
RATE_WINDOW_S: Final = 20.0
#: Dask's own retry count for a task whose worker died (``distributed.scheduler.allowed-failures``
#: is 3: the fourth death gives KilledWorker); the point is then stored as an error.
KILLED_WORKER_ATTEMPTS: Final = 4
#: Resubmissions of a point whose future was lost without an error (data lost with its workers).
MAX_RESUBMITS: Final = 3
#: How long a cancelled sweep waits for its running points to stop (they check every ~0.2 s).
CANCEL_DRAIN_S: Final = 5.0


class SchedulerLost(RuntimeError):
    pass


class SweepHandle:
    """A running sweep: its id, cancel, and its outcome once done. Thread-safe."""

    def __init__(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._outcome: SweepOutcome | None = None

    def cancel(self) -> None:
        """Drop the queued points at once and stop the running ones (within about a second)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> SweepOutcome | None:
        """The outcome, or None if the sweep is still running after ``timeout`` seconds."""
        self._done.wait(timeout)
        return self._outcome

    def _finish(self, outcome: SweepOutcome) -> None:
        self._outcome = outcome
        self._done.set()


def better(a: PointResult, b: PointResult | None, metric: str) -> bool:
    """Is ``a`` better than ``b`` by ``metric`` (maximised; max_drawdown minimised)?"""
    va = metric_value(a, metric)
    if va is None:
        return False
    vb = None if b is None else metric_value(b, metric)
    if vb is None:
        return True
    return va < vb if metric == "max_drawdown" else va > vb


def best_of(results: list[PointResult], metric: str) -> PointResult | None:
    best: PointResult | None = None
    for r in results:
        if better(r, best, metric):
            best = r
    return best


def costs_of(spec: SweepSpec) -> Costs:
    return Costs(spec.initial_cash, spec.commission_per_share, spec.slippage_bps, spec.timeframe)


def load_all(spec: SweepSpec, load_bars: BarLoader) -> list[Bar]:
    """Every symbol's bars over the spec's range, merged in replay order (time, then symbol)."""
    bars: list[Bar] = []
    for symbol in spec.symbols:
        bars.extend(load_bars(symbol, spec.timeframe, spec.start, spec.end))
    bars.sort(key=lambda b: (b.ts, b.symbol))
    return bars


def strategy_params(spec: SweepSpec, point: Mapping[str, Any]) -> dict[str, Any]:
    return {**params_json(spec.fixed), **params_json(point), "symbols": list(spec.symbols)}


def recompute(
    spec: SweepSpec,
    params: Mapping[str, Any],
    load_bars: BarLoader,
    registry: Mapping[str, type[Strategy]],
) -> BacktestResult:
    """One point run here (blocking), with its equity curve and trades: the same numbers a worker got."""
    cls = registry[spec.strategy]
    swept = {k: v for k, v in params.items() if k != "symbols"}
    return run_backtest(
        cls(strategy_params(spec, swept)), load_all(spec, load_bars), config=costs_of(spec).config()
    )


class SweepRunner:
    """Starts sweeps on a cluster it owns (created on the first sweep, closed by :meth:`close`)."""

    def __init__(
        self,
        store: SweepStore,
        load_bars: BarLoader,
        settings: LabSettings,
        registry: Mapping[str, type[Strategy]],
    ) -> None:
        self.store = store
        self.load_bars = load_bars
        self.settings = settings
        self.registry = dict(registry)
        self.cluster = Cluster(settings)
        self._threads: list[threading.Thread] = []

    def start(self, spec: SweepSpec, listener: SweepListener, *, resume: str | None = None) -> SweepHandle:
        """Start (or, with ``resume``, continue) a sweep on a coordinator thread; returns at once.

        The listener hears of the points computed by this run; a resumed sweep's stored points are
        in ``store.results(sweep_id)`` (and counted in its progress from the first report on).
        """
        if spec.strategy not in self.registry:
            raise ValueError(f"unknown strategy {spec.strategy!r}")
        if resume is not None:
            if self.store.get(resume) is None:
                raise ValueError(f"no sweep {resume!r} is stored")
            self.store.reopen(resume)
            sweep_id = resume
        else:
            sweep_id = self.store.create(spec, 0, heron_code_version())
        handle = SweepHandle(sweep_id)
        sweep = _Sweep(self, spec, listener, handle, resumed=resume is not None)
        thread = threading.Thread(target=sweep.run, name=f"sweep-{sweep_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return handle

    def close(self) -> None:
        """Close the client (and the local cluster this started). Running sweeps should be cancelled
        and waited for first; a sweep still running then fails with the closed client."""
        self.cluster.close()


@dataclass(eq=False, slots=True)
class Job:
    """One stream of points with one window: the plain sweep, a fold's in-sample sweep, or a fold's
    out-of-sample run (a one-point list measured from ``measure_from``)."""

    source: PointSource
    phase: str = "sweep"
    fold: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    measure_from: datetime | None = None
    running: int = 0
    finished: bool = False

    def key(self, point: Mapping[str, Any]) -> str:
        if self.phase == OUT_OF_SAMPLE and self.fold is not None:
            return oos_key(point, self.fold)
        return point_key(point, self.fold)


class _Sweep:
    """One sweep's run on its coordinator thread."""

    def __init__(
        self,
        runner: SweepRunner,
        spec: SweepSpec,
        listener: SweepListener,
        handle: SweepHandle,
        resumed: bool,
    ) -> None:
        self.runner, self.spec, self.listener, self.handle = runner, spec, listener, handle
        self.resumed = resumed
        self.store = runner.store
        self.cls = runner.registry[spec.strategy]
        self.costs = costs_of(spec)
        self.total = 0
        self.completed = 0
        self.errors = 0
        self.workers = 0
        self.best: PointResult | None = None
        self.began = time.monotonic()
        self.jobs: list[Job] = []
        self.done: list[PointResult] = []
        self.folds: dict[int, Fold] = {}
        self._times: deque[float] = deque()
        self._next_progress = 0.0
        self._inflight: dict[Any, tuple[Job, dict[str, Any], int]] = {}
        self._finished: queue.Queue[Any] = queue.Queue()
        self._flag = f"heron-lab-cancel-{handle.sweep_id}-{uuid.uuid4().hex[:8]}"

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> None:
        state, message = SweepState.FAILED, ""
        try:
            state, message = self._run()
        except (ClusterError, FoldError) as exc:
            message = str(exc)
        except SchedulerLost as exc:
            message = (
                f"{exc}; the {self.completed} point(s) done are stored: to continue, Resume it under Past"
                " sweeps in the Strategy lab, or run the same SPEC headless again"
            )
        except Exception as exc:
            log.exception("sweep %s failed", self.handle.sweep_id)
            message = f"{type(exc).__name__}: {exc}"
        if state is SweepState.FAILED:
            log.warning("sweep %s failed: %s", self.handle.sweep_id, message)
        try:
            self.store.finish(self.handle.sweep_id, state, message)
        except Exception:
            log.exception("sweep %s: its end could not be stored", self.handle.sweep_id)
        outcome = SweepOutcome(
            sweep_id=self.handle.sweep_id,
            state=state,
            total=self.total,
            completed=self.completed,
            errors=self.errors,
            workers=self.workers,
            elapsed_s=time.monotonic() - self.began,
            best=self.best,
            message=message,
        )
        self._progress(force=True)
        try:
            self.listener.on_finished(outcome)
        finally:
            self.handle._finish(outcome)

    def _plan(self) -> None:
        """The jobs, the total, and what a resumed sweep finds done."""
        valid, refused = expand(self.spec, self.runner.registry)
        if refused:
            log.info("sweep %s: %d point(s) refused by the strategy", self.handle.sweep_id, len(refused))
        stored = self.store.results(self.handle.sweep_id) if self.resumed else []
        if self.spec.walk_forward is None:
            self._add_job(valid, [r for r in stored if r.phase == "sweep"], Job(ListSource((), ())))
        else:
            self.folds = {f.index: f for f in folds_of(self.spec)}
            for f in self.folds.values():
                mine = [r for r in stored if r.phase == IN_SAMPLE and r.fold == f.index]
                self._add_job(valid, mine, Job(ListSource((), ()), IN_SAMPLE, f.index, f.in_start, f.in_end))
                oos = [r for r in stored if r.phase == OUT_OF_SAMPLE and r.fold == f.index]
                self.total += 1
                self._count(oos[:1])
        self.store.set_total(self.handle.sweep_id, self.total)

    def _add_job(self, valid: list[dict[str, Any]], stored: list[PointResult], job: Job) -> None:
        plain = [replace(r, key=point_key(r.params)) for r in stored]
        if self.spec.search is SearchKind.BAYES:
            job.source = OptunaSource(self.spec, self.cls, valid, budget(self.spec, len(valid)), plain)
            done = stored
        else:
            job.source = ListSource(valid, (r.key for r in plain))
            keys = {point_key(p) for p in valid}
            done = [r for r, p in zip(stored, plain, strict=True) if p.key in keys]
        self.total += job.source.total
        self._count(done)
        self.jobs.append(job)

    def _count(self, done: list[PointResult]) -> None:
        self.completed += len(done)
        self.errors += sum(1 for r in done if r.error)
        self.done.extend(done)
        for r in done:
            self._consider(r)

    def _consider(self, result: PointResult) -> None:
        if self.folds and result.phase != OUT_OF_SAMPLE:
            return  # a walk-forward's best is out of sample
        if better(result, self.best, self.spec.metric):
            self.best = result

    def _run(self) -> tuple[SweepState, str]:
        self._plan()
        if self.handle.cancelled:
            return SweepState.CANCELLED, "cancelled before it started"
        if self.completed >= self.total:
            return SweepState.COMPLETED, ""
        try:
            client = self.runner.cluster.client(cancelled=lambda: self.handle.cancelled)
        except ConnectCancelled:
            return SweepState.CANCELLED, "cancelled while connecting to the scheduler"
        self.workers = self.runner.cluster.worker_count()
        bars = load_all(self.spec, self.runner.load_bars)
        if not bars:
            raise ClusterError(
                f"no {self.spec.timeframe.value} bars for {', '.join(self.spec.symbols)} between "
                f"{self.spec.start.isoformat()} and {self.spec.end.isoformat()}"
            )
        packed = pack_bars(bars)
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "2GB"}):
            dataset = client.submit(
                load_dataset,
                dataset_blob(packed),
                key=f"heron-lab-data-{self.handle.sweep_id}-{packed.digest}",
                pure=False,
            )
        from distributed import Event

        spread(client, dataset, self.workers, lambda: self.handle.cancelled)
        cancel_event = Event(self._flag, client=client)
        cap = max(1, self.workers) if self.spec.search is SearchKind.BAYES else max(2, 2 * self.workers)
        try:
            return self._loop(client, dataset, cancel_event, cap)
        finally:
            with contextlib.suppress(Exception):
                client.cancel([dataset])

    def _fill(self, client: Any, dataset: Any, cap: int) -> None:
        """Submit points, job by job in turn, up to ``cap`` in flight; a job with nothing left and
        nothing running is finished (a fold's in-sample sweep then adds its out-of-sample run)."""
        moved = True
        while moved and len(self._inflight) < cap:
            moved = False
            for job in list(self.jobs):
                if job.finished or len(self._inflight) >= cap:
                    continue
                point = job.source.next()
                if point is not None:
                    self._submit(client, job, point, dataset, 0)
                    moved = True
                elif job.running == 0:
                    job.finished = True
                    moved = self._job_done(job) or moved

    def _job_done(self, job: Job) -> bool:
        """A fold's in-sample sweep is done: queue its best point's out-of-sample run (True if added)."""
        if job.phase != IN_SAMPLE or job.fold is None:
            return False
        fold = self.folds[job.fold]
        if any(r.phase == OUT_OF_SAMPLE and r.fold == job.fold for r in self.done):
            return False
        best = best_in_sample(self.done, job.fold, self.spec.metric)
        if best is None:
            result = PointResult(
                key=oos_key({}, job.fold),
                params={},
                metrics=None,
                error=f"no in-sample point of fold {job.fold} has a {self.spec.metric}",
                fold=job.fold,
                phase=OUT_OF_SAMPLE,
            )
            self._record(result, None)
            return False
        params = {k: v for k, v in best.params.items() if k in self.spec.space}
        run = Job(
            ListSource([params], ()), OUT_OF_SAMPLE, job.fold, fold.in_start, fold.out_end, fold.out_start
        )
        self.jobs.append(run)
        return True

    def _loop(self, client: Any, dataset: Any, event: Any, cap: int) -> tuple[SweepState, str]:
        last_check = time.monotonic()
        while True:
            if self.handle.cancelled:
                self._cancel(client, event)
                return SweepState.CANCELLED, "cancelled"
            self._fill(client, dataset, cap)
            if not self._inflight:
                return SweepState.COMPLETED, ""
            try:
                fut = self._finished.get(timeout=0.1)
            except queue.Empty:
                fut = None
            now = time.monotonic()
            if client.status != "running":
                raise SchedulerLost(f"the Dask scheduler went away (client {client.status})")
            ready = [fut] if fut is not None else []
            if now - last_check > 1.0:  # a missed callback never stalls the sweep
                last_check = now
                ready += [f for f in self._inflight if f.done()]
                self.workers = self.runner.cluster.worker_count()
            for f in ready:
                if f in self._inflight:
                    self._collect(client, f, dataset)
            self._progress()

    def _submit(self, client: Any, job: Job, point: dict[str, Any], dataset: Any, attempt: int) -> None:
        fut = client.submit(
            run_point,
            self.cls,
            strategy_params(self.spec, point),
            dataset,
            self.costs,
            self._flag,
            job.start,
            job.end,
            job.measure_from,
            key=f"heron-lab-{self.handle.sweep_id}-{job.key(point)}-{attempt}",
            pure=False,
            retries=0,
        )
        self._inflight[fut] = (job, point, attempt)
        job.running += 1
        fut.add_done_callback(self._finished.put)

    def _collect(self, client: Any, fut: Any, dataset: Any) -> None:
        job, point, attempt = self._inflight.pop(fut)
        job.running -= 1
        base = PointResult(key=job.key(point), params=params_json(point), metrics=None, fold=job.fold,
                           phase=job.phase)  # fmt: skip
        status, out = fut.status, None
        if status == "finished":
            try:
                out = fut.result(timeout=60)
            except Exception as exc:  # finished, then lost with its worker before we fetched it
                log.info("sweep %s: a result was lost before it was fetched (%s)", self.handle.sweep_id, exc)
                status = "lost"
        if out is not None:
            if out.get("cancelled"):
                return
            result = replace(
                base,
                metrics=out.get("metrics"),
                error=out.get("error"),
                worker=out.get("worker"),
                elapsed_s=float(out.get("elapsed_s", 0.0)),
            )
        elif status == "error":
            failure = fut.exception()
            from distributed.scheduler import KilledWorker

            if isinstance(failure, KilledWorker) and attempt < 1:
                self._submit(client, job, point, dataset, attempt + 1)
                return
            if isinstance(failure, KilledWorker):
                error = (
                    f"KilledWorker: the point killed its worker {KILLED_WORKER_ATTEMPTS} times ({failure})"
                )
            else:
                error = f"{type(failure).__name__}: {failure}"
            result = replace(base, error=error)
        else:  # cancelled without our asking: the scheduler or the data went away
            if client.status != "running":
                raise SchedulerLost(f"the Dask scheduler went away (client {client.status})")
            if attempt + 1 > MAX_RESUBMITS:
                result = replace(base, error="lost by the cluster")
            else:
                self._submit(client, job, point, dataset, attempt + 1)
                return
        self._record(result, job, point)

    def _record(self, result: PointResult, job: Job | None, point: Mapping[str, Any] | None = None) -> None:
        self.store.record(self.handle.sweep_id, result)
        if job is not None and point is not None:
            job.source.done(point_key(point), result)
        self.completed += 1
        if result.error:
            self.errors += 1
        self.done.append(result)
        self._consider(result)
        self._times.append(time.monotonic())
        self.listener.on_point(result)

    def _cancel(self, client: Any, event: Any) -> None:
        """Set the flag running points check, drop the queue, wait until no worker runs our points."""
        with contextlib.suppress(Exception):
            event.set()
        futures = list(self._inflight)
        self._inflight.clear()
        with contextlib.suppress(Exception):
            client.cancel(futures, force=True)
        prefix = f"heron-lab-{self.handle.sweep_id}-"
        deadline = time.monotonic() + CANCEL_DRAIN_S
        while time.monotonic() < deadline:
            try:
                if not running_keys(client, prefix):
                    return
            except Exception:
                return
            time.sleep(0.05)
        log.warning(
            "sweep %s: points still ran %.0f s after the cancel", self.handle.sweep_id, CANCEL_DRAIN_S
        )

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_progress:
            return
        self._next_progress = now + 1.0 / PROGRESS_HZ
        while self._times and now - self._times[0] > RATE_WINDOW_S:
            self._times.popleft()
        span = now - self._times[0] if len(self._times) > 1 else 0.0
        rate = (len(self._times) - 1) / span if span > 0 else None
        left = max(0, self.total - self.completed)
        self.listener.on_progress(
            SweepProgress(
                sweep_id=self.handle.sweep_id,
                total=self.total,
                completed=self.completed,
                errors=self.errors,
                running=len(self._inflight),
                rate_per_s=rate,
                eta_s=(left / rate) if rate else (0.0 if left == 0 else None),
                workers=self.workers,
            )
        )


def spread(client: Any, dataset: Any, workers: int, cancelled: Callable[[], bool]) -> None:
    """Copy the loaded bars to every worker before the first point is sent. Left to Dask, the
    other workers fetch them from the first one while its first point runs, and that worker's busy
    process serves the copy late (some 0.5 s of a two-worker sweep's start). Best effort: a copy
    that fails is fetched on demand as before."""
    while not dataset.done() and not cancelled() and client.status == "running":
        time.sleep(0.01)
    if workers > 1 and dataset.status == "finished" and not cancelled():
        try:
            client.replicate([dataset], callback_timeout=SPREAD_TIMEOUT_S)  # a stuck worker: on demand
        except Exception as exc:  # a worker gone meanwhile: the copy comes on demand
            log.info("the bars were not copied to every worker up front (%s)", exc)


def _executing(dask_worker: Any, prefix: str) -> list[str]:
    return [str(ts.key) for ts in dask_worker.state.executing if str(ts.key).startswith(prefix)]


def running_keys(client: Any, prefix: str) -> list[str]:
    """Keys starting with ``prefix`` that some worker is executing right now (asked of each worker)."""
    found = client.run(_executing, prefix=prefix, on_error="ignore")
    return [k for keys in found.values() if isinstance(keys, list) for k in keys]
