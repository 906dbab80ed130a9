"""Waiting for a condition in tests that drive real processes: poll with a deadline, never a fixed
sleep before an assertion. The deadline bounds a wait; it is not a speed claim."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout: float = 30.0, every: float = 0.02) -> T:
    """The first truthy value of ``check()``; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)


def wait_for_text(path: Path, needle: str, timeout: float) -> None:
    """``needle`` appears in the file at ``path`` (a log) within ``timeout`` s."""
    def found() -> bool:
        return path.exists() and needle in path.read_text(errors="replace")

    wait_until(f"{needle!r} in {path.name}", found, timeout, every=0.1)
