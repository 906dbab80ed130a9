"""Symbol normalisation: the one place that decides how a symbol is spelled inside Heron."""

from __future__ import annotations

import re
from typing import Final

_STOCK: Final = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
_CRYPTO: Final = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{3,5}$")
_CRYPTO_QUOTES: Final = ("USDT", "USDC", "USD", "BTC", "ETH")


class InvalidSymbolError(ValueError):
    """The text cannot be a stock or crypto symbol."""


def normalize_symbol(text: str) -> str:
    """Return the canonical spelling: upper case, crypto as ``BASE/QUOTE`` (``btcusd`` → ``BTC/USD``)."""
    if not isinstance(text, str):
        raise InvalidSymbolError(f"symbol must be text, got {type(text).__name__}")
    sym = text.strip().upper()
    if not sym:
        raise InvalidSymbolError("symbol is empty")
    if "/" not in sym:
        for quote in _CRYPTO_QUOTES:
            base = sym[: -len(quote)]
            if sym.endswith(quote) and len(base) >= 3 and base in _KNOWN_CRYPTO_BASES:
                sym = f"{base}/{quote}"
                break
    if _CRYPTO.match(sym) or _STOCK.match(sym):
        return sym
    raise InvalidSymbolError(f"not a valid symbol: {text!r}")


def is_crypto(symbol: str) -> bool:
    """True for ``BASE/QUOTE`` crypto pairs (after normalisation)."""
    return "/" in symbol


_KNOWN_CRYPTO_BASES: Final = frozenset(
    {"BTC", "ETH", "LTC", "BCH", "SOL", "DOGE", "AVAX", "LINK", "UNI", "AAVE", "DOT", "XRP"}
)
