"""Packed bars decode to exactly the bars that were packed (every decimal, time and None)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.domain.models import Bar
from services.lab.packing import pack_bars, unpack_bars
from services.strategies.synthetic import synthetic_bars

T0 = datetime(2024, 1, 2, 14, 30, 0, 123456, tzinfo=UTC)


def test_round_trip_is_exact_for_many_symbols_and_awkward_values() -> None:
    bars = [
        Bar("MSFT", T0, Decimal("410.1234"), Decimal("411"), Decimal("409.9"), Decimal("410.5"),
            Decimal("12.5")),
        Bar("AAPL", T0, Decimal("0.0001"), Decimal("1E+3"), Decimal("-2.5"), Decimal("3"), Decimal("0"),
            trade_count=7, vwap=Decimal("1.23456789")),
        Bar("AAPL", T0 + timedelta(minutes=1), Decimal("123456789012.123456789"), Decimal("2"),
            Decimal("1"), Decimal("1.5"), Decimal("99999999999999999999")),
    ]  # fmt: skip
    back = unpack_bars(pack_bars(bars))
    ordered = sorted(bars, key=lambda b: (b.ts, b.symbol))
    assert back == ordered  # Bar equality compares every decimal by value, and ts, symbol, None


def test_a_synthetic_year_packs_small_and_exact() -> None:
    bars = synthetic_bars("AAPL", 20_000) + synthetic_bars("MSFT", 20_000, seed=2)
    packed = pack_bars(bars)
    assert unpack_bars(packed) == sorted(bars, key=lambda b: (b.ts, b.symbol))
    as_list = len(pickle.dumps(bars, protocol=5))
    as_columns = len(pickle.dumps(packed, protocol=5))
    assert as_columns < as_list and as_columns <= 8 * 9 * len(bars)  # eight bytes a value at most
    assert packed.digest == pack_bars(list(reversed(bars))).digest


def test_the_bytes_sent_to_workers_decode_to_the_same_bars_without_unpickling() -> None:
    """Workers get plain data (a JSON header and little-endian integer columns), never a pickle to
    load: unpickling runs whatever the bytes say (tests/security/test_no_pickle.py)."""
    from services.lab.packing import compress, decode, decompress, encode

    big = Bar("BIG", T0, Decimal("123456789012.123456789"), Decimal("2"), Decimal("1"), Decimal("1.5"),
              Decimal("99999999999999999999"), trade_count=3, vwap=None)  # fmt: skip
    bars = [*synthetic_bars("AAPL", 500), big]
    packed = pack_bars(bars)
    assert any(isinstance(c, list) for c in packed.columns.values())  # a column wider than 64 bits
    back = decompress(compress(packed))
    assert unpack_bars(back) == unpack_bars(packed)
    assert back.digest == packed.digest
    raw = encode(packed)
    for damaged in (raw[:-3], raw + b"\0", b"\0\0\0\2{}", b"not bars"):
        with pytest.raises(ValueError):
            decode(damaged)
