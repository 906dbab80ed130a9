"""Exact decimal parsing for money and quantities.

Every number that crosses a boundary into Heron (JSON from the broker, a ticket field, a settings
file) goes through :func:`to_decimal`, so NaN, infinities, booleans and garbage are refused in one
place with one kind of error.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)


class InvalidNumberError(ValueError):
    """A value could not be read as a finite decimal number."""


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Return ``value`` as a finite :class:`Decimal`.

    Accepts Decimal, int, str and float (floats go through ``str`` so ``0.1`` stays ``0.1``).
    Raises :class:`InvalidNumberError` naming ``field`` for anything else, for NaN and infinities.
    """
    if isinstance(value, bool):
        raise InvalidNumberError(f"{field} must be a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidNumberError(f"{field} is empty")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise InvalidNumberError(f"{field} is not a number: {value!r}") from None
    else:
        raise InvalidNumberError(f"{field} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidNumberError(f"{field} must be finite, got {value!r}")
    return result


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
