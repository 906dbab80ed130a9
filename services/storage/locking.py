"""Write-lock-at-BEGIN transactions for SQLite (a no-op on other databases)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Engine

# Execution option read by the SQLite "begin" hook in engine.py: "DEFERRED" (default) or "IMMEDIATE".
SQLITE_BEGIN_OPTION: Final = "heron_sqlite_begin"


def immediate(engine: Engine) -> Engine:
    """``engine`` whose transactions take the write lock at BEGIN on SQLite (no effect elsewhere).

    Use it for read-then-write transactions: a deferred SQLite transaction that reads and then writes
    can fail with "database is locked" at once (no busy wait) if another writer committed in between.
    """
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
