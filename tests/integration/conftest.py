"""Fixtures starting the real local exchange as a subprocess (see tests/support/exchange.py).

``exchange``: a fresh exchange per test (own data dir). ``module_exchange``: one per test module,
for tests that do not change shared state in ways others depend on (faults must be reset: use
``module_exchange_clean``, which calls POST /_heron/admin/reset before the test).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.exchange import ExchangeProcess


@pytest.fixture(autouse=True)
def _close_finished_childrens_pipes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every child process a test starts and that has ended by the test's end has its pipes closed
    then, not by the garbage collector in some later test (which would fail that test with a
    ResourceWarning: warnings are errors)."""
    started: list[subprocess.Popen[Any]] = []
    real_init = subprocess.Popen.__init__

    def tracking_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(subprocess.Popen, "__init__", tracking_init)
    yield
    for proc in started:
        if proc.poll() is None:
            continue  # still running: its owner closes it
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.fixture
def exchange() -> Iterator[ExchangeProcess]:
    ex = ExchangeProcess.start()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture(scope="module")
def module_exchange() -> Iterator[ExchangeProcess]:
    ex = ExchangeProcess.start()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def module_exchange_clean(module_exchange: ExchangeProcess) -> ExchangeProcess:
    if not module_exchange.running:
        module_exchange.restart()
    module_exchange.admin("/reset", {})
    return module_exchange
