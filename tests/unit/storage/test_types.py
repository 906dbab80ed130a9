"""DecimalText keeps Decimals exact; UTCDateTime refuses naive datetimes and returns aware UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, delete, func, insert, select
from sqlalchemy import exc as sa_exc

from services.storage import DecimalText, UTCDateTime, canonical_decimal, create_engine_for

meta = MetaData()
values = Table(
    "values_",
    meta,
    Column("id", Integer, primary_key=True),
    Column("amount", DecimalText()),
    Column("at", UTCDateTime()),
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = create_engine_for(None, Path(tmp_path_factory.mktemp("types")))
    meta.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        yield connection
        connection.rollback()


def _round_trip(conn: Connection, **row: object) -> tuple[object, ...]:
    conn.execute(delete(values))
    conn.execute(insert(values).values(id=1, **row))
    return tuple(conn.execute(select(values.c.amount, values.c.at)).one())


EXACT = [
    "0.1",
    "1e-9",
    "123456789.123456789",
    "-0.00000001",
    "0",
    "-0",
    "0E-12",
    "1.10",
    "99999999999999999999999999999999.999999999999999999",
    "1E+60",
    "-7.5E-60",
]


@pytest.mark.parametrize("text", EXACT)
def test_decimals_round_trip_exactly(conn: Connection, text: str) -> None:
    amount, _ = _round_trip(conn, amount=Decimal(text))
    assert isinstance(amount, Decimal)
    assert amount == Decimal(text)


def test_canonical_text_is_plain_notation_without_trailing_zeros() -> None:
    assert canonical_decimal(Decimal("0.1")) == "0.1"
    assert canonical_decimal(Decimal("1e-9")) == "0.000000001"
    assert canonical_decimal(Decimal("-0.00000001")) == "-0.00000001"
    assert canonical_decimal(Decimal("1.10")) == "1.1"
    assert canonical_decimal(Decimal("1E+3")) == "1000"
    assert canonical_decimal(Decimal("-0")) == "0"
    assert canonical_decimal(Decimal("0E-8")) == "0"
    assert canonical_decimal(12345678901234567890) == "12345678901234567890"


def test_stored_text_is_canonical_so_sql_equality_is_value_equality(conn: Connection) -> None:
    _round_trip(conn, amount=Decimal("2.50"))
    assert conn.exec_driver_sql("SELECT amount FROM values_").scalar() == "2.5"
    found = conn.execute(select(values.c.id).where(values.c.amount == Decimal("2.500000"))).scalar()
    assert found == 1


@given(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**40), max_value=10**40, places=30)
    | st.builds(
        lambda sign, coefficient, exponent: Decimal(
            (sign, tuple(int(d) for d in str(coefficient)), exponent)
        ),
        st.integers(0, 1),
        st.integers(0, 10**40),
        st.integers(-60, 40),
    )
)
def test_any_decimal_round_trips_exactly(engine: Engine, value: Decimal) -> None:
    with engine.connect() as connection:
        amount, _ = _round_trip(connection, amount=value)
        connection.rollback()
    assert amount == value
    assert Decimal(canonical_decimal(value)) == value


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (0.1, TypeError, "floats are inexact"),
        ("0.1", TypeError, "not str"),
        (True, TypeError, "not bool"),
        (Decimal("NaN"), ValueError, "cannot store"),
        (Decimal("Infinity"), ValueError, "cannot store"),
        (Decimal("1E+101"), ValueError, "out of the storable range"),
        (Decimal("1E-101"), ValueError, "out of the storable range"),
    ],
)
def test_inexact_or_unbounded_values_are_refused(
    conn: Connection, bad: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        canonical_decimal(bad)  # type: ignore[arg-type]
    with pytest.raises(sa_exc.StatementError, match=message):
        _round_trip(conn, amount=bad)


def test_null_stays_null(conn: Connection) -> None:
    assert _round_trip(conn, amount=None, at=None) == (None, None)


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(conn: Connection) -> None:
    new_york = datetime(2024, 3, 8, 9, 30, 0, 123456, tzinfo=ZoneInfo("America/New_York"))
    _, at = _round_trip(conn, at=new_york)
    assert isinstance(at, datetime)
    assert at == new_york
    assert at.tzinfo is UTC
    assert at == datetime(2024, 3, 8, 14, 30, 0, 123456, tzinfo=UTC)
    for instant in (
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 18, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    ):
        back = _round_trip(conn, at=instant)[1]
        assert back == instant
        assert isinstance(back, datetime) and back.tzinfo is UTC


def test_naive_datetimes_are_refused(conn: Connection) -> None:
    with pytest.raises(sa_exc.StatementError, match="must be timezone-aware"):
        _round_trip(conn, at=datetime(2024, 1, 1, 12, 0))
    with pytest.raises(sa_exc.StatementError, match="must be a datetime"):
        _round_trip(conn, at="2024-01-01T12:00:00Z")


def test_datetimes_compare_and_order_in_sql(conn: Connection) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    conn.execute(delete(values))
    conn.execute(
        insert(values),
        [{"id": i, "at": base + timedelta(microseconds=d)} for i, d in enumerate([5, -1, 3600 * 10**6, 0])],
    )
    assert conn.execute(select(func.min(values.c.at))).scalar() == base - timedelta(microseconds=1)
    later = conn.execute(select(values.c.id).where(values.c.at > base).order_by(values.c.at)).scalars().all()
    assert later == [0, 2]


def test_postgresql_gets_numeric_and_timestamptz_without_text_or_float_round_trips() -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    pg = postgresql.dialect()
    ddl = str(CreateTable(values).compile(dialect=pg))
    assert "amount NUMERIC" in ddl
    assert "at TIMESTAMP WITH TIME ZONE" in ddl
    amount = DecimalText()
    bound = amount.process_bind_param(Decimal("0.10"), pg)
    assert isinstance(bound, Decimal) and bound == Decimal("0.1")
    with pytest.raises(TypeError, match="floats are inexact"):
        amount.process_bind_param(0.1, pg)
    at = UTCDateTime()
    eastern = datetime(2024, 1, 2, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    assert at.process_bind_param(eastern, pg) == eastern
    assert at.process_bind_param(eastern, pg).tzinfo is UTC
    back = at.process_result_value(eastern, pg)
    assert back == eastern and back is not None and back.tzinfo is UTC
    # A backend without time zones hands back naive values; Heron wrote them as UTC.
    assert at.process_result_value(datetime(2024, 1, 2, 14, 30), pg) == datetime(
        2024, 1, 2, 14, 30, tzinfo=UTC
    )
