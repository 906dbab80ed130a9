"""Run the storage and orders suites against a real PostgreSQL server.

Three things live here:

1. **A pytest plugin** (load it with ``-p tests.support.postgres``). It needs
   ``HERON_TEST_POSTGRES_URL`` (``postgresql+psycopg://USER@127.0.0.1:PORT/DB``) and redirects every
   database a test opens with the default URL (``Database.open(None, data_dir)``,
   ``create_engine_for(None, data_dir)``) to PostgreSQL: each data directory gets its own schema
   (``search_path``), so tests stay as isolated as with their per-test SQLite files. Tests that
   check SQLite itself (pragmas, file locking, corrupt files, the file name) are skipped with the
   reason; every other test must give the same result as on SQLite. Schemas are dropped at the end.

2. **A throwaway cluster** (:class:`ThrowawayCluster`): ``initdb`` into a temporary directory,
   trust authentication, listening only on 127.0.0.1 on a free port, stopped and deleted on exit.
   As root it runs the server as the ``postgres`` user (``initdb`` refuses root).

3. **A developer command** that does both::

       uv run python -m tests.support.postgres            # storage + orders suites on PostgreSQL
       uv run python -m tests.support.postgres -k journal # extra pytest arguments pass through

   It needs PostgreSQL's server binaries (Debian: ``apt-get install postgresql``; found under
   ``/usr/lib/postgresql/*/bin``, ``pg_config --bindir`` or ``PATH``). With
   ``HERON_TEST_POSTGRES_URL`` already set it uses that server instead of starting one.

CI (``.ci/run``, PostgreSQL block) starts its cluster in shell and runs
``uv run pytest -p tests.support.postgres tests/unit/storage tests/unit/orders`` plus ``tests/pg``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

ENV_URL: Final = "HERON_TEST_POSTGRES_URL"
SUITES: Final = ("tests/unit/storage", "tests/unit/orders", "tests/unit/reconciliation")
SCHEMA_PREFIX: Final = "heron_t_"
PG_EQUIVALENTS: Final = "tests/pg/test_postgres_storage.py"

# Tests about SQLite itself: node-id suffix → why it does not apply to PostgreSQL.
SQLITE_ONLY: Final[dict[str, str]] = {
    "test_engine.py::test_default_url_is_heron_db_in_data_dir_created_on_demand": "SQLite file name",
    "test_engine.py::test_every_pooled_connection_has_wal_full_sync_foreign_keys_and_busy_timeout": (
        "checks SQLite pragmas"
    ),
    "test_engine.py::test_write_lock_takes_the_sqlite_write_lock_at_begin": "checks SQLite's file lock",
    "test_engine.py::test_corrupt_file_is_a_storage_error_naming_the_file": "corrupts the SQLite file",
    "test_engine.py::test_locked_file_is_a_storage_error": "locks the SQLite file",
    "test_engine.py::test_data_dir_that_cannot_be_created_is_a_storage_error": "SQLite data directory",
    "test_engine.py::test_unwritable_directory_is_a_storage_error": "SQLite data directory",
    "test_candles.py::test_portable_path_stores_exactly_what_the_sqlite_fast_path_stores": (
        "compares SQLite's raw stored text"
    ),
}

# Tests whose behaviour holds on PostgreSQL but whose assertion quotes SQLite's wording or storage
# form; tests/pg/test_postgres_storage.py checks the same behaviour in PostgreSQL's terms.
SQLITE_WORDING: Final[dict[str, str]] = {
    "test_candles.py::test_database_failures_surface_as_storage_errors": "matches SQLite's 'no such table'",
    "test_schema.py::test_upgrading_an_older_database_applies_only_the_new_step_and_keeps_data": (
        "expects SQLite's OperationalError class for a missing column"
    ),
    "test_schema.py::test_failed_migration_rolls_back_its_ddl_and_keeps_earlier_steps": (
        "expects the SQLite file path in the message"
    ),
    "test_types.py::test_stored_text_is_canonical_so_sql_equality_is_value_equality": (
        "reads SQLite's canonical text; PostgreSQL stores NUMERIC"
    ),
}


# --------------------------------------------------------------------------------------------------
# URL helpers


def admin_conninfo(url: str) -> str:
    """The libpq connection string for a SQLAlchemy ``postgresql+psycopg://`` URL."""
    from sqlalchemy import make_url

    u = make_url(url)
    parts = {
        "host": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "dbname": u.database or "postgres",
        "user": u.username or "postgres",
    }
    if u.password:
        parts["password"] = u.password
    return " ".join(f"{k}={v}" for k, v in parts.items())


def schema_name_for(data_dir: Path) -> str:
    digest = hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    return SCHEMA_PREFIX + digest


def url_with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` first (``search_path``), so tables land there."""
    from sqlalchemy import make_url

    u = make_url(url)
    query = dict(u.query)
    query["options"] = f"-csearch_path={schema}"
    return u.set(query=query).render_as_string(hide_password=False)


class SchemaPerDataDir:
    """Maps each test data directory to its own PostgreSQL schema, creating it on first use."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._conn = psycopg.connect(admin_conninfo(url), autocommit=True, connect_timeout=10)
        self._made: dict[str, str] = {}
        self.created = 0

    def url_for(self, data_dir: Path) -> str:
        schema = schema_name_for(data_dir)
        if schema not in self._made:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            self._conn.execute(f'CREATE SCHEMA "{schema}"')
            self._made[schema] = url_with_schema(self.url, schema)
            self.created += 1
        return self._made[schema]

    def drop_all(self) -> None:
        self._conn.execute("SET lock_timeout = '5s'")
        for schema in list(self._made):
            with contextlib.suppress(Exception):
                self._conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._made.clear()
        self._conn.close()


# --------------------------------------------------------------------------------------------------
# pytest plugin (active only when loaded with -p tests.support.postgres)

_state: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        raise pytest.UsageError(
            f"-p tests.support.postgres needs {ENV_URL}=postgresql+psycopg://USER@HOST:PORT/DB "
            "(or run: uv run python -m tests.support.postgres)"
        )
    import services.storage.engine as storage_engine

    schemas = SchemaPerDataDir(url)
    _state["schemas"] = schemas
    _state["original_default_url"] = storage_engine.default_url

    def default_url(data_dir: Path) -> str:
        return schemas.url_for(Path(data_dir))

    storage_engine.default_url = default_url


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    schemas = _state.get("schemas")
    used = schemas.created if schemas is not None else 0
    terminalreporter.write_line(f"PostgreSQL: {used} per-test schemas used")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run that never reached PostgreSQL (the redirect broke) must not pass as a PostgreSQL run.
    schemas = _state.get("schemas")
    if session.testscollected and schemas is not None and schemas.created == 0 and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nno test opened a database through {ENV_URL}: the PostgreSQL redirect did not apply")


def pytest_unconfigure(config: pytest.Config) -> None:
    schemas = _state.pop("schemas", None)
    original = _state.pop("original_default_url", None)
    if original is not None:
        import services.storage.engine as storage_engine

        storage_engine.default_url = original
    if schemas is not None:
        schemas.drop_all()


def pytest_report_header(config: pytest.Config) -> str:
    from sqlalchemy import make_url

    url = os.environ.get(ENV_URL, "")
    return f"storage backend: PostgreSQL {make_url(url).render_as_string(hide_password=True)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for suffix, why in SQLITE_ONLY.items():
            if item.nodeid.split("[")[0].endswith(suffix):
                item.add_marker(pytest.mark.skip(reason=f"SQLite-specific on PostgreSQL run: {why}"))
        for suffix, why in SQLITE_WORDING.items():
            if item.nodeid.split("[")[0].endswith(suffix):
                item.add_marker(pytest.mark.skip(reason=f"{why}; PostgreSQL equivalent in {PG_EQUIVALENTS}"))


# --------------------------------------------------------------------------------------------------
# Throwaway cluster


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``, newest version first."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for c in candidates:
        if (c / "initdb").exists():
            return c
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayCluster:
    """A PostgreSQL server in a temporary directory on 127.0.0.1 with trust auth; ``url`` when up."""

    def __init__(self, bin_dir: Path, *, database: str = "heron_test") -> None:
        self.bin_dir = bin_dir
        self.database = database
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="heron-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres" if self._as_postgres else (os.environ.get("USER") or "postgres")
        self.url = f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str | Path) -> None:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            self.bin_dir / "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            self.bin_dir / "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._run(
            self.bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.bin_dir / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """``HERON_TEST_POSTGRES_URL`` if set, else a throwaway cluster's URL for the block."""
    existing = os.environ.get(ENV_URL, "").strip()
    if existing:
        yield existing
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    with ThrowawayCluster(bin_dir) as cluster:
        yield cluster.url


def main(argv: list[str]) -> int:
    started = time.monotonic()
    with postgres_url() as url:
        env = dict(os.environ, **{ENV_URL: url})
        cmd = [sys.executable, "-m", "pytest", "-p", "tests.support.postgres", *SUITES, "tests/pg", *argv]
        rc = subprocess.run(cmd, env=env, check=False).returncode
    print(f"PostgreSQL run finished in {time.monotonic() - started:.1f} s (exit {rc})")
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
