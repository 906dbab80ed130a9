"""A sweep engine for the lab window's tests: it parses the SPEC JSON form as the headless runner
documents it, expands a grid through the strategy's own parameter checks, and runs a sweep on its
own thread, reporting each point to the listener from that thread (as the coordinator does). A
point's figures are a known function of its parameters, so a test can say which point is best."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.domain.enums import Timeframe
from services.lab.model import (
    FoldKind,
    PointResult,
    SearchKind,
    SweepListener,
    SweepOutcome,
    SweepProgress,
    SweepSpec,
    SweepState,
    WalkForwardSpec,
    point_key,
)
from services.strategies.api import ParamError, Strategy
from widgets.lab.backend import Engine, PastSweep

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class FakeSpecError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def figures(params: Mapping[str, Any]) -> dict[str, float | int | None]:
    """Sharpe peaks at fast=5, slow=20; the return follows it."""
    fast, slow = int(params.get("fast", 10)), int(params.get("slow", 30))
    sharpe = 2.0 - abs(fast - 5) * 0.2 - abs(slow - 20) * 0.05
    return {"total_return": sharpe / 100, "sharpe": sharpe, "max_drawdown": 0.02 + abs(fast - 5) / 100,
            "trades": fast + slow, "win_rate": 0.5, "final_equity": 100_000 * (1 + sharpe / 100)}  # fmt: skip


@dataclass
class FakeRun:
    sweep_id: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def cancel(self) -> None:
        self.cancelled.set()


class FakeBackend:
    def __init__(self, registry: Mapping[str, type[Strategy]], *, delay: float = 0.0) -> None:
        self.registry = dict(registry)
        self.delay = delay
        self.started: list[tuple[SweepSpec, Engine, str | None]] = []
        self.stored: dict[str, tuple[SweepSpec, SweepState, list[PointResult]]] = {}
        self.fail_on: Callable[[Mapping[str, Any]], str | None] = lambda params: None
        self.refuse_start: str | None = None
        self.gate: threading.Semaphore | None = None  # each point takes one permit
        self.runs: list[FakeRun] = []
        self.stitch_error: str | None = None

    def parse(self, data: Mapping[str, Any]) -> SweepSpec:
        strategy = data.get("strategy")
        if strategy not in self.registry:
            raise FakeSpecError("strategy", f"unknown strategy {strategy!r}")
        specs = {p.name: p for p in self.registry[strategy].param_specs()}
        space: dict[str, tuple[Any, ...]] = {}
        for name, values in dict(data.get("space", {})).items():
            if name not in specs:
                raise FakeSpecError(f"space.{name}", "no such parameter")
            space[name] = tuple(specs[name].coerce(v) for v in values)
        fixed = {n: specs[n].coerce(v) for n, v in dict(data.get("fixed", {})).items()}
        days = int(data.get("days", 20))
        wf = data.get("walk_forward")
        return SweepSpec(
            strategy=strategy, symbols=tuple(data["symbols"]), timeframe=Timeframe(data["timeframe"]),
            start=NOW - timedelta(days=days), end=NOW, search=SearchKind(data["search"]), space=space,
            fixed=fixed, metric=data.get("metric", "sharpe"), max_points=data.get("points"),
            initial_cash=str(data.get("initial_cash", "100000")),
            commission_per_share=str(data.get("commission_per_share", "0")),
            slippage_bps=str(data.get("slippage_bps", "0")),
            walk_forward=None if wf is None else WalkForwardSpec(
                FoldKind(wf["kind"]), wf["folds"], wf["in_sample_days"], wf["out_of_sample_days"]),
        )  # fmt: skip

    def expand(self, spec: SweepSpec) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        cls = self.registry[spec.strategy]
        valid: list[dict[str, Any]] = []
        refused: list[tuple[dict[str, Any], str]] = []
        names = list(spec.space)
        for combo in itertools.product(*(spec.space[n] for n in names)):
            params = dict(zip(names, combo, strict=True))
            try:
                cls.resolve_params({**spec.fixed, **params})
            except ParamError as exc:
                refused.append((params, str(exc)))
            else:
                valid.append(params)
        if spec.search is SearchKind.RANDOM and spec.max_points is not None:
            valid = valid[: spec.max_points]  # the engine draws a seeded sample
        return valid, refused

    def start(
        self, spec: SweepSpec, listener: SweepListener, *, engine: Engine, resume: str | None = None
    ) -> FakeRun:
        if self.refuse_start is not None:
            raise RuntimeError(self.refuse_start)
        self.started.append((spec, engine, resume))
        sweep_id = resume or f"sw{len(self.started)}"
        run = FakeRun(sweep_id)
        points, _ = FakeBackend.expand(self, spec)  # the engine's own expansion, on its own account
        if spec.max_points is not None:
            points = points[: spec.max_points]
        done_before = {p.key for p in self.stored.get(sweep_id, (spec, SweepState.RUNNING, []))[2]}
        self.stored.setdefault(sweep_id, (spec, SweepState.RUNNING, []))
        run.thread = threading.Thread(
            target=self._run, args=(run, spec, points, listener, done_before), daemon=True
        )
        self.runs.append(run)
        run.thread.start()
        return run

    def _tasks(
        self, spec: SweepSpec, points: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], int | None, str]]:
        if spec.walk_forward is None:
            return [(p, None, "sweep") for p in points]
        out: list[tuple[dict[str, Any], int | None, str]] = []
        for fold in range(spec.walk_forward.folds):
            out += [(p, fold, "in_sample") for p in points]
            out.append(({"fast": 5, "slow": 20 + fold}, fold, "out_of_sample"))
        return out

    def _run(
        self,
        run: FakeRun,
        spec: SweepSpec,
        points: list[dict[str, Any]],
        listener: SweepListener,
        done: set[str],
    ) -> None:
        tasks = self._tasks(spec, points)
        started, completed, errors = time.monotonic(), 0, 0
        results = self.stored[run.sweep_id][2]
        for params, fold, phase in tasks:
            key = point_key(params, fold) + phase
            if key in done:
                completed += 1
                continue
            if run.cancelled.is_set():
                break
            if self.gate is not None:
                self.gate.acquire(timeout=10)
            if self.delay:
                time.sleep(self.delay)
            error = self.fail_on(params)
            result = PointResult(key, params, None if error else figures(params), error, fold, phase, "w1")
            results.append(result)
            completed += 1
            errors += bool(error)
            listener.on_point(result)
            elapsed = time.monotonic() - started
            rate = completed / elapsed if elapsed > 0 else None
            eta = (len(tasks) - completed) / rate if rate else None
            listener.on_progress(SweepProgress(run.sweep_id, len(tasks), completed, errors, 1, rate, eta, 2))
        state = SweepState.CANCELLED if run.cancelled.is_set() else SweepState.COMPLETED
        self.stored[run.sweep_id] = (spec, state, results)
        listener.on_finished(
            SweepOutcome(
                run.sweep_id, state, len(tasks), completed, errors, 2, time.monotonic() - started, None
            )
        )

    def past(self) -> Sequence[PastSweep]:
        return [PastSweep(sid, spec, state, len(self.expand(spec)[0]), len(res), NOW)
                for sid, (spec, state, res) in self.stored.items()]  # fmt: skip

    def results(self, sweep_id: str) -> Sequence[PointResult]:
        return list(self.stored[sweep_id][2])

    def stitched_equity(
        self, spec: SweepSpec, results: Sequence[PointResult]
    ) -> list[tuple[datetime, Decimal]]:
        """One point per out-of-sample window: the cash grown by each fold's return in turn."""
        if self.stitch_error is not None:
            raise RuntimeError(self.stitch_error)
        level, out = Decimal(spec.initial_cash), [(NOW, Decimal(spec.initial_cash))]
        for r in sorted((r for r in results if r.phase == "out_of_sample"), key=lambda r: r.fold or 0):
            level *= 1 + Decimal(str((r.metrics or {}).get("total_return") or 0))
            out.append((NOW + timedelta(days=1 + (r.fold or 0)), level))
        return out
