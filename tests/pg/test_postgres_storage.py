"""PostgreSQL-only checks: the behaviours the SQLite-worded unit tests check, in PostgreSQL's terms.

Run when ``HERON_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it; locally:
``uv run python -m tests.support.postgres``). Each test gets its own schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from services.domain.models import Bar
from services.storage import (
    Database,
    DecimalText,
    Migration,
    MigrationError,
    Schema,
    StorageError,
    UTCDateTime,
    add_column,
)
from services.storage.candles import CANDLES_SCHEMA, CandleStore
from tests.support.postgres import ENV_URL, SchemaPerDataDir

pytestmark = pytest.mark.skipif(
    not os.environ.get(ENV_URL), reason=f"needs {ENV_URL} (see tests/support/postgres.py)"
)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    schemas = SchemaPerDataDir(os.environ[ENV_URL])
    try:
        yield schemas.url_for(tmp_path)
    finally:
        schemas.drop_all()


def _widgets_v1(conn: Connection) -> None:
    m = MetaData()
    Table("widgets", m, Column("id", Integer, primary_key=True), Column("name", String(20)))
    m.create_all(conn)


def _widgets_colour(conn: Connection) -> None:
    add_column(conn, "widgets", Column("colour", String(20), nullable=True))


def _broken(conn: Connection) -> None:
    m = MetaData()
    Table("half_done", m, Column("id", Integer, primary_key=True))
    m.create_all(conn)
    raise RuntimeError("upgrade bug")


V1 = Schema("widgets", (Migration(1, "widgets table", _widgets_v1),))
V2 = Schema("widgets", (*V1.migrations, Migration(2, "widget colour", _widgets_colour)))
BROKEN = Schema("widgets", (*V1.migrations, Migration(2, "broken step", _broken)))
live_widgets = Table(
    "widgets", MetaData(), Column("id", Integer), Column("name", String(20)), Column("colour", String(20))
)
values = Table(
    "values_",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("amount", DecimalText()),
    Column("at", UTCDateTime()),
)


def test_the_server_is_postgresql(pg_url: str) -> None:
    with Database.open(pg_url, Path("/nonexistent-unused")) as db:
        assert db.dialect_name == "postgresql"
        assert "password" not in db.display_url


def test_missing_table_surfaces_as_storage_error(pg_url: str, tmp_path: Path) -> None:
    with Database.open(pg_url, tmp_path, [CANDLES_SCHEMA]) as db:
        store = CandleStore(db)
        with db.begin() as conn:
            conn.exec_driver_sql("DROP TABLE candles")
        with pytest.raises(StorageError, match='reading 1Min candles of AAPL failed: relation "candles"'):
            store.range_bars("AAPL", "1Min")
        with pytest.raises(StorageError, match="storing 1Min candles of AAPL failed"):
            store.upsert_bars(
                "AAPL",
                "1Min",
                [Bar("AAPL", datetime(2024, 3, 8, 14, 30, tzinfo=UTC), *(Decimal(1),) * 5, 1, None)],
            )


def test_upgrade_applies_only_the_new_step_and_keeps_data(pg_url: str, tmp_path: Path) -> None:
    with Database.open(pg_url, tmp_path, [V1]) as db, db.begin() as conn:
        conn.execute(insert(live_widgets).values(id=1, name="kept"))
    with (
        pytest.raises(sa_exc.ProgrammingError, match="colour"),
        Database.open(pg_url, tmp_path, [V1]) as db,
        db.connect() as conn,
    ):
        conn.execute(select(live_widgets)).all()
    with Database.open(pg_url, tmp_path, [V2]) as db, db.connect() as conn:
        assert conn.execute(select(live_widgets)).all() == [(1, "kept", None)]


def test_failed_migration_rolls_back_its_ddl_names_the_database_and_hides_the_password(
    pg_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import make_url

    with_password = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    # Trust auth accepts any password, so the open succeeds and the migration itself fails.
    with pytest.raises(
        MigrationError, match=r"widgets v2 \(broken step\) failed and was rolled back"
    ) as info:
        Database.open(with_password, tmp_path, [BROKEN])
    assert "s3cret-pw" not in str(info.value)
    assert "postgresql+psycopg://" in str(info.value)
    with Database.open(pg_url, tmp_path, [V1]) as db:
        tables = set(inspect(db.engine).get_table_names())
        assert "widgets" in tables and "half_done" not in tables  # transactional DDL


def test_numeric_equality_is_value_equality_and_decimals_come_back_exact(pg_url: str, tmp_path: Path) -> None:
    with Database.open(pg_url, tmp_path) as db:
        values.metadata.create_all(db.engine)
        amounts = [
            "2.50",
            "0.1",
            "-0.00000001",
            "99999999999999999999999999999999.999999999999999999",
            "1E+60",
        ]
        with db.begin() as conn:
            for i, text in enumerate(amounts):
                conn.execute(insert(values).values(id=i, amount=Decimal(text), at=datetime.now(UTC)))
        with db.connect() as conn:
            assert conn.execute(select(values.c.id).where(values.c.amount == Decimal("2.5"))).scalar() == 0
            got = conn.execute(select(values.c.amount).order_by(values.c.id)).scalars().all()
            assert got == [Decimal(t) for t in amounts]
            assert all(isinstance(v, Decimal) for v in got)
            # NUMERIC sorts by value, unlike SQLite's canonical text.
            assert conn.execute(select(func.min(values.c.amount))).scalar() == Decimal("-0.00000001")


def test_timestamps_come_back_aware_utc_whatever_the_session_time_zone(pg_url: str, tmp_path: Path) -> None:
    with Database.open(pg_url, tmp_path) as db:
        values.metadata.create_all(db.engine)
        eastern = datetime(2024, 1, 2, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
        with db.begin() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'Asia/Tokyo'")
            conn.execute(insert(values).values(id=1, amount=Decimal(1), at=eastern))
        with db.connect() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'America/Los_Angeles'")
            at = conn.execute(select(values.c.at)).scalar_one()
        assert at == eastern and at.tzinfo is UTC and at.microsecond == 123456
        with pytest.raises(sa_exc.StatementError, match="timezone-aware"), db.begin() as conn:
            conn.execute(insert(values).values(id=2, amount=Decimal(1), at=datetime(2024, 1, 2)))
