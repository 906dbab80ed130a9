"""The collector around start-up and later large loads (app/runtime.py): objects alive after a load
move into the permanent generation, so a later gen-2 pass does not walk them (a 60 ms loop stall per
pass in the soak when the shadow models' scikit-learn objects were left in gen 2)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.runtime import freeze_late_load, settle_gc


@pytest.fixture
def collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_settle_freezes_start_up_and_turns_the_collector_on(collector: None) -> None:
    gc.unfreeze()
    gc.disable()
    settle_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_a_late_load_is_frozen_once_the_collector_is_on(collector: None) -> None:
    gc.unfreeze()
    gc.enable()
    loaded = [[i] for i in range(5000)]  # container objects the collector tracks
    freeze_late_load("test data")
    assert gc.get_freeze_count() >= len(loaded)


def test_a_late_load_before_start_up_settled_waits_for_that_freeze(collector: None) -> None:
    gc.unfreeze()
    gc.disable()
    freeze_late_load("test data")
    assert gc.get_freeze_count() == 0
    assert not gc.isenabled()
