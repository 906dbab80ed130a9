"""Symbol normalisation: the one place that decides how a symbol is spelled inside Heron."""

from __future__ import annotations

import re
from typing import Final

_STOCK: Final = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
_CRYPTO: Final = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{3,5}$")
_CRYPTO_QUOTES: Final = ("USDT", "USDC", "USD", "BTC", "ETH")
_CRYPTO_BASE: Final = re.compile(r"^[A-Z0-9]{2,10}$")
#: The currencies Alpaca quotes its crypto pairs in ("trading pairs are based on BTC, USD, USDT and
#: USDC", Alpaca's Crypto Trading docs); longest first, so ``BTCUSDT`` is never read as ``BTCUSD`` + T.
PAIR_QUOTES: Final = ("USDT", "USDC", "USD", "BTC")


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


def crypto_pair(text: str) -> str:
    """The ``BASE/QUOTE`` spelling of a symbol already known to be a crypto pair, given either way.

    Alpaca lists crypto *positions* under the legacy slash-free symbol (``BTCUSD``) while orders,
    fills, assets and market data say ``BTC/USD`` (alpaca-py #179, #537). The caller knows the symbol
    is crypto (a position's ``asset_class``), so no list of bases is needed: the pair is split at the
    quote currency that ends it. Raises :class:`InvalidSymbolError` when no known quote ends it.
    """
    if not isinstance(text, str):
        raise InvalidSymbolError(f"symbol must be text, got {type(text).__name__}")
    sym = text.strip().upper()
    if "/" in sym:
        if _CRYPTO.match(sym):
            return sym
        raise InvalidSymbolError(f"not a crypto pair: {text!r}")
    for quote in PAIR_QUOTES:
        base = sym[: -len(quote)]
        if sym.endswith(quote) and _CRYPTO_BASE.match(base):
            return f"{base}/{quote}"
    raise InvalidSymbolError(
        f"not a crypto pair: {text!r} (no quote currency {', '.join(PAIR_QUOTES)} ends it)"
    )


def position_path_symbol(symbol: str) -> str:
    """How ``/v2/positions/{symbol}`` must name a position: crypto pairs without their slash.

    ``GET /v2/positions/BTC/USD`` answers 404 and ``/v2/positions/BTCUSD`` finds the position
    (alpaca-py #537); the slash would also split the URL path. Other symbols pass unchanged.
    """
    return symbol.replace("/", "")


def is_crypto(symbol: str) -> bool:
    """True for ``BASE/QUOTE`` crypto pairs (after normalisation)."""
    return "/" in symbol


_KNOWN_CRYPTO_BASES: Final = frozenset(
    {"BTC", "ETH", "LTC", "BCH", "SOL", "DOGE", "AVAX", "LINK", "UNI", "AAVE", "DOT", "XRP"}
)
