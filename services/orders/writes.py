"""WriteBatch: group the order services' database writes into as few commits as safety allows.

Only the intent must be durable before the POST. Everything after it (acks, state changes, fills,
order rows) can be recovered from the broker after a crash (start-up resolves in-flight intents
by client id and refreshes every open order), so those writes are queued here and committed
together: with the next intent (one commit before the wire instead of several), or by
:meth:`flush` soon after (the engine schedules it on the event loop). Statements are executed in
the order they were queued, in one transaction; a failed flush keeps them queued and raises.

Not thread-safe; used on the event-loop thread of its owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.sql import Executable

from services.storage import Database


class WriteBatch:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[Executable] = []
        self.commits = 0

    def add(self, *statements: Executable) -> None:
        self._pending.extend(statements)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: every queued statement first, then the caller's; committed on exit."""
        queued = list(self._pending)
        with self.db.begin() as conn:
            for stmt in queued:
                conn.execute(stmt)
            yield conn
        del self._pending[: len(queued)]
        self.commits += 1

    def flush(self) -> None:
        if self._pending:
            with self.transaction():
                pass
