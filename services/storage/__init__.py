"""Storage: the SQLAlchemy engine and sessions, exact column types, versioned schemas, repositories.

Public surface (import from here):

- :class:`Database` (``Database.open(url, data_dir, schemas)``, ``session()``, ``begin()``, ``dispose()``)
  and :func:`create_engine_for`;
- :class:`StorageError` and its subclasses :class:`SchemaTooNewError`, :class:`MigrationError`;
- column types :class:`DecimalText` (exact Decimal) and :class:`UTCDateTime` (aware UTC only);
- :class:`Schema` / :class:`Migration`, :func:`migrate`, :func:`add_column`, :func:`schema_drift`
  (see :mod:`services.storage.schema` for how to add a table).

The candle store lives in :mod:`services.storage.candles` (``CandleStore``, ``CANDLES_SCHEMA``); it is
not re-exported here so that importing the storage core does not import pandas.
"""

from services.storage.engine import Database, create_engine_for, default_url
from services.storage.errors import MigrationError, SchemaTooNewError, StorageError, translate_errors
from services.storage.locking import immediate
from services.storage.schema import Migration, Schema, add_column, migrate, schema_drift
from services.storage.types import DecimalText, UTCDateTime, canonical_decimal

__all__ = [
    "Database",
    "DecimalText",
    "Migration",
    "MigrationError",
    "Schema",
    "SchemaTooNewError",
    "StorageError",
    "UTCDateTime",
    "add_column",
    "canonical_decimal",
    "create_engine_for",
    "default_url",
    "immediate",
    "migrate",
    "schema_drift",
    "translate_errors",
]
