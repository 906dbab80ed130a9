"""Engine and Database: pragmas, transactions, and clear errors when the database cannot be opened."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert, select

from services.storage import Database, Migration, Schema, StorageError, create_engine_for


def _notes_v1(conn: Connection) -> None:
    m = MetaData()
    Table("notes", m, Column("id", Integer, primary_key=True), Column("body", String(50), nullable=False))
    m.create_all(conn)


NOTES = Schema("test_notes", (Migration(1, "notes table", _notes_v1),))
notes = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String(50)))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(None, tmp_path / "data", [NOTES])
    yield database
    database.dispose()


def test_default_url_is_heron_db_in_data_dir_created_on_demand(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    with Database.open(None, data_dir) as database:
        assert database.dialect_name == "sqlite"
        assert Path(database.display_url) == data_dir / "heron.db"
    assert (data_dir / "heron.db").is_file()


def test_every_pooled_connection_has_wal_full_sync_foreign_keys_and_busy_timeout(db: Database) -> None:
    with db.connect() as first, db.connect() as second:
        for conn in (first, second):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as session:
        session.execute(insert(notes).values(id=1, body="kept"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.execute(insert(notes).values(id=2, body="lost"))
        raise RuntimeError("boom")
    with db.connect() as conn:
        assert conn.execute(select(notes.c.body)).scalars().all() == ["kept"]


def test_begin_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.execute(insert(notes).values(id=3, body="lost"))
        raise RuntimeError("boom")
    with db.connect() as conn:
        assert conn.execute(select(notes.c.id)).all() == []


def test_write_lock_takes_the_sqlite_write_lock_at_begin(db: Database, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "data" / "heron.db", timeout=0, isolation_level=None)
    try:
        with db.begin(write_lock=True) as conn:
            conn.execute(select(notes.c.id)).all()  # read only, yet the write lock is held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
        with db.begin() as conn:  # a deferred transaction does not block other writers
            conn.execute(select(notes.c.id)).all()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_data_dir_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StorageError, match="cannot create the data directory") as info:
        Database.open(None, blocker / "data")
    assert str(blocker / "data") in str(info.value)


def test_missing_directory_in_explicit_url_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x.db"
    with pytest.raises(StorageError, match="does not exist") as info:
        Database.open(f"sqlite:///{missing}", tmp_path)
    assert str(missing) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_directory_is_a_storage_error(tmp_path: Path) -> None:
    locked_dir = tmp_path / "ro"
    locked_dir.mkdir()
    locked_dir.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="not writable") as info:
            Database.open(None, locked_dir)
        assert str(locked_dir / "heron.db") in str(info.value)
    finally:
        locked_dir.chmod(0o700)


def test_corrupt_file_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "heron.db"
    garbage = b"this is certainly not a SQLite database file\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match="corrupt or not a SQLite database") as info:
        Database.open(None, tmp_path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == garbage


def test_locked_file_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "heron.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="locked") as info:
            Database.open(None, tmp_path, busy_timeout_s=0.05)
        assert str(path) in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_bad_url_and_missing_driver_never_echo_the_password(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a valid SQLAlchemy URL") as info:
        create_engine_for("no scheme s3cret", tmp_path)
    assert "s3cret" not in str(info.value)
    with pytest.raises(StorageError, match="no database driver") as info:
        create_engine_for("postgresql+nosuchdriver://user:s3cret@localhost/heron", tmp_path)
    assert "s3cret" not in str(info.value)


def test_in_memory_url_is_one_shared_database(tmp_path: Path) -> None:
    with Database.open("sqlite://", tmp_path / "unused", [NOTES]) as database:
        with database.begin() as conn:
            conn.execute(insert(notes).values(id=1, body="in memory"))
        for _ in range(2):  # a later connection sees the same database, not a fresh empty one
            with database.connect() as conn:
                assert conn.execute(select(notes.c.body)).scalar() == "in memory"
    assert not (tmp_path / "unused").exists()
