"""Versioned schemas: migrations run once, in order, each in its own transaction; newer databases refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, insert, inspect, select
from sqlalchemy import exc as sa_exc

from services.storage import (
    Database,
    Migration,
    MigrationError,
    Schema,
    SchemaTooNewError,
    add_column,
    create_engine_for,
    migrate,
    schema_drift,
)
from services.storage.schema import schema_version

calls: list[str] = []


def _create_widgets(conn: Connection) -> None:
    calls.append("widgets v1")
    m = MetaData()
    Table("widgets", m, Column("id", Integer, primary_key=True), Column("name", String(20), nullable=False))
    m.create_all(conn)


def _add_colour(conn: Connection) -> None:
    calls.append("widgets v2")
    add_column(conn, "widgets", Column("colour", String(20), nullable=True))


def _create_gadgets(conn: Connection) -> None:
    calls.append("gadgets v1")
    m = MetaData()
    Table("gadgets", m, Column("id", Integer, primary_key=True))
    m.create_all(conn)


def _fail_after_ddl(conn: Connection) -> None:
    calls.append("broken v2")
    m = MetaData()
    Table("half_done", m, Column("id", Integer, primary_key=True))
    m.create_all(conn)
    raise RuntimeError("upgrade bug")


WIDGETS_V1 = Schema("widgets", (Migration(1, "widgets table", _create_widgets),))
WIDGETS_V2 = Schema("widgets", (*WIDGETS_V1.migrations, Migration(2, "widget colour", _add_colour)))
GADGETS = Schema("gadgets", (Migration(1, "gadgets table", _create_gadgets),))

live = MetaData()
widgets = Table(
    "widgets",
    live,
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("colour", String(20)),
)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


def _versions(db: Database) -> list[tuple[str, int, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(
                schema_version.c.schema_name, schema_version.c.version, schema_version.c.description
            ).order_by(schema_version.c.schema_name, schema_version.c.version)
        )
        return [(name, int(version), text) for name, version, text in rows]


def test_migrations_apply_once_in_order_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    with Database.open(None, tmp_path, [WIDGETS_V2, GADGETS]) as db:
        assert calls == ["widgets v1", "widgets v2", "gadgets v1"]
        assert _versions(db) == [
            ("gadgets", 1, "gadgets table"),
            ("widgets", 1, "widgets table"),
            ("widgets", 2, "widget colour"),
        ]
        assert schema_drift(db.engine, live) == []
        with db.connect() as conn:
            applied_at = conn.execute(select(schema_version.c.applied_at)).scalars().first()
        assert applied_at is not None and applied_at.tzinfo is not None
    calls.clear()
    engine = create_engine_for(None, tmp_path)
    try:
        assert migrate(engine, [WIDGETS_V2, GADGETS]) == []
    finally:
        engine.dispose()
    assert calls == []


def test_upgrading_an_older_database_applies_only_the_new_step_and_keeps_data(tmp_path: Path) -> None:
    with Database.open(None, tmp_path, [WIDGETS_V1]) as db, db.begin() as conn:
        conn.execute(insert(widgets).values(id=1, name="kept"))  # binds only id and name
    # The live table has a column the v1 database lacks:
    with (
        pytest.raises(sa_exc.OperationalError, match="colour"),
        Database.open(None, tmp_path, [WIDGETS_V1]) as db,
        db.connect() as conn,
    ):
        conn.execute(select(widgets)).all()
    calls.clear()
    with Database.open(None, tmp_path, [WIDGETS_V2]) as db:
        assert calls == ["widgets v2"]
        with db.connect() as conn:
            assert conn.execute(select(widgets)).all() == [(1, "kept", None)]


def test_newer_database_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with Database.open(None, tmp_path, [WIDGETS_V2]):
        pass
    calls.clear()
    with pytest.raises(SchemaTooNewError, match=r"widgets is at version 2, this Heron knows up to 1") as info:
        Database.open(None, tmp_path, [GADGETS, WIDGETS_V1])
    assert "newer Heron" in str(info.value)
    assert calls == []  # gadgets v1 was not applied either
    with Database.open(None, tmp_path, []) as db:
        assert [v[:2] for v in _versions(db)] == [("widgets", 1), ("widgets", 2)]
        with db.connect() as conn:
            assert not inspect(conn).has_table("gadgets")


def test_failed_migration_rolls_back_its_ddl_and_keeps_earlier_steps(tmp_path: Path) -> None:
    broken = Schema("widgets", (*WIDGETS_V1.migrations, Migration(2, "broken step", _fail_after_ddl)))
    with pytest.raises(
        MigrationError, match=r"widgets v2 \(broken step\) failed and was rolled back"
    ) as info:
        Database.open(None, tmp_path, [broken])
    assert str(tmp_path / "heron.db") in str(info.value)
    assert calls == ["widgets v1", "broken v2"]
    with Database.open(None, tmp_path, []) as db:
        assert [v[:2] for v in _versions(db)] == [("widgets", 1)]
        with db.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        assert "widgets" in tables
        assert "half_done" not in tables  # DDL is transactional, thanks to our own BEGIN


def test_schema_drift_reports_tables_and_columns_out_of_step(tmp_path: Path) -> None:
    with Database.open(None, tmp_path, [WIDGETS_V1]) as db:
        extra = MetaData()
        Table("widgets", extra, Column("id", Integer, primary_key=True))
        Table("missing", extra, Column("id", Integer, primary_key=True))
        assert schema_drift(db.engine, live) == ["widgets.colour is not in the database"]
        assert schema_drift(db.engine, extra) == [
            "table missing is missing from the database",
            "widgets.name is in the database only",
        ]


def _noop(conn: Connection) -> None:
    pass


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schema("Bad Name", ()), "must match"),
        (
            lambda: Schema("gaps", (Migration(1, "a", _noop), Migration(3, "c", _noop))),
            "found 3 at position 2",
        ),
        (lambda: Schema("zero", (Migration(0, "a", _noop),)), "found 0 at position 1"),
        (lambda: Schema("blank", (Migration(1, "  ", _noop),)), "description"),
    ],
)
def test_schema_declarations_are_validated(make: Callable[[], Schema], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_the_same_schema_twice_is_refused(tmp_path: Path) -> None:
    engine = create_engine_for(None, tmp_path)
    try:
        with pytest.raises(ValueError, match="given twice"):
            migrate(engine, [WIDGETS_V1, WIDGETS_V2])
    finally:
        engine.dispose()


def test_concurrent_migrators_apply_each_step_exactly_once(tmp_path: Path) -> None:
    engines = [create_engine_for(None, tmp_path) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    results: list[list[tuple[str, int]]] = []
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(migrate(engine, [WIDGETS_V2, GADGETS]))
        except BaseException as error:  # reported below, in the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(step for applied in results for step in applied) == [
        ("gadgets", 1),
        ("widgets", 1),
        ("widgets", 2),
    ]
    assert sorted(calls) == ["gadgets v1", "widgets v1", "widgets v2"]
