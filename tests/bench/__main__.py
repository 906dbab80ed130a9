"""Benchmark runner: ``uv run python -m tests.bench [NAME ...] [--json FILE]``.

Each benchmark lives in ``tests/bench/bench_<name>.py`` and exposes ``run() -> dict`` returning
``{"metric_key": {"value": number, "unit": "...", ...}}``. Benchmarks measure; they never assert.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(BENCH_DIR)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    results: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(f"tests.bench.bench_{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        figures = module.run()
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
        results.update(figures)
    width = max((len(k) for k in results), default=10)
    print()
    print(f"{'metric'.ljust(width)}  {'value':>14}  unit")
    for key, fig in results.items():
        value = fig.get("value")
        if value is None:
            shown = "not measured"
        elif isinstance(value, float):
            shown = f"{value:,.3f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        goal = f"  (goal {fig['goal']})" if "goal" in fig else ""
        print(f"{key.ljust(width)}  {shown:>14}  {fig.get('unit', '')}{goal}")
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    if args.json:
        args.json.write_text(json.dumps({**results, "_machine": machine}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
