"""The sweep store on SQLite: sweeps, points written once, counts, finish."""

from __future__ import annotations

from pathlib import Path

from services.lab.model import PointResult, SweepState, point_key
from services.lab.spec import parse_spec, spec_to_json
from services.lab.store import SweepStore, metadata
from services.storage import Database, schema_drift
from tests.unit.lab.support import NOW, registry, spec_data


def point(fast: int, sharpe: float | None = 1.0, error: str | None = None) -> PointResult:
    params = {"fast": fast, "slow": 20}
    metrics = None if error else {"sharpe": sharpe, "total_return": 0.1, "max_drawdown": float("nan")}
    return PointResult(key=point_key(params), params=params, metrics=metrics, error=error, worker="w1")


def test_points_are_stored_once_and_read_back_in_order(tmp_path: Path) -> None:
    exercise_store(None, tmp_path)


def exercise_store(url: str | None, tmp_path: Path) -> None:
    """The store's contract, on the database at ``url`` (None: SQLite in ``tmp_path``)."""
    db = Database.open(url, tmp_path)
    store = SweepStore(db)
    assert schema_drift(db.engine, metadata) == []
    spec = parse_spec(spec_data(), registry(), now=NOW)
    sweep = store.create(spec, 3, "abc")
    assert store.record(sweep, point(2, 1.5))
    assert store.record(sweep, point(3, error="RuntimeError: boom"))
    assert not store.record(sweep, point(2, 9.0))  # same key: the first row stays
    results = store.results(sweep)
    assert [r.params["fast"] for r in results] == [2, 3]
    assert results[0].metrics is not None and results[0].metrics["sharpe"] == 1.5
    assert results[0].metrics["max_drawdown"] is None  # NaN is no JSON number
    assert results[1].error == "RuntimeError: boom" and results[1].metrics is None
    record = store.get(sweep)
    assert record is not None
    assert (record.total, record.completed, record.errors, record.state) == (3, 2, 1, SweepState.RUNNING)
    assert record.spec == spec_to_json(spec) and record.heron_version == "abc"
    store.finish(sweep, SweepState.FAILED, "the scheduler went away")
    other = store.create(spec, 1, "abc")
    listed = store.list()
    assert [r.id for r in listed] == [other, sweep]
    assert listed[1].state is SweepState.FAILED and listed[1].message == "the scheduler went away"
    assert store.get("missing") is None
    db.dispose()
    reopened = Database.open(url, tmp_path)
    again = SweepStore(reopened)  # migrations already applied
    assert len(again.results(sweep)) == 2
    reopened.dispose()
