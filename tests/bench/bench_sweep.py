"""Parameter sweep throughput on a local Dask cluster, against the same points run serially.

History: 100,000 one-minute bars of one symbol from the seeded generator (about a year of US
sessions), so that one point (an SMA crossover backtest) takes a few tenths of a second and Dask's
per-task overhead (a few ms) does not dominate. Grid: 8 fast x 6 slow windows = 48 points.

Measured, in one session on one machine:

- serial: the 48 points one after another in this process (``run_backtest``, no Dask at all);
- ``sweep_points_per_s``: the same sweep through :class:`SweepRunner` on a LocalCluster of N = 2
  worker processes (started before timing, as a second sweep in a session finds it), from ``start``
  to the outcome: bars packed and shipped, points computed and each written to the sweep store;
- ``sweep_parallel_efficiency``: sweep points/s / (N x serial points/s) (1.0: perfect scaling);
- ``sweep_first_point_s``: from ``start`` to the first stored point (packing, shipping and decoding
  the bars once per worker, then one point): the fixed cost every sweep pays;
- ``sweep_cancel_stop_s``: from ``cancel()`` on a running sweep to its end, which waits until no
  worker runs one of its points;
- ``machine_parallel_ceiling``: the same ratio for a plain Python loop, one process against N at
  once, measured just before the sweep: what this machine gives N processes at this moment (a
  virtual machine's cores may share physical ones, and other users take their share). An efficiency
  near the ceiling is the machine's limit, not the sweep's overhead;
- ``sweep_gui_frame_p99_ms``: the Strategy lab window's frame regularity while a sweep fills it
  (``tests/bench/sweep_window.py``).

The machine load (``os.getloadavg``) before and after is reported with the figures: on a shared
machine other processes take cores from the workers, and efficiency falls with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.lab.cluster import LabSettings
from services.lab.coordinator import SweepRunner, load_all, strategy_params
from services.lab.model import SweepState
from services.lab.spec import expand, parse_spec
from services.lab.store import SweepStore
from services.storage import Database
from services.strategies.backtest import run_backtest
from services.strategies.builtin import builtin_registry
from tests.unit.lab.support import NOW, Recorder, history, loader, spec_data

BARS = 100_000
WORKERS = 2
SPACE = {"fast": [2, 3, 4, 5, 6, 7, 8, 9], "slow": [20, 30, 40, 50, 60, 70]}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


_SPIN = "x = 0\nfor i in range(15_000_000):\n    x += i\n"


def _spin(n: int) -> float:
    """Seconds for ``n`` processes each running the same plain Python loop at once."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - started


def machine_ceiling(n: int) -> float:
    """One process's loop time / ``n`` processes' (1.0: ``n`` cores as fast as one)."""
    return round(_spin(1) / _spin(n), 3)


def run() -> dict[str, Any]:
    ceiling = machine_ceiling(WORKERS)
    registry = builtin_registry()
    data = history(BARS, ("AAPL",))
    load = loader(data)
    spec = parse_spec(spec_data(space=SPACE), registry, now=NOW)
    points, _ = expand(spec, registry)
    load_before = _load()

    bars = load_all(spec, load)
    started = time.perf_counter()
    for point in points:
        run_backtest(registry[spec.strategy](strategy_params(spec, point)), bars)
    serial_s = time.perf_counter() - started
    serial_rate = len(points) / serial_s

    with tempfile.TemporaryDirectory(prefix="heron-bench-sweep-") as tmp:
        db = Database.open(None, Path(tmp))
        runner = SweepRunner(SweepStore(db), load, LabSettings(workers=WORKERS), registry)
        try:
            runner.cluster.client()  # the local cluster is up before timing
            firsts: list[float] = []
            listener = Recorder(on_point=lambda _r: firsts.append(time.perf_counter()))
            started = time.perf_counter()
            outcome = runner.start(spec, listener).wait(600)
            sweep_s = time.perf_counter() - started
            first_s = firsts[0] - started
            on_workers = sum(r.elapsed_s for r in listener.points) / len(listener.points)
            assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
            stop_s = _cancel_latency(runner, spec)
        finally:
            runner.close()
            db.dispose()
    rate = len(points) / sweep_s
    load_after = _load()
    common = {"workers": WORKERS, "points": len(points), "bars": BARS, "load_before": load_before,
              "load_after": load_after, "cpus": os.cpu_count()}  # fmt: skip
    return {
        **_window(),
        "sweep_points_per_s": {
            "value": round(rate, 3),
            "unit": "points/s",
            "serial_points_per_s": round(serial_rate, 3),
            **common,
        },
        "sweep_parallel_efficiency": {
            "value": round(rate / (WORKERS * serial_rate), 3),
            "unit": "ratio",
            "goal": ">= 0.8 on an idle machine",
            "serial_s": round(serial_s, 3),
            # where the rest goes: a point's own time on a worker against its time run serially
            "point_s_on_worker": round(on_workers, 3),
            "point_s_serial": round(serial_s / len(points), 3),
            "sweep_s": round(sweep_s, 3),
            "machine_parallel_ceiling": ceiling,
            **common,
        },
        "machine_parallel_ceiling": {"value": ceiling, "unit": "ratio", "processes": WORKERS, **common},
        "sweep_first_point_s": {"value": round(first_s, 3), "unit": "s", "bars": BARS},
        "sweep_cancel_stop_s": {"value": round(stop_s, 3), "unit": "s", "goal": "<= 1"},
    }


def _window() -> dict[str, Any]:
    """``sweep_gui_frame_p99_ms``: the Strategy lab window during a sweep (tests/bench/sweep_window.py),
    measured after this benchmark's own cluster is closed."""
    from tests.bench.sweep_window import measure

    return measure()


def _cancel_latency(runner: SweepRunner, spec: Any) -> float:
    """Seconds from cancel() (a point running on each worker) to the sweep's end."""
    resumed = parse_spec(
        spec_data(space={"fast": [11, 12, 13, 14], "slow": [50, 60]}), runner.registry, now=NOW
    )
    listener = Recorder()
    handle = runner.start(resumed, listener)
    while not listener.points and not handle.done:
        time.sleep(0.01)
    asked = time.perf_counter()
    handle.cancel()
    handle.wait(60)
    return time.perf_counter() - asked


if __name__ == "__main__":
    print(run())
