"""Fixtures of the real-window acceptance tests (tests/acceptance/support.py): an X display with a
window manager, a screen grabber on it, a local exchange with fault injection, and Heron itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.support import Display, ScreenGrabber, Terminal, require_tools
from tests.support.exchange import ExchangeProcess


@pytest.fixture
def display(tmp_path: Path) -> Iterator[Display]:
    require_tools()
    shown = Display.start(tmp_path)
    try:
        yield shown
    finally:
        shown.stop()


@pytest.fixture
def screen(display: Display, tmp_path: Path) -> Iterator[ScreenGrabber]:
    grabber = ScreenGrabber(display, tmp_path)
    try:
        yield grabber
    finally:
        grabber.stop()


@pytest.fixture
def exchange() -> Iterator[ExchangeProcess]:
    """The local exchange with ``--admin`` (faults), always open, started by the test."""
    ex = ExchangeProcess.start()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """The terminals a test started, stopped after it (SIGTERM, their ordered shutdown)."""
    started: list[Terminal] = []
    yield started
    for terminal in started:
        terminal.stop()


@pytest.fixture
def start_terminal(
    display: Display, exchange: ExchangeProcess, tmp_path: Path, terminals: list[Terminal]
) -> Callable[..., Terminal]:
    """``start_terminal(*args)``: main.py on the display, connected to ``exchange``."""

    def start(*args: str) -> Terminal:
        terminal = Terminal(display, exchange, tmp_path, *args)
        terminals.append(terminal)
        return terminal

    return start
