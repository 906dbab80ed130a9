"""Against a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (started here, on
free ports): the headless sweep completes and its report parses; a scheduler that dies mid-sweep
ends the sweep FAILED with the points done still stored."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.lab.cluster import LabSettings
from services.lab.coordinator import SweepRunner
from services.lab.model import SweepState
from services.lab.spec import parse_spec
from services.lab.store import SweepStore
from services.storage import Database
from tests.support.polling import wait_for
from tests.unit.lab.support import NOW, Recorder, history, loader, registry, spec_data, trace_lines

REPO = Path(__file__).resolve().parents[3]
DASK = Path(sys.executable).with_name("dask")
#: Polling bounds, not speed claims.
START_WITHIN = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DaskProcesses:
    address: str
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([str(DASK), *args], cwd=REPO, env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskProcesses]:
    port = free_port()
    cluster = DaskProcesses(f"tcp://127.0.0.1:{port}", tmp_path)
    try:
        cluster.start(
            "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", name="scheduler"
        )
        for i in range(2):
            args = ("--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1", "--no-dashboard")
            cluster.start("worker", cluster.address, *args, "--name", f"w{i}", name=f"worker{i}")
        from distributed import Client

        def ready() -> bool:
            try:
                with Client(cluster.address, timeout=2, set_as_default=False) as client:
                    return len(client.scheduler_info()["workers"]) == 2
            except OSError:
                return False

        wait_for("the scheduler and its two workers", ready, START_WITHIN, every=0.2)
        yield cluster
    finally:
        cluster.stop()


def test_a_headless_sweep_runs_on_a_real_scheduler_and_writes_its_report(
    dask_cluster: DaskProcesses, tmp_path: Path
) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(
        {"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 3, "timeframe": "1Min", "search": "grid",
         "space": {"fast": [2, 3, 5], "slow": [10, 20]}}
    ))  # fmt: skip
    report = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(tmp_path / "heron"),
         "--sweep", str(spec_file), "--sweep-report", str(report), "--scheduler", dask_cluster.address],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(report.read_text())
    assert data["strategy"] == "sma_crossover" and data["search"] == "grid"
    assert (data["total"], data["completed"], data["errors"], data["workers"]) == (6, 6, 0, 2)
    assert len(data["points"]) == 6
    assert {(p["params"]["fast"], p["params"]["slow"]) for p in data["points"]} == {
        (f, s) for f in (2, 3, 5) for s in (10, 20)
    }
    for p in data["points"]:
        assert {"total_return", "sharpe", "max_drawdown", "trades"} <= set(p["metrics"])
        assert p["worker"].startswith("tcp://127.0.0.1:")
    assert {p["worker"] for p in data["points"]} <= {w for w in _workers(dask_cluster.address)}
    best = max(
        data["points"], key=lambda p: p["metrics"]["sharpe"] if p["metrics"]["sharpe"] is not None else -1e9
    )
    assert data["best"]["params"] == best["params"]
    assert data["elapsed_s"] > 0 and isinstance(data["sweep_id"], str)


def _workers(address: str) -> list[str]:
    from distributed import Client

    with Client(address, timeout=5, set_as_default=False) as client:
        return list(client.scheduler_info()["workers"])


@pytest.mark.expected_log(r"the Dask scheduler went away")
def test_a_dead_scheduler_fails_the_sweep_and_keeps_the_points_done(
    dask_cluster: DaskProcesses, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    db = Database.open(None, tmp_path / "db")
    runner = SweepRunner(SweepStore(db), loader(history(40_000, ("BIG",))),
                         LabSettings(scheduler=dask_cluster.address), registry())  # fmt: skip
    data = spec_data(strategy="traced_sma", symbols=["BIG"], fixed={"trace": str(trace)},
                     space={"fast": [2, 3, 4, 5, 6, 7], "slow": [10, 20]})  # fmt: skip
    spec = parse_spec(data, registry(), now=NOW)
    listener = Recorder()
    try:
        handle = runner.start(spec, listener)
        wait_for("two points done", lambda: len(listener.points) >= 2, START_WITHIN)
        dask_cluster.procs[0].send_signal(signal.SIGKILL)  # the scheduler
        outcome = handle.wait(120)
    finally:
        with contextlib.suppress(Exception):
            runner.close()
        db.dispose()
    assert outcome is not None and outcome.state is SweepState.FAILED
    assert "the Dask scheduler went away" in outcome.message
    stored = SweepStore(Database.open(None, tmp_path / "db")).results(outcome.sweep_id)
    assert len(stored) == outcome.completed >= 2
    assert len(stored) < 12 and len(trace_lines(trace)) >= len(stored)
