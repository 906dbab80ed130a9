"""Deep fuzzing (``@pytest.mark.slow`` twins of every target) runs only when asked for: ``-m slow``.

The default suite runs the fixed FAST budget (tests/fuzz/budget.py); the deep budget takes minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="deep fuzzing budget: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") and _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)
