"""What a sweep's coordinator and every worker must agree on: Python, Dask, distributed, cloudpickle
and Heron's own code. A worker on other code computes other numbers (or fails to unpickle a task);
a sweep refuses such a cluster at connect rather than storing results that mean something else."""

from __future__ import annotations

import hashlib
import platform
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

#: The packages whose versions must match between the coordinator and the workers.
PACKAGES: Final = ("dask", "distributed", "cloudpickle")


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


@cache
def heron_code_version() -> str:
    """A hash of Heron's service code (every ``services/**/*.py``, by path and content): equal only
    when the backtests and strategies are the same code. Computed once per process."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def versions() -> dict[str, str]:
    """This process's versions (run on each worker at connect, and here)."""
    out = {"python": platform.python_version()}
    out.update({name: _package(name) for name in PACKAGES})
    out["heron"] = heron_code_version()
    return out


def mismatches(here: dict[str, str], workers: dict[str, dict[str, str]]) -> list[str]:
    """One line per worker that differs from ``here``, naming the worker and each differing version."""
    lines: list[str] = []
    for address, theirs in sorted(workers.items()):
        diffs = [
            f"{name} {theirs.get(name, 'unknown')} (here {mine})"
            for name, mine in here.items()
            if theirs.get(name) != mine
        ]
        if diffs:
            lines.append(f"worker {address} runs {', '.join(diffs)}")
    return lines
