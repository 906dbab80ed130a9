"""Sweeps and their points in Heron's database (SQLite or PostgreSQL), schema line ``lab``.

``lab_sweeps``: one row per sweep (its spec as JSON, state, totals, the Heron code version it ran
on). ``lab_points``: one row per computed point, keyed by (sweep, point key): written by the
coordinator as each point completes, so a sweep stopped by a closed window, a dead worker or a dead
scheduler keeps every point already done, and a resumed sweep skips them. Writing the same point
twice keeps the first row (idempotent).

Threads: every method blocks on the database and is thread-safe (its own connection each call).
"""

from __future__ import annotations

import builtins
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.lab.model import PointResult, SweepSpec, SweepState
from services.lab.spec import params_json, spec_to_json
from services.storage import Database, Migration, Schema, UTCDateTime, migrate

metadata = MetaData()


def _sweeps(m: MetaData) -> Table:
    return Table(
        "lab_sweeps",
        m,
        Column("id", String(32), primary_key=True),
        Column("strategy", String(64), nullable=False),
        Column("search", String(16), nullable=False),
        Column("spec", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, index=True),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("state", String(16), nullable=False),
        Column("message", Text, nullable=False),
        Column("total", Integer, nullable=False),
        Column("heron_version", String(64), nullable=False),
    )


def _points(m: MetaData) -> Table:
    return Table(
        "lab_points",
        m,
        Column("sweep_id", String(32), primary_key=True),
        Column("key", String(32), primary_key=True),
        Column("seq", Integer, nullable=False),
        Column("params", Text, nullable=False),
        Column("metrics", Text, nullable=True),
        Column("error", Text, nullable=True),
        Column("fold", Integer, nullable=True),
        Column("phase", String(16), nullable=False),
        Column("worker", String(128), nullable=True),
        Column("elapsed_s", Float, nullable=False),
        Column("recorded_at", UTCDateTime(), nullable=False),
    )


sweeps_table = _sweeps(metadata)
points_table = _points(metadata)


def _v1_create(conn: Connection) -> None:
    # Frozen copy of version 1 (see services.storage.schema): never edit; add a migration instead.
    m = MetaData()
    _sweeps(m)
    _points(m)
    m.create_all(conn)


LAB_SCHEMA: Final = Schema(
    "lab", (Migration(1, "strategy lab sweeps and points", _v1_create),), metadata=metadata
)


@dataclass(frozen=True, slots=True)
class SweepRecord:
    id: str
    strategy: str
    search: str
    spec: dict[str, Any]
    created: datetime
    updated: datetime
    state: SweepState
    message: str
    total: int
    completed: int
    errors: int
    heron_version: str


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; an undefined metric is None
    return value


class SweepStore:
    """Reads and writes sweeps; migrates its own tables on first use (quick, idempotent)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        migrate(db.engine, [LAB_SCHEMA])
        dialect = db.dialect_name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def create(self, spec: SweepSpec, total: int, heron_version: str) -> str:
        sweep_id = uuid.uuid4().hex[:16]
        now = datetime.now(UTC)
        with self._db.begin() as conn:
            conn.execute(
                sweeps_table.insert().values(
                    id=sweep_id,
                    strategy=spec.strategy,
                    search=spec.search.value,
                    spec=json.dumps(spec_to_json(spec), sort_keys=True),
                    created_at=now,
                    updated_at=now,
                    state=SweepState.RUNNING.value,
                    message="",
                    total=total,
                    heron_version=heron_version,
                )
            )
        return sweep_id

    def _counts(self, conn: Connection, sweep_id: str | None = None) -> dict[str, tuple[int, int]]:
        errors = func.sum(case((points_table.c.error.is_not(None), 1), else_=0))
        query = select(points_table.c.sweep_id, func.count(), errors).group_by(points_table.c.sweep_id)
        if sweep_id is not None:
            query = query.where(points_table.c.sweep_id == sweep_id)
        return {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(query)}

    def _record(self, row: Any, counts: Mapping[str, tuple[int, int]]) -> SweepRecord:
        done, errors = counts.get(row.id, (0, 0))
        return SweepRecord(
            id=row.id,
            strategy=row.strategy,
            search=row.search,
            spec=json.loads(row.spec),
            created=row.created_at,
            updated=row.updated_at,
            state=SweepState(row.state),
            message=row.message,
            total=row.total,
            completed=done,
            errors=errors,
            heron_version=row.heron_version,
        )

    def get(self, sweep_id: str) -> SweepRecord | None:
        with self._db.connect() as conn:
            row = conn.execute(select(sweeps_table).where(sweeps_table.c.id == sweep_id)).first()
            if row is None:
                return None
            return self._record(row, self._counts(conn, sweep_id))

    def list(self, limit: int = 100) -> list[SweepRecord]:
        """The most recent sweeps first."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(sweeps_table).order_by(sweeps_table.c.created_at.desc()).limit(limit)
            ).all()
            counts = self._counts(conn)
        return [self._record(r, counts) for r in rows]

    def set_total(self, sweep_id: str, total: int) -> None:
        with self._db.begin() as conn:
            conn.execute(update(sweeps_table).where(sweeps_table.c.id == sweep_id).values(total=total))

    def record(self, sweep_id: str, result: PointResult) -> bool:
        """Store one point; False when that point (key) was stored already (the first row is kept)."""
        metrics = None
        if result.metrics is not None:
            metrics = json.dumps({k: _json_number(v) for k, v in result.metrics.items()}, sort_keys=True)
        with self._db.begin(write_lock=True) as conn:
            seq = conn.execute(
                select(func.count()).select_from(points_table).where(points_table.c.sweep_id == sweep_id)
            ).scalar_one()
            stmt = (
                self._insert(points_table)
                .values(
                    sweep_id=sweep_id,
                    key=result.key,
                    seq=int(seq),
                    params=json.dumps(params_json(result.params), sort_keys=True),
                    metrics=metrics,
                    error=result.error,
                    fold=result.fold,
                    phase=result.phase,
                    worker=result.worker,
                    elapsed_s=float(result.elapsed_s),
                    recorded_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=["sweep_id", "key"])
                .returning(points_table.c.key)
            )
            inserted = conn.execute(stmt).first()  # rowcount is not reliable here on PostgreSQL
        return inserted is not None

    def results(self, sweep_id: str) -> builtins.list[PointResult]:
        """Every stored point of the sweep, in the order they were recorded."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(points_table).where(points_table.c.sweep_id == sweep_id).order_by(points_table.c.seq)
            ).all()
        return [
            PointResult(
                key=r.key,
                params=json.loads(r.params),
                metrics=None if r.metrics is None else json.loads(r.metrics),
                error=r.error,
                fold=r.fold,
                phase=r.phase,
                worker=r.worker,
                elapsed_s=r.elapsed_s,
            )
            for r in rows
        ]

    def finish(self, sweep_id: str, state: SweepState, message: str = "") -> None:
        with self._db.begin() as conn:
            conn.execute(
                update(sweeps_table)
                .where(sweeps_table.c.id == sweep_id)
                .values(state=state.value, message=message, updated_at=datetime.now(UTC))
            )

    def reopen(self, sweep_id: str) -> None:
        """A resumed sweep runs again."""
        self.finish(sweep_id, SweepState.RUNNING, "")
