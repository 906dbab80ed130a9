"""Damage found when the database opens: bad pages, foreign and older table shapes, a journal mark."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table

from services.storage import Database, Migration, Schema
from services.storage.errors import DamagedDatabaseError
from services.storage.watermark import JournalMark, rollback_message

_live = MetaData()
Table("notes", _live, Column("id", Integer, primary_key=True), Column("body", String(100)))


def _v1(conn: Connection) -> None:
    m = MetaData()
    Table("notes", m, Column("id", Integer, primary_key=True), Column("body", String(100)))
    m.create_all(conn)


NOTES = Schema("notes", (Migration(1, "notes", _v1),), metadata=_live)


def _made(tmp_path: Path, rows: int = 2000) -> Path:
    with Database.open(None, tmp_path, [NOTES]) as db, db.begin() as conn:
        conn.exec_driver_sql("INSERT INTO notes (body) VALUES " + ",".join(["('x')"] * rows))
    return tmp_path / "heron.db"


def test_a_bad_page_is_found_at_open(tmp_path: Path) -> None:
    db = _made(tmp_path)
    with db.open("r+b") as fh:
        fh.seek(2 * 4096 + 8)
        fh.write(b"\xa5" * 64)
    with pytest.raises(DamagedDatabaseError, match="is damaged") as info:
        Database.open(None, tmp_path, [NOTES])
    assert str(db) in str(info.value)


def test_a_foreign_table_of_the_same_name_is_refused(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "heron.db")) as conn:
        conn.execute("CREATE TABLE notes (title TEXT)")
        conn.commit()
    with pytest.raises(DamagedDatabaseError, match="table notes exists"):
        Database.open(None, tmp_path, [NOTES])


def test_an_older_table_shape_is_refused(tmp_path: Path) -> None:
    db = _made(tmp_path, rows=1)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("ALTER TABLE notes DROP COLUMN body")
        conn.commit()
    with pytest.raises(DamagedDatabaseError, match="no column body"):
        Database.open(None, tmp_path, [NOTES])


def test_a_version_below_the_oldest_upgradable_is_refused(tmp_path: Path) -> None:
    _made(tmp_path, rows=1)
    newer = Schema("notes", (*NOTES.migrations, Migration(2, "more", lambda c: None)), metadata=_live,
                   oldest_upgradable=2)  # fmt: skip
    with pytest.raises(DamagedDatabaseError, match="older than this Heron can upgrade"):
        Database.open(None, tmp_path, [newer])


def test_the_journal_mark_names_a_rollback(tmp_path: Path) -> None:
    mark = JournalMark(tmp_path / "heron.db")
    assert mark.read() is None
    mark.write(12)
    assert JournalMark(tmp_path / "heron.db").read() == 12
    assert rollback_message(12, 12) is None and rollback_message(None, 3) is None
    message = rollback_message(12, 9)
    assert message is not None and message.startswith("journal rolled back: 3 record(s) missing")
    mark.path.write_text("{broken")
    assert mark.read() is None
