"""The SQLAlchemy engine and the :class:`Database` that owns it.

Default: one SQLite file, ``<data_dir>/heron.db``, in WAL mode with ``synchronous=FULL`` (every commit
is fsynced before it returns, which the order journal relies on before an order goes on the wire),
``foreign_keys=ON`` and a busy timeout. Any other SQLAlchemy URL works (for example
``postgresql+psycopg://user@host/heron``); everything SQLite-specific lives in the SQLite branch below.

Threads: a :class:`Database` may be shared by threads. Each ``session()`` / ``begin()`` call takes its
own connection from the pool; do not share one Session or Connection between threads. The exception
is an in-memory SQLite URL (``sqlite://``): it is one shared connection, for single-threaded tests.
Nothing here touches the event loop: calls block, so async callers run them in a worker thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from services.storage.errors import DamagedDatabaseError, StorageError, describe_db_error
from services.storage.locking import SQLITE_BEGIN_OPTION, immediate
from services.storage.schema import Schema, migrate

log = logging.getLogger(__name__)

DEFAULT_DB_NAME: Final = "heron.db"
DEFAULT_BUSY_TIMEOUT_S: Final = 10.0


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / DEFAULT_DB_NAME}"


def display_url(url: URL) -> str:
    """The URL as it may appear in messages and logs: a file path for SQLite, never a password."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def create_engine_for(
    url: str | None, data_dir: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> Engine:
    """Build the engine for ``url`` (``None`` = SQLite file in ``data_dir``), without connecting yet.

    Raises :class:`StorageError` for an unusable URL, a missing driver, or a data directory that
    cannot be created.
    """
    if url is None:
        _ensure_dir(Path(data_dir))
        url = default_url(Path(data_dir))
    try:
        sa_url = make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        # The text may hold a password, so it is not echoed back.
        raise StorageError("the database URL is not a valid SQLAlchemy URL") from None
    if sa_url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(sa_url, busy_timeout_s)
    try:
        return create_engine(sa_url, pool_pre_ping=True)
    except (sa_exc.NoSuchModuleError, ModuleNotFoundError) as error:
        raise StorageError(
            f"no database driver for {sa_url.drivername!r} ({error}); install it or use another URL"
        ) from None


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create the data directory {path}: {error.strerror or error}") from None
    if not path.is_dir():
        raise StorageError(f"the data directory {path} is not a directory")


def _create_sqlite_engine(sa_url: URL, busy_timeout_s: float) -> Engine:
    connect_args = {"check_same_thread": False, "timeout": busy_timeout_s}
    if sa_url.database in (None, "", ":memory:"):
        # One in-memory database needs one shared connection (a pool would open a fresh, empty
        # database per connection). For single-threaded tests only: threads would share a transaction.
        engine = create_engine(sa_url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(sa_url, connect_args=connect_args)
    busy_ms = max(0, int(busy_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN: pysqlite's own implicit transactions
        # neither cover DDL (so a failed migration would leave half a schema) nor allow IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            mode = _enable_wal(cursor, busy_timeout_s)
            if str(mode).lower() not in ("wal", "memory"):
                log.warning(
                    "SQLite refused WAL mode (journal_mode=%s); commits stay durable but slower", mode
                )
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

    return engine


def _enable_wal(cursor: Any, busy_timeout_s: float) -> str:
    """Switch the file to WAL (persistent, so usually already done) and return the journal mode.

    Switching needs an exclusive lock and SQLite does not run the busy handler for it, so two
    connections creating a new database at once can see "database is locked": retry until the
    busy timeout instead.
    """
    mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode in ("wal", "memory"):
        return mode
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            return str(cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def check_connection(engine: Engine) -> None:
    """Connect once and read the schema catalogue; raises :class:`StorageError` saying why it failed.

    This catches a missing/unwritable directory, a locked file and a file that is not a database.
    """
    where = display_url(engine.url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
            else:
                conn.execute(text("SELECT 1")).scalar_one()
    except sa_exc.SQLAlchemyError as error:
        raise StorageError(f"cannot open the database {where}: {_open_reason(engine, error)}") from error


#: Problems ``PRAGMA quick_check`` may list; the first few are enough to name the damage.
_QUICK_CHECK_LINES: Final = 3


def check_integrity(engine: Engine) -> None:
    """``PRAGMA quick_check`` on a SQLite file (a no-op elsewhere): every page and b-tree is read,
    so a bad page or a truncated file is found here, not by the first query that touches it.

    Linear in the file size (about a second per few hundred MB on a local SSD). Raises
    :class:`DamagedDatabaseError` naming the file and the first problems found.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    where = display_url(engine.url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA quick_check({_QUICK_CHECK_LINES})").all()
    except sa_exc.SQLAlchemyError as error:
        raise DamagedDatabaseError(
            f"the database {where} is damaged: {describe_db_error(error)}; it was not changed"
        ) from error
    problems = [str(r[0]) for r in rows if str(r[0]).lower() != "ok"]
    if problems:
        raise DamagedDatabaseError(
            f"the database {where} is damaged (quick_check: {'; '.join(problems)}); it was not changed. "
            "Move it aside and restore a backup (the broker's orders and positions are kept at the broker)"
        )


def _open_reason(engine: Engine, error: BaseException) -> str:
    reason = describe_db_error(error)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        directory = Path(engine.url.database or "").resolve().parent
        if not directory.is_dir():
            return f"its directory {directory} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"its directory {directory} is not writable"
    return reason


class Database:
    """Owns the engine and the session factory. Build with :meth:`open`; close with :meth:`dispose`.

    Thread-safe: every :meth:`session` / :meth:`begin` uses its own pooled connection.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._immediate_engine = immediate(engine)
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def open(
        cls,
        url: str | None,
        data_dir: Path,
        schemas: Sequence[Schema] = (),
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        verify: bool = True,
    ) -> Database:
        """Create the engine, check the database opens and (``verify``) is intact, apply pending
        migrations of ``schemas`` and check their tables' shapes.

        Raises :class:`StorageError` (or its :class:`SchemaTooNewError` / :class:`MigrationError` /
        :class:`DamagedDatabaseError` subclasses) with a message naming the file or URL and the reason.
        """
        engine = create_engine_for(url, data_dir, busy_timeout_s=busy_timeout_s)
        try:
            check_connection(engine)
            if verify:
                check_integrity(engine)
            migrate(engine, schemas)
        except StorageError as error:
            engine.dispose()
            if display_url(engine.url) in str(error):
                raise
            # Same error type, but naming the database.
            raise type(error)(f"database {display_url(engine.url)}: {error}") from error
        except BaseException:
            engine.dispose()
            raise
        log.info("database open: %s", display_url(engine.url))
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect_name(self) -> str:
        return self._engine.dialect.name

    @property
    def display_url(self) -> str:
        return display_url(self._engine.url)

    @contextmanager
    def session(self, *, write_lock: bool = False) -> Iterator[Session]:
        """An ORM session in one transaction: committed when the block ends, rolled back on error.

        ``write_lock=True`` takes SQLite's write lock at BEGIN (for read-then-write transactions).
        Loaded objects are not expired at commit, so they stay readable after the block.
        """
        session = self._sessions(bind=self._immediate_engine if write_lock else self._engine)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def begin(self, *, write_lock: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction: committed when the block ends, rolled back on error."""
        engine = self._immediate_engine if write_lock else self._engine
        with engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection for reads (a transaction begins on first use and is rolled back at the end)."""
        with self._engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection. The Database must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()
