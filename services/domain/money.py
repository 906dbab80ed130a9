"""Exact decimal parsing for money and quantities.

Every number that crosses a boundary into Heron (JSON from the broker, a ticket field, an order
script, a strategy parameter, a settings file) goes through :func:`to_decimal`, so NaN, infinities,
booleans, garbage and absurd magnitudes are refused in one place with one kind of error.

Bounds: a value must be below 10**16 in magnitude (:data:`MAX_ADJUSTED_EXPONENT`) and have at most
40 digits after the point (:data:`MIN_EXPONENT`); text longer than :data:`MAX_TEXT_LEN` is refused
before it is parsed. No price, quantity or balance comes near these, and every accepted value has at
most 56 digits, so formatting, quantizing and storing it stay cheap. Without them ``1e-999999999``
is a valid Decimal whose plain-notation text is a gigabyte.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)

MAX_ADJUSTED_EXPONENT: Final = 15  # |value| < 1e16
MIN_EXPONENT: Final = -40  # at most 40 digits after the point
MAX_TEXT_LEN: Final = 100
MAX_INT: Final = 10**16 - 1
_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")


class InvalidNumberError(ValueError):
    """A value could not be read as a finite decimal number."""


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Return ``value`` as a finite :class:`Decimal`.

    Accepts Decimal, int, str and float (floats go through ``str`` so ``0.1`` stays ``0.1``).
    Raises :class:`InvalidNumberError` naming ``field`` for anything else, for NaN and infinities,
    and for values outside the bounds in the module docstring (checked before any costly work).
    """
    if isinstance(value, bool):
        raise InvalidNumberError(f"{field} must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise InvalidNumberError(f"{field} is out of range: magnitude must be below 1e16")
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidNumberError(f"{field} is empty")
        if len(text) > MAX_TEXT_LEN:
            raise InvalidNumberError(f"{field} is not a number: {len(text)} characters is too long")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise InvalidNumberError(f"{field} is not a number: {value!r}") from None
    else:
        raise InvalidNumberError(f"{field} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidNumberError(f"{field} must be finite, got {value!r}")
    check_bounds(result, field=field)
    return result


def check_bounds(value: Decimal, *, field: str = "value") -> None:
    """Raise :class:`InvalidNumberError` when a finite ``value`` is beyond Heron's sane bounds."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if value and value.adjusted() > MAX_ADJUSTED_EXPONENT:
        raise InvalidNumberError(
            f"{field} is out of range: magnitude must be below 1e16, got about 1e{value.adjusted()}"
        )
    if exponent < MIN_EXPONENT:
        raise InvalidNumberError(
            f"{field} has too many decimal places: at most {-MIN_EXPONENT} are accepted, "
            f"got an exponent of {exponent}"
        )
    if exponent > MAX_ADJUSTED_EXPONENT:  # 0E+999999999
        raise InvalidNumberError(f"{field} is out of range: exponent {exponent}")


def optional_decimal(value: object, *, field: str = "value") -> Decimal | None:
    """Like :func:`to_decimal` but maps ``None`` and ``""`` to ``None``."""
    if value is None or value == "":
        return None
    return to_decimal(value, field=field)


def decimal_str(value: Decimal | None) -> str | None:
    """Format a Decimal the way Alpaca's JSON does: plain notation, no exponent."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def to_int(value: object, *, field: str = "value") -> int:
    """Return ``value`` as a whole number within the same bounds as :func:`to_decimal`.

    Accepts int and integral text (``"12"``); refuses booleans, fractions and absurd magnitudes with
    an :class:`InvalidNumberError` naming ``field``.
    """
    if isinstance(value, bool):
        raise InvalidNumberError(f"{field} must be a whole number, not a boolean")
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise InvalidNumberError(f"{field} is out of range: magnitude must be below 1e16")
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT_LEN or _INT_TEXT.fullmatch(text) is None:
            raise InvalidNumberError(f"{field} must be a whole number, got {value!r}")
        return to_int(int(text), field=field)
    raise InvalidNumberError(f"{field} must be a whole number, got {type(value).__name__}")


def to_float(value: object, *, field: str = "value") -> float:
    """A float read through :func:`to_decimal` (same refusals and bounds)."""
    return float(to_decimal(value, field=field))
