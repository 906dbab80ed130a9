"""WriteBatch: group the order services' database writes into as few commits as safety allows.

Only the intent must be durable before the POST. Everything after it (acks, state changes, fills,
order rows) can be recovered from the broker after a crash (start-up resolves in-flight intents
by client id and refreshes every open order), so those writes are queued here and committed
together: with the next intent (one commit before the wire instead of several), or by
:meth:`flush` soon after (the engine schedules it on the event loop). Statements are executed in
the order they were queued, in one transaction; a failed flush keeps them queued and raises.

When the database refuses writes (a full disk, a lock held past the busy timeout), the rows stay
queued in order and go with the first commit that gets through: :meth:`try_flush` says so in the
log once per outage (naming the file and "disk full" when that is the cause), and once more when
writes work again. Nothing queued is dropped.

Not thread-safe; used on the event-loop thread of its owner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Executable

from services.storage import Database
from services.storage.errors import StorageError, describe_db_error

log = logging.getLogger(__name__)

#: What a refused database write raises; callers on order paths catch exactly these.
DB_ERRORS = (SQLAlchemyError, StorageError)


def describe_write_error(error: BaseException, db: Database) -> str:
    """Why a write failed, naming the database file: ``disk full (...) on /path/heron.db``."""
    return f"{describe_db_error(error)} on {db.display_url}"


class UnwrittenRecords(RuntimeError):
    """Rows still queued when the process ends, because the database refuses writes (the message
    says how many and why). ``expected``: a foreseen outcome, said in words, not a crash."""

    expected = True


class WriteBatch:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[Executable] = []
        self.commits = 0
        #: why writes are failing now (None while they work); set by a failed commit
        self.failing: str | None = None

    def add(self, *statements: Executable) -> None:
        self._pending.extend(statements)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: every queued statement first, then the caller's; committed on exit."""
        queued = list(self._pending)
        try:
            with self.db.begin() as conn:
                for stmt in queued:
                    conn.execute(stmt)
                yield conn
        except DB_ERRORS as error:
            self._note_failure(error, len(queued))
            raise
        del self._pending[: len(queued)]
        self.commits += 1
        if self.failing is not None:
            log.warning("database writes work again on %s; %d queued row(s) committed (they were "
                        "refused: %s)", self.db.display_url, len(queued), self.failing)  # fmt: skip
            self.failing = None

    def _note_failure(self, error: BaseException, queued: int) -> None:
        why = describe_write_error(error, self.db)
        if self.failing is None:
            log.error("database writes refused: %s; %d row(s) kept queued in memory, committed with "
                      "the first write that gets through", why, queued)  # fmt: skip
        self.failing = why

    def flush(self) -> None:
        if self._pending:
            with self.transaction():
                pass

    def try_flush(self) -> bool:
        """Commit the queued rows if the database takes them; False (rows kept, said once in the log
        per outage) if it refuses. Never raises for a database error."""
        try:
            self.flush()
        except DB_ERRORS:
            return False
        return True
