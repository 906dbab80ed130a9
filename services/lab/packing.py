"""Bars packed into integer columns, for sending to Dask workers once.

A list of :class:`~services.domain.models.Bar` costs more to pickle and ship than a backtest costs to
run; the same bars as integer columns (times in microseconds, each price column as integers over
one power of ten) are a few bytes a value and decode back to exactly the same decimals. Bars of
several symbols are merged into one time-ordered series (a stable sort by time, then symbol), the
order a backtest replays them in.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from itertools import repeat

from services.domain.models import Bar

_NONE = -(2**63)  # a missing value in an int64 column (trade_count, vwap)
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume", "vwap")

Column = array | list[int | None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def utc_to_micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def micros_to_utc(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class PackedBars:
    """Bars as columns. ``scales[c]``: the column's integers are the values times ``10**scales[c]``.

    A column whose integers do not fit in 64 bits is kept as a list of Python ints (and ``None``).
    """

    symbols: tuple[str, ...]
    symbol_index: array  # 'H' per bar: index into ``symbols``
    ts: array  # 'q' per bar: microseconds since the epoch, UTC
    columns: dict[str, Column]
    scales: dict[str, int]
    trade_count: Column

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def digest(self) -> str:
        """A content hash: the identity a worker caches the decoded bars under."""
        return hashlib.sha256(encode(self)).hexdigest()[:20]


def _scale(values: Iterable[Decimal | None]) -> int:
    scale = 0
    for v in values:
        if v is not None:
            exp = v.as_tuple().exponent
            if isinstance(exp, int) and -exp > scale:
                scale = -exp
    return scale


#: Wide enough that moving a decimal point never rounds (Inexact would raise rather than round).
_EXACT = Context(prec=400, traps=[Inexact, Overflow, InvalidOperation])


def _to_int(value: Decimal, scale: int) -> int:
    return int(_EXACT.scaleb(value, scale))


def _column(values: Sequence[int | None]) -> Column:
    try:
        return array("q", values)
    except (TypeError, OverflowError):  # a None, or an integer wider than 64 bits
        return list(values)


def pack_bars(bars: Iterable[Bar]) -> PackedBars:
    """Pack ``bars`` (any symbols, any order) into columns, time-ordered. Needs finite decimals."""
    ordered = sorted(bars, key=lambda b: (b.ts, b.symbol))
    symbols = tuple(sorted({b.symbol for b in ordered}))
    index = {s: i for i, s in enumerate(symbols)}
    columns: dict[str, Column] = {}
    scales: dict[str, int] = {}
    for name in _PRICE_COLUMNS:
        values: list[Decimal | None] = [getattr(b, name) for b in ordered]
        # each distinct value once (prices repeat): any one representation of a value is exact at
        # the scale found, and a scale too small would raise (Inexact), never round
        distinct = set(values)
        scale = _scale(distinct)
        as_int = {v: None if v is None else _to_int(v, scale) for v in distinct}
        ints = [as_int[v] for v in values]
        if name == "vwap" and all(v is None or v != _NONE for v in ints):
            ints = [_NONE if v is None else v for v in ints]
        columns[name] = _column(ints)
        scales[name] = scale
    counts = [_NONE if b.trade_count is None else b.trade_count for b in ordered]
    return PackedBars(
        symbols=symbols,
        symbol_index=array("H", (index[b.symbol] for b in ordered)),
        ts=array("q", [(b.ts - _EPOCH) // _MICRO for b in ordered]),
        columns=columns,
        scales=scales,
        trade_count=_column(counts),
    )


def _decode(values: Column, scale: int) -> list[Decimal | None]:
    """Each integer back to its decimal; a price repeats thousands of times in a year of bars, so
    each distinct integer is converted once (a dict lookup is a fraction of a Decimal operation)."""
    move = _EXACT.scaleb
    memo: dict[int | None, Decimal | None] = {None: None, _NONE: None}
    out: list[Decimal | None] = []
    append = out.append
    get = memo.get
    for v in values:
        d = get(v, memo)
        if d is memo:
            d = memo[v] = move(Decimal(v), -scale)  # type: ignore[arg-type]
        append(d)  # type: ignore[arg-type]
    return out


def unpack_bars(packed: PackedBars) -> list[Bar]:
    """The bars back, time-ordered, with values equal to the packed ones (built column-wise: a
    worker decodes a year of bars before its first point, so no per-bar Python loop)."""
    open_, high, low, close, volume, vwap = (
        _decode(packed.columns[name], packed.scales[name]) for name in _PRICE_COLUMNS
    )
    symbols = map(packed.symbols.__getitem__, packed.symbol_index)
    times = map(_EPOCH.__add__, map(timedelta, repeat(0), repeat(0), packed.ts))
    counts = [None if c is None or c == _NONE else c for c in packed.trade_count]
    return list(map(Bar, symbols, times, open_, high, low, close, volume, counts, vwap))


_ORDER = (*_PRICE_COLUMNS, "trade_count")


def _little(values: array) -> bytes:
    if sys.byteorder == "big":  # the wire is little-endian whatever the machine
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def encode(packed: PackedBars) -> bytes:
    """The packed bars as bytes: a JSON header (symbols, scales, the columns too wide for 64 bits)
    then the integer columns, little-endian. Plain data only: a worker decodes it with
    :func:`decode`, never by unpickling (which would run whatever the bytes say)."""
    columns = {**packed.columns, "trade_count": packed.trade_count}
    wide = {name: col for name, col in columns.items() if not isinstance(col, array)}
    header = {
        "format": 1,
        "n": len(packed),
        "symbols": list(packed.symbols),
        "scales": packed.scales,
        "wide": wide,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [len(head).to_bytes(4, "big"), head, _little(packed.symbol_index), _little(packed.ts)]
    parts += [_little(columns[name]) for name in _ORDER if name not in wide]  # type: ignore[arg-type]
    return b"".join(parts)


def decode(data: bytes) -> PackedBars:
    """:func:`encode`'s bytes back; ValueError for bytes that are not such a blob."""
    try:
        size = int.from_bytes(data[:4], "big")
        header = json.loads(data[4 : 4 + size])
        if not isinstance(header, dict) or header.get("format") != 1:
            raise ValueError("not a packed-bars blob of format 1")
        n, pos = int(header["n"]), 4 + size

        def take(code: str) -> array:
            nonlocal pos
            out = array(code)
            end = pos + out.itemsize * n
            if end > len(data):
                raise ValueError("packed bars cut short")
            out.frombytes(data[pos:end])
            if sys.byteorder == "big":
                out.byteswap()
            pos = end
            return out

        index, ts = take("H"), take("q")
        wide = header["wide"]
        columns: dict[str, Column] = {
            name: list(wide[name]) if name in wide else take("q") for name in _ORDER
        }
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"damaged packed bars: {exc}") from None
    if pos != len(data) or any(len(c) != n for c in columns.values()):
        raise ValueError("damaged packed bars: the columns do not add up")
    trade_count = columns.pop("trade_count")
    return PackedBars(
        symbols=tuple(header["symbols"]),
        symbol_index=index,
        ts=ts,
        columns=columns,
        scales={k: int(v) for k, v in header["scales"].items()},
        trade_count=trade_count,
    )


def compress(packed: PackedBars) -> bytes:
    return zlib.compress(encode(packed), 1)


def decompress(blob: bytes) -> PackedBars:
    return decode(zlib.decompress(blob))
