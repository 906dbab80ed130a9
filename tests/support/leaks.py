"""Known leaks in Heron itself, declared by the tests that meet them, until Heron is fixed.

Warnings are errors in the test suite (pyproject.toml), so a leaked file fails the test whose garbage
collection finds it, which may be any later test. A module that meets one of these leaks declares it
with ``pytestmark = LOCAL_EXCHANGE_PIPE``: the warning is ignored in that module only, and garbage is
collected after each of its tests so the warning is raised there and nowhere else.
"""

from __future__ import annotations

import pytest

#: app/local_exchange.py, ``LocalExchangeLauncher._pump_output``: it reads the exchange child's stdout
#: to EOF but never closes the pipe; the garbage collector closes it with a ResourceWarning.
LOCAL_EXCHANGE_PIPE = [
    pytest.mark.filterwarnings("ignore:Exception ignored in:pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.usefixtures("collect_garbage_after"),
]
