"""Anchor runner: ``python -m tests.bench.anchors [NAME ...] [--runs N] [--json FILE]``.

Runs each anchor (finplot's chart, vnpy's order table) ``--runs`` times (default 3), each run in a
fresh subprocess of this same interpreter, and reports the median of each figure with every run's
value, the 1-minute load average before and after each run, and the versions measured. Output
format matches ``python -m tests.bench`` (``{"metric": {"value", "unit", ...}, "_machine": {...}}``).

Must run in the scratch environment built by ``tests/bench/anchors/scratch_env.sh`` (finplot and
vnpy are not Heron dependencies); see README.md beside this file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]

# anchor name -> (module under tests.bench.anchors, the package it needs)
ANCHORS: dict[str, tuple[str, str]] = {
    "finplot": ("finplot_chart", "finplot"),
    "vnpy": ("vnpy_tables", "vnpy"),
}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_once(module: str, home: str) -> dict[str, dict[str, Any]]:
    """One run of ``tests.bench.anchors.<module>`` in a fresh interpreter; its figures."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_API="pyside6", PYQTGRAPH_QT_LIB="PySide6",
               HOME=home)  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", f"tests.bench.anchors.{module}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    figures: dict[str, dict[str, Any]] = json.loads(lines[-1])
    return figures


def combine(runs: list[dict[str, dict[str, Any]]], loads: list[tuple[float, float]]) -> dict[str, Any]:
    """Median over the runs of each figure and of its numeric side fields (CPU time, paints...);
    text fields (unit, version) from the first run; every run's value under ``runs``."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        figs = [r[key] for r in runs if key in r]
        fig: dict[str, Any] = {}
        for field, v in first.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                nums = [f[field] for f in figs if isinstance(f.get(field), (int, float))]
                fig[field] = round(statistics.median(nums), 3)
            else:
                fig[field] = v
        values = [f["value"] for f in figs if f.get("value") is not None]
        fig["value"] = round(statistics.median(values), 3) if values else None
        fig["runs"] = values
        fig.pop("load_avg_1m", None)
        out[key] = fig
    first_key = next(iter(out), None)
    if first_key is not None:
        out[first_key]["load_avg_1m_before_after_runs"] = [[round(a, 2), round(b, 2)] for a, b in loads]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.anchors", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"anchors to run (default: all of {sorted(ANCHORS)})")
    parser.add_argument("--runs", type=int, default=3, help="runs per anchor; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    names = args.names or sorted(ANCHORS)
    unknown = [n for n in names if n not in ANCHORS]
    if unknown:
        parser.error(f"unknown anchor(s) {unknown}; available: {sorted(ANCHORS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    missing = [ANCHORS[n][1] for n in names if importlib.util.find_spec(ANCHORS[n][1]) is None]
    if missing:
        parser.error(f"{missing} not importable by {sys.executable}: build the scratch environment "
                     "with `bash tests/bench/anchors/scratch_env.sh` and run this with "
                     "/tmp/heron-anchors/bin/python (see tests/bench/anchors/README.md)")  # fmt: skip
    uptime_start = _uptime()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="heron-anchors-home-") as home:
        for name in names:
            module = ANCHORS[name][0]
            runs: list[dict[str, dict[str, Any]]] = []
            loads: list[tuple[float, float]] = []
            for i in range(args.runs):
                before = os.getloadavg()[0]
                print(f"== {name} run {i + 1}/{args.runs} (load {before:.2f})", flush=True)
                started = time.perf_counter()
                runs.append(run_once(module, home))
                loads.append((before, os.getloadavg()[0]))
                print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
            results.update(combine(runs, loads))
    width = max((len(k) for k in results), default=10)
    print()
    print(f"{'metric'.ljust(width)}  {'median':>14}  unit  (runs)")
    for key, fig in results.items():
        value = fig["value"]
        shown = "-" if value is None else f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"{key.ljust(width)}  {shown:>14}  {fig.get('unit', '')}  {fig['runs']}")
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "uptime_at_start": uptime_start,
        "uptime_at_end": _uptime(),
        "note": "shared machine: other engineers' benchmarks and tests ran at the same time; "
        "see the load averages per run",
    }
    print(f"\nload: start [{uptime_start}] end [{machine['uptime_at_end']}]")
    if args.json:
        args.json.write_text(json.dumps({**results, "_machine": machine}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
