"""Fixtures starting the real local exchange as a subprocess (see tests/support/exchange.py).

``exchange``: a fresh exchange per test (own data dir). ``module_exchange``: one per test module,
for tests that do not change shared state in ways others depend on (faults must be reset: use
``module_exchange_clean``, which calls POST /_heron/admin/reset before the test).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.exchange import ExchangeProcess


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
