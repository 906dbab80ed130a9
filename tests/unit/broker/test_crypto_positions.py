"""Crypto positions on the wire: Alpaca says ``BTCUSD`` where everything else in Heron says ``BTC/USD``.

Alpaca lists crypto positions under the legacy, slash-free symbol, and ``/v2/positions/{symbol}``
only knows that spelling (``GET /v2/positions/BTC/USD`` is a 404): alpaca-py #179 and #537,
alpaca-trade-api-csharp #713, Alpaca-API #215. Orders, fills, assets and market data use ``BTC/USD``.
The adapter normalises at the boundary, so the Broker contract speaks only ``BTC/USD``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.budget import RequestBudget
from services.domain.enums import OrderSide, OrderStatus, TimeInForce
from tests.support.clock import FakeClock
from tests.unit.broker.fakes import (
    CLOSE_ALL_207_JSON,
    CRYPTO_CLOSE_ORDER_JSON,
    CRYPTO_POSITION_JSON,
    POSITION_JSON,
    POSITION_NOT_FOUND,
    ScriptedTransport,
    response,
)

T = TypeVar("T")
PAPER = "https://paper-api.alpaca.markets/v2"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def paper_broker(transport: ScriptedTransport) -> AlpacaBroker:
    clock = FakeClock()
    return AlpacaBroker(
        "PKTEST",
        "secret",
        environment="paper",
        transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=3, rng=random.Random(3), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
    )


def alpaca_positions_route(method: str, url: str) -> requests.Response | None:
    """What Alpaca answers about one 0.0283 BTC position (sources in the module docstring)."""
    if method == "GET" and url == f"{PAPER}/positions":
        return response(200, [CRYPTO_POSITION_JSON])
    if method == "GET" and url == f"{PAPER}/positions/BTCUSD":
        return response(200, CRYPTO_POSITION_JSON)
    if method == "DELETE" and url == f"{PAPER}/positions/BTCUSD":
        return response(200, CRYPTO_CLOSE_ORDER_JSON)
    if url.startswith(f"{PAPER}/positions/"):
        return response(404, POSITION_NOT_FOUND)  # /positions/BTC/USD (alpaca-py #537)
    return None


def test_a_crypto_position_is_listed_as_its_pair() -> None:
    """GET /v2/positions lists ``BTCUSD`` with ``asset_class: crypto`` (alpaca-py #179,
    alpaca-trade-api-csharp #713); Heron sees the pair its orders and fills name: ``BTC/USD``."""
    broker = paper_broker(ScriptedTransport([response(200, [CRYPTO_POSITION_JSON, POSITION_JSON])]))
    crypto, stock = run(broker.get_positions())
    assert crypto.symbol == "BTC/USD" and crypto.asset_class == "crypto"
    assert crypto.qty == Decimal("0.0283") and crypto.avg_entry_price == Decimal("23800")
    assert stock.symbol == "TSLA" and stock.qty == Decimal(-5)  # equities untouched


def test_get_position_of_a_pair_asks_for_the_slash_free_symbol() -> None:
    """``GET /v2/positions/BTC/USD`` is a 404 and ``/v2/positions/BTCUSD`` a 200 (alpaca-py #537):
    asking for ``BTC/USD`` must find the position, not report it absent."""
    transport = ScriptedTransport([], route=alpaca_positions_route)
    broker = paper_broker(transport)
    pos = run(broker.get_position("BTC/USD"))
    assert pos is not None and pos.symbol == "BTC/USD" and pos.qty == Decimal("0.0283")
    assert [(m, u) for m, u, _ in transport.calls] == [("GET", f"{PAPER}/positions/BTCUSD")]


def test_close_position_of_a_pair_deletes_the_slash_free_symbol() -> None:
    """``DELETE /v2/positions/BTC/USD`` is a 404 too (alpaca-py #537: "Change the symbol to drop /
    and it's okay"); the closing order Alpaca returns is for ``BTC/USD``."""
    transport = ScriptedTransport([], route=alpaca_positions_route)
    broker = paper_broker(transport)
    order = run(broker.close_position("BTC/USD", qty=Decimal("0.0283")))
    method, url, kw = transport.calls[0]
    assert (method, url) == ("DELETE", f"{PAPER}/positions/BTCUSD")
    assert kw["params"] == {"qty": "0.0283"}
    assert order.symbol == "BTC/USD" and order.side is OrderSide.SELL and order.qty == Decimal("0.0283")
    assert order.time_in_force is TimeInForce.GTC and order.status is OrderStatus.PENDING_NEW


def test_close_all_207_names_the_pair_not_the_legacy_symbol() -> None:
    """DELETE /v2/positions answers 207 with ``BTCUSD`` outside and an order for ``BTC/USD`` inside
    (alpaca-py tests/trading/trading_client/test_position_routes.py): the result names ``BTC/USD``
    so it meets the position and the orders it belongs to; refusals keep their message."""
    transport = ScriptedTransport([response(207, CLOSE_ALL_207_JSON)])
    broker = paper_broker(transport)
    btc, sqqq, nyc = run(broker.close_all_positions(cancel_orders=True))
    assert transport.calls[0][0] == "DELETE" and transport.calls[0][1] == f"{PAPER}/positions"
    assert btc.symbol == "BTC/USD" and btc.status == 200
    assert btc.order is not None and btc.order.symbol == "BTC/USD" and btc.order.qty == Decimal("0.0283")
    assert (sqqq.symbol, sqqq.status, sqqq.order) == ("SQQQ", 403, None)
    assert sqqq.message.startswith("insufficient qty available")
    assert (nyc.symbol, nyc.message) == ("NYC", "account is not allowed to short")


def test_close_all_refusal_for_a_listed_crypto_position_names_the_pair() -> None:
    """A refused entry carries only the outside symbol (``BTCUSD``) and an error body (the 403
    shape of the same alpaca-py 207 body); a position Heron has read as crypto is named as its pair."""
    refused = {
        "symbol": "BTCUSD",
        "status": 403,
        "body": {
            "available": "0",
            "code": 40310000,
            "existing_qty": "0.0283",
            "held_for_orders": "0.0283",
            "message": "insufficient qty available for order (requested: 0.0283, available: 0)",
            "symbol": "BTCUSD",
        },
    }
    answers = [response(200, [CRYPTO_POSITION_JSON]), response(207, [refused])]
    broker = paper_broker(ScriptedTransport(answers))
    run(broker.get_positions())
    [result] = run(broker.close_all_positions(cancel_orders=False))
    assert (result.symbol, result.status, result.order) == ("BTC/USD", 403, None)
    assert "insufficient qty" in result.message


@pytest.mark.expected_log(r"^services\.broker\.convert: crypto position 'BTCEUR' kept under the broker's")
def test_an_unreadable_crypto_position_symbol_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A crypto position whose symbol names no known quote is not dropped or guessed: it keeps its
    wire symbol (reconciliation then shows it) and a warning says why."""
    odd = {**CRYPTO_POSITION_JSON, "symbol": "BTCEUR"}
    broker = paper_broker(ScriptedTransport([response(200, [odd])]))
    with caplog.at_level("WARNING"):
        [pos] = run(broker.get_positions())
    assert pos.symbol == "BTCEUR" and pos.qty == Decimal("0.0283")
    assert "BTCEUR" in caplog.text
