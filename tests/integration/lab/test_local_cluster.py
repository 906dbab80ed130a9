"""Sweeps on a real two-worker Dask LocalCluster (processes on 127.0.0.1), against serial runs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.lab.cluster import LabSettings
from services.lab.coordinator import SweepRunner, recompute, running_keys, strategy_params
from services.lab.model import SweepState, point_key
from services.lab.spec import expand, parse_spec
from services.lab.store import SweepStore
from services.lab.tasks import metrics_of
from services.storage import Database
from tests.support.polling import wait_for
from tests.unit.lab.support import NOW, Recorder, history, loader, registry, rising, spec_data, trace_lines

#: Bars per symbol: small for the equivalence checks, larger where a point must still be running
#: when the test acts (a kill, a cancel).
SMALL = 6_000
LARGE = 40_000


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return {
        **history(SMALL, ("AAPL", "MSFT")),
        "BIG": history(LARGE, ("BIG",))["BIG"],
        "UP": rising("UP", 500),
    }


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> Iterator[SweepRunner]:
    db = Database.open(None, tmp_path_factory.mktemp("lab-db"))
    sweeps = SweepRunner(SweepStore(db), loader(data), LabSettings(workers=2), registry())
    yield sweeps
    sweeps.close()
    db.dispose()


def spec(**over: Any) -> Any:
    return parse_spec(spec_data(**over), registry(), now=NOW)


def test_a_sweep_on_two_workers_gives_exactly_the_serial_metrics(runner: SweepRunner, data: Any) -> None:
    sweep = spec(symbols=["AAPL", "MSFT"], space={"fast": [2, 3, 5, 8], "slow": [5, 13, 21]},
                 fixed={"allow_short": True}, commission_per_share="0.01", slippage_bps="2")  # fmt: skip
    listener = Recorder()
    outcome = runner.start(sweep, listener).wait(120)
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    valid, refused = expand(sweep, registry())
    assert len(refused) == 2  # fast 5 and 8 against slow 5: never sent
    assert outcome.total == outcome.completed == len(valid) == 10 and outcome.errors == 0
    assert outcome.workers == 2
    assert len({r.worker for r in listener.points}) == 2  # both workers did some
    serial = {
        point_key(p): metrics_of(recompute(sweep, p, loader(data), registry()), Decimal(sweep.initial_cash))
        for p in valid
    }
    assert {r.key: dict(r.metrics or {}) for r in listener.points} == serial
    stored = runner.store.results(outcome.sweep_id)
    assert {r.key: dict(r.metrics or {}) for r in stored} == serial
    assert listener.finished == [outcome]
    best = max(serial.items(), key=lambda kv: kv[1]["sharpe"] or float("-inf"))
    assert outcome.best is not None and outcome.best.key == best[0]
    assert listener.progress[-1].completed == 10 and listener.progress[-1].eta_s == 0.0
    gaps = [b - a for a, b in zip(listener.progress_times[:-2], listener.progress_times[1:-1], strict=True)]
    assert all(g >= 0.099 for g in gaps)  # at most 10 a second (the last one, at the end, is forced)


def test_a_strategy_that_raises_comes_back_as_an_error_point(runner: SweepRunner) -> None:
    sweep = spec(strategy="traced_sma", space={"fast": [2], "slow": [10]}, fixed={"crash_at": 50})
    outcome = runner.start(sweep, Recorder()).wait(60)
    assert outcome is not None and outcome.state is SweepState.COMPLETED
    assert outcome.errors == 1
    (point,) = runner.store.results(outcome.sweep_id)
    assert point.metrics is None and point.error is not None and "boom at bar 50" in point.error


def worker_pids(runner: SweepRunner) -> dict[str, int]:
    return runner.cluster.client().run(os.getpid)


def test_a_worker_killed_mid_sweep_loses_no_point(runner: SweepRunner, data: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    sweep = spec(strategy="traced_sma", symbols=["BIG"], space={"fast": [2, 3, 4, 5], "slow": [10, 20]},
                 fixed={"trace": str(trace)})  # fmt: skip
    pids = worker_pids(runner)
    listener = Recorder()
    handle = runner.start(sweep, listener)
    wait_for("two points started", lambda: len(trace_lines(trace)) >= 2, 60)
    victim = next(iter(pids.values()))
    os.kill(victim, signal.SIGKILL)
    outcome = handle.wait(120)
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    assert outcome.completed == 8 and outcome.errors == 0
    assert sorted(r.key for r in runner.store.results(outcome.sweep_id)) == sorted(
        point_key(p) for p in expand(sweep, registry())[0]
    )
    wait_for("the nanny restarted the worker", lambda: len(worker_pids(runner)) == 2, 60)
    assert victim not in worker_pids(runner).values()


def test_a_cancelled_sweep_leaves_no_running_task_and_resumes_without_recomputing(
    runner: SweepRunner, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    sweep = spec(strategy="traced_sma", symbols=["BIG"], space={"fast": [2, 3, 4, 5, 6], "slow": [10, 20]},
                 fixed={"trace": str(trace)})  # fmt: skip
    holder: dict[str, Any] = {}
    listener = Recorder(on_point=lambda _r: holder["handle"].cancel())
    holder["handle"] = handle = runner.start(sweep, listener)
    outcome = handle.wait(120)
    assert outcome is not None and outcome.state is SweepState.CANCELLED
    client = runner.cluster.client()
    prefix = f"heron-lab-{handle.sweep_id}-"
    assert running_keys(client, prefix) == []  # every worker says so
    processing = [k for keys in client.processing().values() for k in keys if str(k).startswith(prefix)]
    assert processing == []  # and so does the scheduler
    done = runner.store.results(handle.sweep_id)
    assert 1 <= len(done) < 10
    started_first = len(trace_lines(trace))
    assert started_first < 10  # the queue was dropped: not every point started

    resumed = Recorder()
    again = runner.start(sweep, resumed, resume=handle.sweep_id).wait(120)
    assert again is not None and again.state is SweepState.COMPLETED
    assert again.sweep_id == handle.sweep_id and again.completed == 10
    assert len(resumed.points) == 10 - len(done)  # only the missing points ran
    assert len(trace_lines(trace)) - started_first == 10 - len(done)  # counted on the workers
    assert {r.key for r in resumed.points}.isdisjoint(r.key for r in done)
    assert len(runner.store.results(handle.sweep_id)) == 10


@pytest.mark.expected_log(r"workers run other versions")
def test_a_worker_reporting_another_heron_version_is_refused(runner: SweepRunner) -> None:
    from distributed.diagnostics.plugin import WorkerPlugin

    client = runner.cluster.client()

    class OtherHeron(WorkerPlugin):
        name = "other-heron"

        def setup(self, worker: Any) -> None:
            import services.lab.versions as versions

            self.real = versions.heron_code_version
            versions.heron_code_version = lambda: "0000other"  # type: ignore[assignment]

        def teardown(self, worker: Any) -> None:
            import services.lab.versions as versions

            versions.heron_code_version = self.real

    client.register_plugin(OtherHeron())
    try:
        outcome = runner.start(spec(), Recorder()).wait(60)
    finally:
        client.unregister_worker_plugin("other-heron")
    assert outcome is not None and outcome.state is SweepState.FAILED
    assert "heron 0000other (here " in outcome.message
    workers = list(client.scheduler_info()["workers"])
    assert any(f"worker {w} runs" in outcome.message for w in workers)
    assert runner.store.results(outcome.sweep_id) == []


@pytest.mark.expected_log()  # distributed reports the deaths; Heron's part is the error point
def test_a_point_that_keeps_killing_its_worker_is_stored_as_an_error(runner: SweepRunner) -> None:
    sweep = spec(strategy="traced_sma", space={"fast": [2, 3], "slow": [10], "die": [False, True]})
    outcome = runner.start(sweep, Recorder()).wait(120)
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    results = {(r.params["fast"], r.params["die"]): r for r in runner.store.results(outcome.sweep_id)}
    assert len(results) == 4 and outcome.errors == 2
    for (_fast, die), r in results.items():
        if die:
            assert r.metrics is None and r.error is not None and r.error.startswith("KilledWorker")
        else:
            assert r.error is None and r.metrics is not None
    wait_for("the workers are back", lambda: len(worker_pids(runner)) == 2, 60)


def test_a_walk_forward_runs_each_folds_best_point_out_of_sample(runner: SweepRunner, data: Any) -> None:

    from services.lab.folds import best_point, make_folds
    from services.lab.walkforward import IN_SAMPLE, OUT_OF_SAMPLE, stitched_equity, summary
    from services.strategies.backtest import run_backtest

    wf = {"kind": "rolling", "folds": 2, "in_sample_days": 2, "out_of_sample_days": 1}
    sweep = spec(symbols=["BIG"], start="2024-01-02", end="2024-01-26", walk_forward=wf,
                 space={"fast": [2, 3, 5], "slow": [10, 20]})  # fmt: skip
    listener = Recorder()
    outcome = runner.start(sweep, listener).wait(120)
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    assert outcome.total == outcome.completed == 2 * 6 + 2 and outcome.errors == 0
    stored = runner.store.results(outcome.sweep_id)
    folds = make_folds(sweep.start, sweep.end, sweep.walk_forward)
    bars = loader(data)
    for fold in folds:
        in_sample = [r for r in stored if r.phase == IN_SAMPLE and r.fold == fold.index]
        assert len(in_sample) == 6
        best = best_point(in_sample, sweep.metric)
        (oos,) = [r for r in stored if r.phase == OUT_OF_SAMPLE and r.fold == fold.index]
        assert best is not None and oos.params == best.params
        replay = bars("BIG", sweep.timeframe, fold.in_start, fold.out_end)
        serial = run_backtest(registry()[sweep.strategy](strategy_params(sweep, best.params)), replay,
                              measure_from=fold.out_start)  # fmt: skip
        cash = Decimal(sweep.initial_cash)
        assert dict(oos.metrics or {}) == metrics_of(serial, cash)
        assert oos.metrics is not None  # its final equity: the cash plus the out-of-sample profit alone
        assert oos.metrics["final_equity"] == float(cash + serial.final_equity - serial.initial_equity)
        assert serial.warmup_bars > 0  # the in-sample bars warmed it up and were not measured
    assert outcome.best is not None and outcome.best.phase == OUT_OF_SAMPLE
    report = summary(sweep, stored)
    assert [row["fold"] for row in report["folds"]] == [0, 1]
    curve = stitched_equity(sweep, stored, bars, registry())
    assert curve[0][1] == Decimal(sweep.initial_cash) and len(curve) > 100
    assert folds[0].in_end <= curve[1][0] and curve[-1][0] < folds[-1].out_end
    again = Recorder()
    resumed = runner.start(sweep, again, resume=outcome.sweep_id).wait(60)
    assert resumed is not None and resumed.state is SweepState.COMPLETED and again.points == []


def test_bayesian_search_on_the_cluster_finds_the_known_optimum(runner: SweepRunner, data: Any) -> None:
    axis = {"from": 0, "to": 10, "step": 1}
    sweep = spec(strategy="objective", symbols=["UP"], search="bayes", points=60, seed=4,
                 metric="total_return", space={"x": axis, "y": axis})  # fmt: skip
    listener = Recorder()
    outcome = runner.start(sweep, listener).wait(120)
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    assert outcome.total == outcome.completed == 60 and outcome.errors == 0
    keys = [r.key for r in listener.points]
    assert len(set(keys)) == 60  # no point computed twice
    assert all((r.params["x"], r.params["y"]) != (0, 0) for r in listener.points)  # refused: never sent
    assert outcome.best is not None and outcome.best.params == {"x": 7, "y": 3}
    serial = metrics_of(
        recompute(sweep, {"x": 7, "y": 3}, loader(data), registry()), Decimal(sweep.initial_cash)
    )
    assert dict(outcome.best.metrics or {}) == serial


def test_the_bars_are_on_every_worker_before_the_first_point_is_sent(runner: SweepRunner, data: Any) -> None:
    """Left to Dask, the second worker fetches the bars from the first while the first runs its first
    point, and a busy worker process serves that copy late: the sweep's start waits on it. The
    coordinator copies them to every worker first; a cancelled sweep does not wait for the copy."""
    from services.lab.coordinator import spread
    from services.lab.packing import pack_bars
    from services.lab.tasks import dataset_blob, load_dataset

    client = runner.cluster.client()
    packed = pack_bars(data["AAPL"])
    dataset = client.submit(load_dataset, dataset_blob(packed), key="heron-lab-test-spread", pure=False)
    try:
        spread(client, dataset, runner.cluster.worker_count(), lambda: False)
        holders = client.who_has([dataset])["heron-lab-test-spread"]
        assert sorted(holders) == sorted(client.scheduler_info()["workers"]), holders
    finally:
        client.cancel([dataset])
    later = client.submit(load_dataset, dataset_blob(packed), key="heron-lab-test-spread-2", pure=False)
    try:
        spread(client, later, runner.cluster.worker_count(), lambda: True)  # cancelled: returns at once
        assert len(client.who_has([later])["heron-lab-test-spread-2"]) <= 1
    finally:
        client.cancel([later])
