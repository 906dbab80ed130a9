"""The simulated market's symbol set: a fixed default list plus any stock tickers asked for.

Extra tickers are generated deterministically from the symbol name (price level and exchange from
a hash), so the same ``--symbols`` list gives the same market on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal

from services.domain.symbols import InvalidSymbolError, is_crypto, normalize_symbol
from services.exchange.contracts import Instrument

MAX_SYMBOLS = 1000

_CENT = Decimal("0.01")

# symbol: (name, exchange, base price, shortable, easy_to_borrow)
_STOCKS: dict[str, tuple[str, str, str, bool, bool]] = {
    "AAPL": ("Apple Inc. Common Stock", "NASDAQ", "190.00", True, True),
    "MSFT": ("Microsoft Corporation Common Stock", "NASDAQ", "415.00", True, True),
    "NVDA": ("NVIDIA Corporation Common Stock", "NASDAQ", "120.00", True, True),
    "AMZN": ("Amazon.com, Inc. Common Stock", "NASDAQ", "185.00", True, True),
    "TSLA": ("Tesla, Inc. Common Stock", "NASDAQ", "240.00", True, True),
    "META": ("Meta Platforms, Inc. Class A Common Stock", "NASDAQ", "500.00", True, True),
    "GOOGL": ("Alphabet Inc. Class A Common Stock", "NASDAQ", "170.00", True, True),
    "AMD": ("Advanced Micro Devices, Inc. Common Stock", "NASDAQ", "155.00", True, True),
    "JPM": ("JPMorgan Chase & Co. Common Stock", "NYSE", "200.00", True, True),
    # Hard to borrow: shortable flag on but not easy to borrow (Alpaca rejects new shorts).
    "GME": ("GameStop Corp. Class A Common Stock", "NYSE", "24.00", True, False),
    # Not shortable at all.
    "HTBX": ("Heron Test Biotech (not shortable)", "NASDAQ", "3.50", False, False),
    "SPY": ("SPDR S&P 500 ETF Trust", "ARCA", "540.00", True, True),
    "QQQ": ("Invesco QQQ Trust, Series 1", "NASDAQ", "470.00", True, True),
}

# symbol: (name, base price, tick, min order size, min trade increment)
_CRYPTO: dict[str, tuple[str, str, str, str, str]] = {
    "BTC/USD": ("Bitcoin / US Dollar", "65000", "1", "0.0001", "0.000000001"),
    "ETH/USD": ("Ethereum / US Dollar", "3400", "0.1", "0.001", "0.000000001"),
}

_GENERATED_EXCHANGES = ("NASDAQ", "NYSE", "ARCA")


def _stock(symbol: str, name: str, exchange: str, price: str, shortable: bool, etb: bool) -> Instrument:
    return Instrument(
        symbol=symbol,
        asset_class="us_equity",
        exchange=exchange,
        name=name,
        base_price=Decimal(price),
        tick=_CENT,
        shortable=shortable,
        easy_to_borrow=etb,
        marginable=True,
        fractionable=exchange != "ARCA" or symbol in ("SPY", "QQQ"),
        min_order_size=Decimal("0.0001"),
        min_trade_increment=Decimal("0.0001"),
    )


def default_universe() -> dict[str, Instrument]:
    """The built-in symbols: large-cap stocks, two ETFs, two crypto pairs, one hard-to-borrow and
    one non-shortable stock (so the shorting rules can be exercised)."""
    out: dict[str, Instrument] = {}
    for sym, (name, exch, price, shortable, etb) in _STOCKS.items():
        out[sym] = _stock(sym, name, exch, price, shortable, etb)
    for sym, (name, price, tick, min_size, incr) in _CRYPTO.items():
        out[sym] = Instrument(
            symbol=sym,
            asset_class="crypto",
            exchange="CRYPTO",
            name=name,
            base_price=Decimal(price),
            tick=Decimal(tick),
            shortable=False,
            easy_to_borrow=False,
            marginable=False,
            fractionable=True,
            min_order_size=Decimal(min_size),
            min_trade_increment=Decimal(incr),
        )
    return out


def generated_instrument(symbol: str) -> Instrument:
    """A stock instrument for an arbitrary ticker; price level and exchange come from a hash."""
    digest = hashlib.sha256(symbol.encode()).digest()
    h = int.from_bytes(digest[:8], "big")
    # Log-uniform price between $5 and $600, rounded to the cent.
    frac = (h % 1_000_000) / 1_000_000
    price = Decimal(str(round(5 * (120**frac), 2))).quantize(_CENT)
    exchange = _GENERATED_EXCHANGES[(h >> 24) % len(_GENERATED_EXCHANGES)]
    return _stock(symbol, f"{symbol} (simulated)", exchange, str(price), True, True)


def build_universe(extra: Iterable[str] = ()) -> dict[str, Instrument]:
    """Default symbols plus ``extra`` tickers (normalised; unknown crypto pairs are refused).

    Raises ValueError with a clear message for an invalid symbol or more than MAX_SYMBOLS symbols.
    """
    out = default_universe()
    for raw in extra:
        for part in str(raw).split(","):
            if not part.strip():
                continue
            try:
                sym = normalize_symbol(part)
            except InvalidSymbolError as exc:
                raise ValueError(str(exc)) from None
            if sym in out:
                continue
            if is_crypto(sym):
                raise ValueError(f"unknown crypto pair {sym!r}: only {', '.join(_CRYPTO)} are simulated")
            out[sym] = generated_instrument(sym)
    if len(out) > MAX_SYMBOLS:
        raise ValueError(f"too many symbols ({len(out)}); the simulator supports at most {MAX_SYMBOLS}")
    return out


def synthetic_tickers(count: int) -> list[str]:
    """``count`` distinct made-up tickers (for benchmarks asking for hundreds of symbols)."""
    out: list[str] = []
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    i = 0
    while len(out) < count:
        a, rem = divmod(i, 26 * 26)
        b, c = divmod(rem, 26)
        out.append("Z" + letters[a % 26] + letters[b] + letters[c])
        i += 1
    return out


def lookup(universe: Mapping[str, Instrument], symbol: str) -> Instrument | None:
    """The instrument for a raw symbol spelling (``btcusd``, ``BTC/USD``), or None."""
    try:
        return universe.get(normalize_symbol(symbol))
    except InvalidSymbolError:
        return None
