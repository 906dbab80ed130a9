"""Waiting for a condition in tests: poll with a deadline, never a fixed sleep before an assertion.

One helper, three ways of passing the time between polls:

- ``wait_for(what, check, timeout)`` blocks the calling thread (tests that drive real processes);
- ``wait_for(..., pump=qt_pump(qtbot))`` runs the Qt event loop between polls (widget tests), and
  ``pump=loop_pump(loop)`` runs a qasync loop;
- ``await async_wait_for(what, check, timeout)`` yields to the running asyncio loop.

Each returns the first truthy value of ``check()`` and raises ``AssertionError`` naming ``what``,
the timeout and the last value seen when the deadline passes. The deadline bounds a wait; it is not
a speed claim. ``check`` may raise to give up early (a process that exited will never answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_EVERY = 0.02


def _timed_out(what: str, timeout: float, last: object) -> AssertionError:
    shown = repr(last)
    if len(shown) > 200:
        shown = shown[:200] + "…"
    return AssertionError(f"{what}: not within {timeout:g} s (last: {shown})")


def wait_for(
    what: str,
    check: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    every: float = DEFAULT_EVERY,
    pump: Callable[[float], object] = time.sleep,
) -> T:
    """The first truthy value of ``check()``; AssertionError naming ``what`` after ``timeout`` s.

    ``pump(seconds)`` passes the time between polls: ``time.sleep`` by default, :func:`qt_pump`
    or :func:`loop_pump` to keep an event loop running.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, value)
        pump(every)


async def async_wait_for(
    what: str, check: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, *, every: float = DEFAULT_EVERY
) -> T:
    """:func:`wait_for` inside a coroutine: the loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, value)
        await asyncio.sleep(every)


def qt_pump(qtbot: Any) -> Callable[[float], object]:
    """Between polls, process Qt events (``qtbot.wait``) instead of blocking the GUI thread."""
    return lambda seconds: qtbot.wait(max(1, round(seconds * 1000)))


def loop_pump(loop: asyncio.AbstractEventLoop) -> Callable[[float], object]:
    """Between polls, run ``loop`` (a qasync loop in widget tests: Qt events and asyncio tasks)."""
    return lambda seconds: loop.run_until_complete(asyncio.sleep(seconds))


def wait_for_text(path: Path, needle: str, timeout: float) -> None:
    """``needle`` appears in the file at ``path`` (a log) within ``timeout`` s."""

    def found() -> bool:
        return path.exists() and needle in path.read_text(errors="replace")

    wait_for(f"{needle!r} in {path.name}", found, timeout, every=0.1)


def file_text(path: Path) -> Callable[[], str]:
    """A check for :func:`wait_for`: the file's text once it exists and is not empty, else ''."""

    def read() -> str:
        try:
            return path.read_text()
        except OSError:
            return ""

    return read
