"""Spelling crypto pairs both ways: ``BTCUSD`` (Alpaca's positions) and ``BTC/USD`` (everything else).

Sources: alpaca-py #179 and #537, alpaca-trade-api-csharp #713, Alpaca-API #215 (positions say
``BTCUSD``; ``/v2/positions/BTC/USD`` is a 404); Alpaca's "Crypto Trading" docs (pairs are quoted in
BTC, USD, USDT and USDC).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.symbols import PAIR_QUOTES, InvalidSymbolError, crypto_pair, position_path_symbol


@pytest.mark.parametrize(
    ("wire", "pair"),
    [
        ("BTCUSD", "BTC/USD"),  # alpaca-py #179, #537
        ("ETHUSD", "ETH/USD"),
        ("LTCUSD", "LTC/USD"),
        ("BCHUSD", "BCH/USD"),  # Alpaca-API #215
        # Alpaca's pairs are quoted in BTC, USD, USDT and USDC (Alpaca docs, "Crypto Trading")
        ("BTCUSDT", "BTC/USDT"),
        ("ETHUSDC", "ETH/USDC"),
        ("ETHBTC", "ETH/BTC"),
        ("USDTUSD", "USDT/USD"),
        ("USDCUSDT", "USDC/USDT"),
        ("PEPEUSD", "PEPE/USD"),
        ("SUSHIUSD", "SUSHI/USD"),  # bases no fixed list knows
        ("BTC/USD", "BTC/USD"),
        (" btcusd ", "BTC/USD"),
    ],
)
def test_crypto_pair_reads_both_spellings(wire: str, pair: str) -> None:
    assert crypto_pair(wire) == pair


@pytest.mark.parametrize("bad", ["", "USD", "BTCEUR", "BTC/", "/USD", "B/USD", "BTC-USD", "BTC/USD/X"])
def test_crypto_pair_refuses_what_is_not_a_pair(bad: str) -> None:
    with pytest.raises(InvalidSymbolError):
        crypto_pair(bad)


@pytest.mark.parametrize(
    ("symbol", "path"),
    [
        ("BTC/USD", "BTCUSD"),
        ("ETH/BTC", "ETHBTC"),
        ("BTC/USDT", "BTCUSDT"),
        ("AAPL", "AAPL"),
        ("BRK.B", "BRK.B"),
    ],
)
def test_position_path_symbol_drops_the_slash_only(symbol: str, path: str) -> None:
    assert position_path_symbol(symbol) == path


@given(
    base=st.from_regex(r"[A-Z0-9]{2,10}", fullmatch=True),
    quote=st.sampled_from(PAIR_QUOTES),
)
def test_every_pair_survives_the_trip_through_alpacas_position_spelling(base: str, quote: str) -> None:
    """``BTC/USD`` → ``BTCUSD`` (how /v2/positions names it) → ``BTC/USD`` for every base, including
    bases that end in a quote's letters (``XUSDT/USD`` is ``XUSDTUSD``, never ``XUSD/TUSD``)."""
    pair = f"{base}/{quote}"
    assert crypto_pair(position_path_symbol(pair)) == pair
