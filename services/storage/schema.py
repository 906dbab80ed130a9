"""Versioned schema: each part of Heron owns a :class:`Schema` (a name plus an ordered migration line).

The ``schema_version`` table records, per schema name, every migration applied (version, description,
time). :func:`migrate` applies the pending migrations of the schemas it is given, each migration in its
own transaction together with its ``schema_version`` row, so a failure leaves the schema at the last
complete version. A database whose recorded version for a schema is newer than the code's latest is
refused with :class:`SchemaTooNewError` before anything is written. Schemas the caller does not pass are
left alone (a tool that only opens the candle store does not need the order tables).

Separate version lines per schema let each package evolve its tables without coordinating version
numbers with everyone else; ``migrate`` applies schemas in the order given, so a schema whose tables
reference another's (foreign keys) must come after it.

How to add a table (say, in ``services/orders/tables.py``)
----------------------------------------------------------
1. Describe the table as it is *now*, for queries, on a ``MetaData`` of your own package::

       metadata = MetaData()
       orders = Table(
           "orders", metadata,
           Column("id", String(64), primary_key=True),
           Column("qty", DecimalText(), nullable=False),          # exact Decimal
           Column("created_at", UTCDateTime(), nullable=False),   # aware UTC datetime
       )

2. Write the migration that creates it with a *frozen* copy of that definition, built inside the
   function on a throwaway ``MetaData``, so that later edits to the live table never change what an
   old migration does (migrations must be deterministic)::

       def _v1_create_orders(conn: Connection) -> None:
           m = MetaData()
           Table("orders", m,
                 Column("id", String(64), primary_key=True),
                 Column("qty", DecimalText(), nullable=False),
                 Column("created_at", UTCDateTime(), nullable=False))
           m.create_all(conn)

3. Declare the line; versions start at 1 and go up by one; never edit or reorder an applied one::

       ORDERS_SCHEMA = Schema("orders", (Migration(1, "orders table", _v1_create_orders),))

4. To change the table later: edit the live ``Table`` (step 1) *and* append ``Migration(2, ...)`` whose
   upgrade alters the database with Core (``add_column`` below, ``Index(...).create(conn)``,
   ``conn.execute(update(...))`` for data). Upgrades use SQLAlchemy Core only, no dialect-specific SQL
   unless guarded by ``conn.dialect.name``; do not commit inside them (the transaction is ours).

5. Hand the schema to the composition root (``app/subsystems/storage.py``), which opens the database with
   ``Database.open(url, data_dir, schemas=[CANDLES_SCHEMA, ORDERS_SCHEMA, ...])``. In tests, check
   the live tables against the migrated database with :func:`schema_drift`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    inspect,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateColumn

from services.storage.errors import (
    DamagedDatabaseError,
    MigrationError,
    SchemaTooNewError,
    StorageError,
    describe_db_error,
)
from services.storage.locking import immediate
from services.storage.types import UTCDateTime

_NAME: Final = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")

_version_metadata = MetaData()
schema_version = Table(
    "schema_version",
    _version_metadata,
    Column("schema_name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("schema_name", "version", name="pk_schema_version"),
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of a schema's line. ``upgrade`` runs inside a transaction it must not commit."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


@dataclass(frozen=True, slots=True)
class Schema:
    """A named, ordered migration line owned by one part of Heron.

    ``metadata`` (the live tables) lets :func:`migrate` refuse a table of the same name but another
    shape (another application's, or an older one no migration covers) before anything reads it.
    ``oldest_upgradable``: a database recorded below this version is refused (its migrations are
    no longer part of this Heron); 1 means every version can be upgraded.
    """

    name: str
    migrations: tuple[Migration, ...]
    metadata: MetaData | None = None
    oldest_upgradable: int = 1

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"schema name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.migrations, tuple):
            object.__setattr__(self, "migrations", tuple(self.migrations))
        for expected, migration in enumerate(self.migrations, start=1):
            if migration.version != expected:
                raise ValueError(
                    f"schema {self.name!r}: migration versions must be 1, 2, 3, ... in order; "
                    f"found {migration.version} at position {expected}"
                )
            if not migration.description.strip() or len(migration.description) > 200:
                raise ValueError(f"schema {self.name!r} v{expected}: description must be 1-200 characters")

    @property
    def latest(self) -> int:
        return len(self.migrations)


def current_versions(conn: Connection) -> dict[str, int]:
    """Recorded version per schema name (empty if the database has no ``schema_version`` table)."""
    if not inspect(conn).has_table(schema_version.name):
        return {}
    rows = conn.execute(
        select(schema_version.c.schema_name, func.max(schema_version.c.version)).group_by(
            schema_version.c.schema_name
        )
    )
    return {name: int(version) for name, version in rows}


def migrate(engine: Engine, schemas: Sequence[Schema]) -> list[tuple[str, int]]:
    """Apply pending migrations; return ``(schema name, version)`` for each one applied, in order.

    Opening an up-to-date database is a read-only no-op. Raises :class:`SchemaTooNewError` (nothing
    written) if the database is ahead of the code, :class:`MigrationError` if an upgrade fails (that
    migration rolled back), :class:`StorageError` for other database failures.
    """
    names = [s.name for s in schemas]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"schemas given twice: {duplicates}")
    try:
        with engine.connect() as conn:
            _check_version_table(conn)
            recorded = current_versions(conn)
            for schema in schemas:
                _check_before(conn, schema, recorded.get(schema.name, 0))
    except sa_exc.SQLAlchemyError as error:
        raise StorageError(f"cannot read the schema version: {describe_db_error(error)}") from error
    too_new = [
        f"{s.name} is at version {recorded[s.name]}, this Heron knows up to {s.latest}"
        for s in schemas
        if recorded.get(s.name, 0) > s.latest
    ]
    if too_new:
        raise SchemaTooNewError(
            "the database was written by a newer Heron and was not touched: "
            + "; ".join(too_new)
            + ". Upgrade Heron or open another database."
        )
    applied: list[tuple[str, int]] = []
    if not all(recorded.get(s.name, 0) == s.latest for s in schemas):
        _ensure_version_table(engine)
        for schema in schemas:
            for migration in schema.migrations[recorded.get(schema.name, 0) :]:
                if _apply(engine, schema, migration):
                    applied.append((schema.name, migration.version))
    check_shapes(engine, schemas)
    return applied


def _check_version_table(conn: Connection) -> None:
    insp = inspect(conn)
    if not insp.has_table(schema_version.name):
        return
    in_db = {c["name"] for c in insp.get_columns(schema_version.name)}
    missing = sorted({c.name for c in schema_version.columns} - in_db)
    if missing:
        raise DamagedDatabaseError(
            f"the table schema_version has another shape (no column {', '.join(missing)}): "
            "this is not a Heron database (another application's?); nothing was changed"
        )


def _check_before(conn: Connection, schema: Schema, recorded: int) -> None:
    """Refuse what no migration can turn into ``schema``'s tables, before anything is written."""
    if 0 < recorded < schema.oldest_upgradable:
        raise DamagedDatabaseError(
            f"{schema.name} is at version {recorded}, older than this Heron can upgrade (from version "
            f"{schema.oldest_upgradable}); nothing was changed. Open it with an older Heron first."
        )
    if recorded == 0 and schema.metadata is not None:
        insp = inspect(conn)
        foreign = [t.name for t in schema.metadata.sorted_tables if insp.has_table(t.name)]
        if foreign:
            raise DamagedDatabaseError(
                f"table {', '.join(foreign)} exists but Heron's {schema.name} schema was never recorded "
                "in it: a table of another application (or of a damaged database); nothing was changed"
            )


def check_shapes(engine: Engine, schemas: Sequence[Schema]) -> None:
    """Every live table of ``schemas`` (those with ``metadata``) exists with every column the code
    reads; raises :class:`DamagedDatabaseError` naming the table and the missing columns."""
    try:
        with engine.connect() as conn:
            recorded = current_versions(conn)
            insp = inspect(conn)
            for schema in schemas:
                if schema.metadata is None:
                    continue
                for table in schema.metadata.sorted_tables:
                    where = f"{schema.name} schema version {recorded.get(schema.name, 0)}"
                    if not insp.has_table(table.name):
                        raise DamagedDatabaseError(f"table {table.name} is missing ({where})")
                    in_db = {c["name"] for c in insp.get_columns(table.name)}
                    missing = [c.name for c in table.columns if c.name not in in_db]
                    if missing:
                        raise DamagedDatabaseError(
                            f"table {table.name} has another shape (no column {', '.join(missing)}; "
                            f"{where}): an older or foreign table this Heron cannot use; nothing was changed"
                        )
    except sa_exc.SQLAlchemyError as error:
        raise DamagedDatabaseError(f"cannot read the table shapes: {describe_db_error(error)}") from error


def _ensure_version_table(engine: Engine) -> None:
    try:
        with immediate(engine).begin() as conn:
            _version_metadata.create_all(conn, checkfirst=True)
    except sa_exc.SQLAlchemyError as error:
        # Another process may have created it between our check and our CREATE.
        with engine.connect() as conn:
            if inspect(conn).has_table(schema_version.name):
                return
        raise StorageError(f"cannot create the schema_version table: {describe_db_error(error)}") from error


def _apply(engine: Engine, schema: Schema, migration: Migration) -> bool:
    """Apply one migration unless another process already did; True if this call applied it."""
    label = f"migration {schema.name} v{migration.version} ({migration.description})"
    try:
        with immediate(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialise concurrent migrators; released at commit/rollback.
                conn.exec_driver_sql("LOCK TABLE schema_version IN SHARE ROW EXCLUSIVE MODE")
            done = conn.execute(
                select(func.max(schema_version.c.version)).where(schema_version.c.schema_name == schema.name)
            ).scalar_one_or_none()
            if (done or 0) >= migration.version:
                return False
            if (done or 0) != migration.version - 1:
                raise MigrationError(
                    f"{label}: database is at version {done}, expected {migration.version - 1}"
                )
            migration.upgrade(conn)
            conn.execute(
                schema_version.insert().values(
                    schema_name=schema.name,
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
    except StorageError:
        raise
    except Exception as error:
        reason = describe_db_error(error) if isinstance(error, sa_exc.SQLAlchemyError) else repr(error)
        raise MigrationError(f"{label} failed and was rolled back: {reason}") from error
    return True


def add_column(conn: Connection, table_name: str, column: Column[object]) -> None:
    """``ALTER TABLE <table_name> ADD COLUMN <column>`` compiled for the connection's dialect.

    For use inside a migration. The column must be nullable or have a server default, since existing
    rows need a value.
    """
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    quoted = conn.dialect.identifier_preparer.quote(table_name)
    conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD COLUMN {spec}")


def schema_drift(engine: Engine, metadata: MetaData) -> list[str]:
    """Differences between ``metadata``'s live tables and the migrated database (empty = in step).

    Compares table presence and column names; for tests that guard against a live table being edited
    without a matching migration.
    """
    problems: list[str] = []
    with engine.connect() as conn:
        insp = inspect(conn)
        for table in metadata.sorted_tables:
            if not insp.has_table(table.name):
                problems.append(f"table {table.name} is missing from the database")
                continue
            in_db = {c["name"] for c in insp.get_columns(table.name)}
            in_code = {c.name for c in table.columns}
            problems.extend(f"{table.name}.{c} is not in the database" for c in sorted(in_code - in_db))
            problems.extend(f"{table.name}.{c} is in the database only" for c in sorted(in_db - in_code))
    return problems
