"""The journal's high-water mark: a small sidecar file that survives a lost write-ahead log.

SQLite in WAL mode keeps every commit in ``<db>-wal`` until a checkpoint copies it into the main
file. If that log is deleted or damaged after a crash (killed before a checkpoint), SQLite opens
the database without the lost commits and says nothing: the journal is silently rolled back.

The mark records the highest journal sequence number known to be committed, in its own file next
to the database (``<db>-mark``), written atomically and fsynced. At start-up a journal behind its
mark was rolled back: :meth:`JournalMark.check` says so, and the drift it causes is named with it.
The mark may lag the journal (it is written periodically and at quit), never lead it, so the count
of missing records is a lower bound.

The mark never moves backwards by itself: a rollback, once found, is kept in the mark file and
named at every start-up until an operator accepts it (``--accept-journal-rollback REASON``,
:meth:`JournalMark.accept`). A database file that is missing or empty (0 bytes) while its mark (or
a write-ahead log) says it existed was lost, not never made: :func:`lost_database_problem` says so,
and start-up stops instead of creating a new, empty database over the evidence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from services.storage.files import atomic_write_bytes

log = logging.getLogger(__name__)

SUFFIX: Final = "-mark"
#: The command-line flag that accepts a rollback (named in messages).
ACCEPT_FLAG: Final = "--accept-journal-rollback REASON"


def mark_path(db_file: Path) -> Path:
    return db_file.with_name(db_file.name + SUFFIX)


@dataclass(frozen=True)
class Rollback:
    """A rollback found at a start-up: the mark said ``marked``, the journal ended at ``found``."""

    marked: int
    found: int

    @property
    def missing(self) -> int:
        return self.marked - self.found

    def message(self) -> str:
        return (
            f"journal rolled back: {self.missing} record(s) missing (write-ahead log damaged or lost, or "
            f"the database replaced by an older copy; the journal ended at {self.found}, it had reached "
            f"{self.marked}); named at every start until accepted with {ACCEPT_FLAG}"
        )

    @classmethod
    def from_json(cls, raw: Any) -> Rollback:
        if not isinstance(raw, dict):
            raise ValueError("rolled_back is not an object")
        marked, found = raw.get("marked"), raw.get("found")
        for v in (marked, found):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"rolled_back holds {v!r}, not a sequence number")
        assert isinstance(marked, int) and isinstance(found, int)
        if found >= marked:
            raise ValueError("rolled_back does not go back")
        return cls(marked, found)


class JournalMark:
    """Read and write the mark of one database file.

    :meth:`read` first: it sets the floor below which :meth:`write` never moves the mark and the
    unaccepted :attr:`rollback`, if any.
    """

    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self.path = mark_path(db_file)
        self.written: int | None = None
        #: A rollback found at an earlier (or this) start and not yet accepted by an operator.
        self.rollback: Rollback | None = None
        self._floor = 0

    def read(self) -> int | None:
        """The recorded sequence number, or None (no mark, or a mark that cannot be read: said once)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            seq = data["journal_seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"journal_seq {seq!r} is not a sequence number")
            rollback = Rollback.from_json(data["rolled_back"]) if "rolled_back" in data else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("the journal mark %s cannot be read (%s); it is rewritten", self.path, error)
            return None
        self._floor = max(self._floor, seq)
        self.rollback = rollback
        return seq

    def check(self, current: int) -> str | None:
        """At start-up, with the journal's highest sequence ``current``: the one-line cause when the
        journal was rolled back now or at an earlier start and not accepted since (None otherwise).
        A new rollback is recorded in the mark at once, so it is named again at the next start."""
        marked = self.read()
        if self.rollback is None and marked is not None and current < marked:
            self.rollback = Rollback(marked, current)
            self._store(marked)
        return self.rollback.message() if self.rollback is not None else None

    def write(self, seq: int) -> None:
        """Atomically raise the mark to ``seq`` and fsync it (and its folder); a lower ``seq`` leaves
        the mark where it is (it never moves backwards by itself). Raises OSError."""
        seq = max(seq, self._floor)
        if seq == self.written:
            return
        self._store(seq)

    def accept(self, seq: int) -> Rollback | None:
        """An operator accepted the journal as it is: the mark moves to ``seq`` (backwards if need
        be) and the recorded rollback is cleared. Returns the rollback that was accepted."""
        accepted = self.rollback
        self.rollback = None
        self._floor = seq
        self._store(seq)
        return accepted

    def _store(self, seq: int) -> None:
        data: dict[str, Any] = {"journal_seq": seq}
        if self.rollback is not None:
            data["rolled_back"] = {"marked": self.rollback.marked, "found": self.rollback.found}
        atomic_write_bytes(self.path, json.dumps(data).encode() + b"\n")
        self.written = seq
        self._floor = max(self._floor, seq)

    def forget(self) -> None:
        """A new database: an old mark belongs to a file that is gone."""
        self.path.unlink(missing_ok=True)
        self.written = None
        self.rollback = None
        self._floor = 0


def lost_database_problem(db_file: Path) -> str | None:
    """Why a missing or empty (0-byte) ``db_file`` is a lost database, not a new one: its journal mark
    or a write-ahead log next to it says a database was there. None when there is no such evidence
    (a fresh profile) or the file has content (its own checks judge it)."""
    try:
        size: int | None = db_file.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError:
        return None  # opening it says why
    if size:
        return None
    evidence: list[str] = []
    mark = mark_path(db_file)
    if mark.exists():
        seq = JournalMark(db_file).read()
        evidence.append(
            f"its journal mark {mark.name} says it existed"
            + (f" (its journal had reached {seq})" if seq is not None else "")
        )
    wal = db_file.with_name(db_file.name + "-wal")
    try:
        if wal.stat().st_size > 0:
            evidence.append(f"its write-ahead log {wal.name} holds data")
    except OSError:
        pass
    if not evidence:
        return None
    what = "is missing" if size is None else "is empty (0 bytes)"
    return (
        f"the database {db_file} {what} but {' and '.join(evidence)}: it was lost, not new, and nothing "
        f"was changed. Restore it from a backup, or start with {ACCEPT_FLAG} to begin a new database"
    )


def rollback_message(marked: int | None, current: int) -> str | None:
    """The one-line cause when the journal (highest sequence ``current``) is behind its mark."""
    if marked is None or current >= marked:
        return None
    missing = marked - current
    return (
        f"journal rolled back: {missing} record(s) missing (write-ahead log damaged or lost, or the "
        f"database replaced by an older copy; the journal ends at {current}, it had reached {marked})"
    )
