"""Mistyped input, told apart from bugs: a typo is said in one line, never with a traceback.

A quantity, price or symbol the trader typed that cannot be read raises
:class:`~services.domain.money.InvalidNumberError` or
:class:`~services.domain.symbols.InvalidSymbolError` (both name the field and the text), or
:class:`decimal.InvalidOperation` where text reached ``Decimal`` directly. The panels' last-resort
handlers (``widgets.tasks.run_async``, the application's exception hook) use :func:`input_error` to
log these as one line; anything else keeps its traceback, since it is a bug to be found.
"""

from __future__ import annotations

from decimal import InvalidOperation

from services.domain.money import InvalidNumberError
from services.domain.symbols import InvalidSymbolError

INPUT_ERRORS: tuple[type[BaseException], ...] = (InvalidNumberError, InvalidSymbolError, InvalidOperation)


def input_error(exc: BaseException | None) -> str | None:
    """One line for a mistyped input, or None when ``exc`` is not one (then it is a bug)."""
    if isinstance(exc, InvalidOperation):
        return "a value typed is not a number"
    if isinstance(exc, INPUT_ERRORS):
        return str(exc) or type(exc).__name__
    return None
