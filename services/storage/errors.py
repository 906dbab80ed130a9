"""Storage errors: one type callers catch, with messages that name the file (or URL) and the reason."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class StorageError(Exception):
    """The database could not be opened, migrated, read or written. The message says which and why,
    in one line: whitespace in it (SQLite's multi-line ``quick_check`` report, a driver's message)
    is collapsed to single spaces."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(text.split())


class SchemaTooNewError(StorageError):
    """The database was written by a newer Heron; it is left untouched."""


class MigrationError(StorageError):
    """A migration failed; its transaction was rolled back and the schema stays at the previous version."""


class DamagedDatabaseError(StorageError):
    """The database file is damaged (a bad page, a truncated file, a file that is not a database) or
    holds tables of a shape this Heron cannot use (another application's, older or newer). Nothing
    in it was changed; start-up stops."""


class DamagedRowError(DamagedDatabaseError):
    """A stored row cannot be read back (not valid JSON, a missing field, an absurd value)."""


def describe_db_error(error: BaseException) -> str:
    """A short human reason for a DB-API/SQLAlchemy error (no SQL text, no parameters)."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip() or type(orig).__name__
    low = text.lower()
    if "file is not a database" in low or "malformed" in low:
        return f"the file is corrupt or not a SQLite database ({text})"
    if "database is locked" in low or "database table is locked" in low:
        return f"the database is locked by another process or connection ({text})"
    if "unable to open database file" in low:
        return f"the file cannot be opened: check that its directory exists and is writable ({text})"
    if "readonly" in low or "read-only" in low:
        return f"the database is read-only ({text})"
    if "database or disk is full" in low or (isinstance(orig, OSError) and orig.errno == errno.ENOSPC):
        return f"disk full ({text})"
    if "disk i/o error" in low:
        return f"a disk error occurred ({text})"
    return text


def describe_os_error(error: BaseException, path: object) -> str:
    """One line for a failed file write: "disk full" named as such, and the file."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"disk full writing {path} ({error.strerror or error})"
    return f"cannot write {path} ({type(error).__name__}: {error})"


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise SQLAlchemy errors from the block as :class:`StorageError` saying ``what`` failed.

    Integrity errors (constraint violations) are translated too; the original stays as ``__cause__``.
    """
    try:
        yield
    except StorageError:
        raise
    except sa_exc.SQLAlchemyError as error:
        raise StorageError(f"{what} failed: {describe_db_error(error)}") from error
