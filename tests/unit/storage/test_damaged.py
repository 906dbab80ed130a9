"""Damage found when the database opens: bad pages, foreign and older table shapes, a journal mark."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table

from services.storage import Database, Migration, Schema
from services.storage.errors import DamagedDatabaseError
from services.storage.watermark import JournalMark, lost_database_problem, rollback_message

_live = MetaData()
Table("notes", _live, Column("id", Integer, primary_key=True), Column("body", String(100)))


def _v1(conn: Connection) -> None:
    m = MetaData()
    Table("notes", m, Column("id", Integer, primary_key=True), Column("body", String(100)))
    m.create_all(conn)


NOTES = Schema("notes", (Migration(1, "notes", _v1),), metadata=_live)


def _sqlite(folder: Path) -> str:
    """These tests damage the SQLite file itself: never the run's PostgreSQL default
    (tests/support/postgres.py redirects only the default database)."""
    return f"sqlite:///{folder / 'heron.db'}"


def _made(tmp_path: Path, rows: int = 2000) -> Path:
    with Database.open(_sqlite(tmp_path), tmp_path, [NOTES]) as db, db.begin() as conn:
        conn.exec_driver_sql("INSERT INTO notes (body) VALUES " + ",".join(["('x')"] * rows))
    return tmp_path / "heron.db"


def test_a_bad_page_is_found_at_open(tmp_path: Path) -> None:
    db = _made(tmp_path)
    with db.open("r+b") as fh:
        fh.seek(2 * 4096 + 8)
        fh.write(b"\xa5" * 64)
    with pytest.raises(DamagedDatabaseError, match="is damaged") as info:
        Database.open(_sqlite(tmp_path), tmp_path, [NOTES])
    assert str(db) in str(info.value)


def test_a_foreign_table_of_the_same_name_is_refused(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "heron.db")) as conn:
        conn.execute("CREATE TABLE notes (title TEXT)")
        conn.commit()
    with pytest.raises(DamagedDatabaseError, match="table notes exists"):
        Database.open(_sqlite(tmp_path), tmp_path, [NOTES])


def test_an_older_table_shape_is_refused(tmp_path: Path) -> None:
    db = _made(tmp_path, rows=1)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("ALTER TABLE notes DROP COLUMN body")
        conn.commit()
    with pytest.raises(DamagedDatabaseError, match="no column body"):
        Database.open(_sqlite(tmp_path), tmp_path, [NOTES])


def test_a_version_below_the_oldest_upgradable_is_refused(tmp_path: Path) -> None:
    _made(tmp_path, rows=1)
    newer = Schema("notes", (*NOTES.migrations, Migration(2, "more", lambda c: None)), metadata=_live,
                   oldest_upgradable=2)  # fmt: skip
    with pytest.raises(DamagedDatabaseError, match="older than this Heron can upgrade"):
        Database.open(_sqlite(tmp_path), tmp_path, [newer])


@pytest.mark.expected_log(r"^services\.storage\.watermark: the journal mark \S+ cannot be read")
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


def test_the_mark_never_moves_backwards_and_keeps_naming_a_rollback_until_accepted(tmp_path: Path) -> None:
    db = tmp_path / "heron.db"
    JournalMark(db).write(18)
    mark = JournalMark(db)
    first = mark.check(5)
    assert first is not None and "13 record(s) missing" in first and "--accept-journal-rollback" in first
    mark.write(5)  # the periodic write after the rollback: the mark stays at 18
    mark.write(9)
    assert JournalMark(db).read() == 18
    again = JournalMark(db)
    assert again.check(9) == first  # the next start still names it, with the same numbers
    again.write(25)  # the journal grew past the old mark: the rollback is still not forgotten
    later = JournalMark(db)
    assert later.check(25) == first and later.read() == 25
    accepted = later.accept(25)
    assert accepted is not None and accepted.missing == 13
    assert JournalMark(db).check(25) is None and JournalMark(db).read() == 25


@pytest.mark.expected_log(r"^services\.storage\.watermark: the journal mark \S+ cannot be read")
def test_a_mark_without_a_rollback_record_reads_as_before(tmp_path: Path) -> None:
    db = tmp_path / "heron.db"
    JournalMark(db).path.write_text('{"journal_seq": 7}\n')
    mark = JournalMark(db)
    assert mark.check(7) is None and mark.rollback is None
    mark.path.write_text('{"journal_seq": 7, "rolled_back": {"marked": 3, "found": 9}}')
    assert JournalMark(db).read() is None  # a rollback that goes forward is no record: said, rewritten


def test_an_empty_or_missing_database_with_a_mark_is_lost_not_new(tmp_path: Path) -> None:
    db = tmp_path / "heron.db"
    assert lost_database_problem(db) is None  # a fresh profile
    db.write_bytes(b"")
    assert lost_database_problem(db) is None  # an empty file and no evidence: created as before
    JournalMark(db).write(18)
    problem = lost_database_problem(db)
    assert problem is not None and str(db) in problem and "empty (0 bytes)" in problem
    assert "reached 18" in problem and "\n" not in problem
    db.unlink()
    problem = lost_database_problem(db)
    assert problem is not None and "is missing" in problem
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    assert lost_database_problem(db) is None  # a file with content is judged by its own checks


def test_a_write_ahead_log_beside_an_empty_database_is_evidence_too(tmp_path: Path) -> None:
    db = tmp_path / "heron.db"
    db.write_bytes(b"")
    db.with_name("heron.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\x00" * 28)
    problem = lost_database_problem(db)
    assert problem is not None and "heron.db-wal" in problem


def test_a_damaged_page_is_said_in_one_line(tmp_path: Path) -> None:
    db = _made(tmp_path)
    with db.open("r+b") as fh:
        fh.seek(2 * 4096 + 8)
        fh.write(b"\xa5" * 64)
    with pytest.raises(DamagedDatabaseError) as info:
        Database.open(_sqlite(tmp_path), tmp_path, [NOTES])
    assert "\n" not in str(info.value) and "  " not in str(info.value), repr(str(info.value))
