"""Re-running the same SPEC headless resumes its unfinished sweep instead of recomputing it."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest

import app.sweep as sweep_module
from app.sweep import _Interrupt, _run, unfinished
from services.lab.model import PointResult, SweepOutcome, SweepState, point_key
from services.lab.spec import parse_spec
from services.lab.store import SweepStore
from services.storage import Database
from tests.unit.lab.support import NOW, registry, spec_data


def _point(fast: int) -> PointResult:
    params = {"fast": fast, "slow": 20}
    return PointResult(key=point_key(params), params=params, metrics={"sharpe": 1.0, "total_return": 0.1})


def test_the_last_unfinished_sweep_of_the_same_spec_is_found(tmp_path: Path) -> None:
    db = Database.open(None, tmp_path)
    try:
        store = SweepStore(db)
        spec = parse_spec(spec_data(), registry(), now=NOW)
        other = parse_spec(spec_data(space={"fast": [2, 3], "slow": [10, 20]}), registry(), now=NOW)
        assert unfinished(store, spec) is None
        first = store.create(spec, 6, "abc")  # still marked running: its Heron died
        store.create(other, 4, "abc")
        found = unfinished(store, spec)
        assert found is not None and found.id == first
        store.finish(first, SweepState.CANCELLED, "cancelled")
        found = unfinished(store, spec)
        assert found is not None and found.id == first
        assert unfinished(store, parse_spec(spec_data(fixed={"qty": 5}), registry(), now=NOW)) is None
        done = store.create(spec, 6, "abc")
        store.finish(done, SweepState.COMPLETED)
        assert unfinished(store, spec) is None  # the most recent of that spec completed: a fresh sweep
    finally:
        db.dispose()


class _Handle:
    def __init__(self, sweep_id: str, total: int) -> None:
        self.sweep_id, self.total = sweep_id, total

    def cancel(self) -> None:
        pass

    def wait(self, _timeout: float) -> SweepOutcome:
        return SweepOutcome(self.sweep_id, SweepState.COMPLETED, self.total, self.total, 0, 1, 0.1, _point(2))


class _Runner:
    started: ClassVar[list[str | None]] = []

    def __init__(self, store: SweepStore, *_args: Any) -> None:
        self.store = store

    def start(self, spec: Any, _listener: Any, *, resume: str | None = None) -> _Handle:
        _Runner.started.append(resume)
        sweep_id = resume or self.store.create(spec, 6, "abc")
        return _Handle(sweep_id, 6)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("fresh", [False, True])
def test_the_same_spec_again_resumes_its_cancelled_sweep_unless_sweep_new(
    fresh: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sweep_module, "SweepRunner", _Runner)
    _Runner.started = []
    db = Database.open(None, tmp_path)
    try:
        store = SweepStore(db)
        spec = parse_spec(spec_data(), registry(), now=NOW)
        earlier = store.create(spec, 6, "abc")
        store.record(earlier, _point(2))
        store.record(earlier, _point(3))
        store.finish(earlier, SweepState.CANCELLED, "cancelled")
        args = argparse.Namespace(
            sweep=tmp_path / "spec.json", sweep_report=tmp_path / "out.json", sweep_new=fresh
        )
        with caplog.at_level(logging.INFO, logger="heron.app"):
            code = _run(args, spec, db, {}, None, registry(), 0, _Interrupt())  # type: ignore[arg-type]
        assert code == 0
        report = json.loads((tmp_path / "out.json").read_text())
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming sweep")]
        if fresh:
            assert _Runner.started == [None] and report["sweep_id"] != earlier and not lines
        else:
            assert _Runner.started == [earlier] and report["sweep_id"] == earlier
            said = f"resuming sweep {earlier}: 2 of 6 points done (cancelled; --sweep-new starts afresh)"
            assert lines == [said]
            assert (
                f"heron: {said}" in capsys.readouterr().err.splitlines()
            )  # on the terminal, not only the log
    finally:
        db.dispose()
