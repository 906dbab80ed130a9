"""Column types that keep money exact and time in UTC, on every dialect.

:class:`DecimalText`
    Stores a :class:`~decimal.Decimal` without ever passing through a float. On PostgreSQL the column
    is an unconstrained ``NUMERIC`` (exact, and the driver hands back ``Decimal``); everywhere else it
    is text holding the canonical plain-notation string (``"0.1"``, ``"-0.00000001"``, ``"1000"``:
    no exponent, no trailing fractional zeros, zero is ``"0"``). Because the text is canonical, SQL
    equality on such a column is value equality; ordering (``<``, ``ORDER BY``, ``MIN``) is *lexical*
    in SQLite, so do not sort or range-filter on a DecimalText column in SQL. Accepted values are
    ``Decimal`` and ``int``; floats are refused (they are already inexact), as are NaN/infinities and
    magnitudes beyond 1e±100 (they would make absurd strings and are never money).
    What comes back compares equal to what went in; on PostgreSQL the scale may differ
    (``1.10`` may read back as ``1.10`` or ``1.1`` depending on the dialect), the value never does.

:class:`UTCDateTime`
    Refuses naive datetimes and always returns timezone-aware UTC. On SQLite the column is an integer
    count of microseconds since 1970-01-01T00:00:00Z (exact, compact, and it sorts and compares
    correctly in SQL); elsewhere it is ``TIMESTAMP WITH TIME ZONE``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_ADJUSTED_EXPONENT: Final = 100


def canonical_decimal(value: Decimal | int) -> str:
    """The canonical text form stored by :class:`DecimalText` (see the module docstring).

    Raises ``TypeError`` for floats and other non-decimal types, ``ValueError`` for NaN, infinities
    and magnitudes beyond 1e±100.
    """
    # Hot path of every bulk write: the checks of _checked_decimal, inlined for plain Decimals.
    if value.__class__ is not Decimal:
        value = _checked_decimal(value)
    elif not value.is_finite():
        raise ValueError(f"exact decimal column cannot store {value!r}")
    if not value:
        return "0"
    if not -_MAX_ADJUSTED_EXPONENT <= value.adjusted() <= _MAX_ADJUSTED_EXPONENT:
        raise ValueError(f"decimal {value!r} is out of the storable range (magnitude 1e±100)")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _checked_decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int) and not isinstance(value, bool):
        dec = Decimal(value)
    else:
        hint = " (floats are inexact: convert with services.domain.money.to_decimal)"
        raise TypeError(
            f"exact decimal column takes Decimal or int, not {type(value).__name__}"
            + (hint if isinstance(value, float) else "")
        )
    if not dec.is_finite():
        raise ValueError(f"exact decimal column cannot store {value!r}")
    if dec and abs(dec.adjusted()) > _MAX_ADJUSTED_EXPONENT:
        raise ValueError(f"decimal {value!r} is out of the storable range (magnitude 1e±100)")
    return dec


class DecimalText(TypeDecorator[Decimal]):
    """Exact Decimal column: NUMERIC on PostgreSQL, canonical decimal text elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return _checked_decimal(value)
        return canonical_decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str):
            return Decimal(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        # A float here means someone wrote the column bypassing this type; refuse rather than guess.
        raise TypeError(f"exact decimal column holds a {type(value).__name__} ({value!r}), not exact text")


def to_utc(value: object, name: str = "timestamp") -> datetime:
    """``value`` converted to UTC; ``TypeError``/``ValueError`` for non-datetimes and naive ones."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def utc_to_micros(value: datetime) -> int:
    """Exact microseconds since the Unix epoch for an aware datetime."""
    return (to_utc(value) - EPOCH) // _ONE_MICROSECOND


def micros_to_utc(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime column; naive datetimes are refused on the way in."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return utc_to_micros(value)
        return to_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return micros_to_utc(value)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            # Heron only ever writes UTC, so a naive value from a tz-less backend is UTC.
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        raise TypeError(f"UTC datetime column holds a {type(value).__name__} ({value!r})")
