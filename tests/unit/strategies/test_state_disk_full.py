"""Strategy state on a full disk: said as "disk full" with the file, never a traceback; the previous
state file stays whole and the next save after space returns writes it."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from services.strategies.runner import StrategyRunner
from services.strategies.store import StrategyStateStore

from .support import RecordingSink


class _FullOnce(StrategyStateStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = True

    def save(self, strategies: dict[str, dict[str, Any]]) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().save(strategies)


@pytest.mark.expected_log(r"^services\.strategies\.runner: strategy state not saved: disk full writing")
def test_a_state_save_on_a_full_disk_says_disk_full_and_the_next_save_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _FullOnce(tmp_path / "strategies" / "state.json")
    runner = StrategyRunner(RecordingSink(), store=store, run_token="t")
    with caplog.at_level(logging.ERROR):
        runner.save()  # never raises
    assert "disk full" in caplog.text and str(store.path) in caplog.text
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
    store.full = False
    runner.save()
    assert json.loads(store.path.read_text(encoding="utf-8"))["strategies"] == {}
