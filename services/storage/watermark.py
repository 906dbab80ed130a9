"""The journal's high-water mark: a small sidecar file that survives a lost write-ahead log.

SQLite in WAL mode keeps every commit in ``<db>-wal`` until a checkpoint copies it into the main
file. If that log is deleted or damaged after a crash (killed before a checkpoint), SQLite opens
the database without the lost commits and says nothing: the journal is silently rolled back.

The mark records the highest journal sequence number known to be committed, in its own file next
to the database (``<db>-mark``), written atomically and fsynced. At start-up a journal behind its
mark was rolled back: :func:`rollback_message` says so, and the drift it causes is named with it.
The mark may lag the journal (it is written periodically and at quit), never lead it, so the count
of missing records is a lower bound.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

SUFFIX: Final = "-mark"


def mark_path(db_file: Path) -> Path:
    return db_file.with_name(db_file.name + SUFFIX)


class JournalMark:
    """Read and write the mark of one database file."""

    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self.path = mark_path(db_file)
        self.written: int | None = None

    def read(self) -> int | None:
        """The recorded sequence number, or None (no mark, or a mark that cannot be read: said once)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            seq = data["journal_seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"journal_seq {seq!r} is not a sequence number")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("the journal mark %s cannot be read (%s); it is rewritten", self.path, error)
            return None
        return seq

    def write(self, seq: int) -> None:
        """Atomically replace the mark with ``seq`` and fsync it (and its folder). Raises OSError."""
        if seq == self.written:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"journal_seq": seq}).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.written = seq

    def forget(self) -> None:
        """A new database: an old mark belongs to a file that is gone."""
        self.path.unlink(missing_ok=True)
        self.written = None


def rollback_message(marked: int | None, current: int) -> str | None:
    """The one-line cause when the journal (highest sequence ``current``) is behind its mark."""
    if marked is None or current >= marked:
        return None
    missing = marked - current
    return (
        f"journal rolled back: {missing} record(s) missing (write-ahead log damaged or lost, or the "
        f"database replaced by an older copy; the journal ends at {current}, it had reached {marked})"
    )
