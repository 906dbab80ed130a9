"""The fuzzing budget: a fixed, repeatable one for the default suite and a deep one marked slow.

``FAST`` (default suite, CI): derandomized so a run is repeatable, a few dozen to a few hundred
examples per target; the whole tests/fuzz folder stays under 60 s on 2 cores. ``DEEP``
(``pytest -m slow tests/fuzz``): random seeds, many more examples. Write a target once and get both
with :func:`fuzz_pair`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
DEEP = settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def fuzz_pair(
    *strategies: Any, examples: int | None = None, **kw_strategies: Any
) -> Callable[[Callable[..., None]], tuple[Any, Any]]:
    """``test_x, test_x_deep = fuzz_pair(st...)(prop)``: the same property at both budgets."""

    def wrap(prop: Callable[..., None]) -> tuple[Any, Any]:
        fast_settings = FAST if examples is None else settings(FAST, max_examples=examples)
        fast = fast_settings(given(*strategies, **kw_strategies)(prop))
        deep = pytest.mark.slow(DEEP(given(*strategies, **kw_strategies)(prop)))
        return fast, deep

    return wrap
