"""Test doubles for the broker adapter: a scripted HTTP transport, a fake clock, JSON samples."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"
ASSET_ID = "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415"


def order_json(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ORDER_ID,
        "client_order_id": "heron-1",
        "created_at": "2024-03-01T14:30:00.123456789Z",
        "updated_at": "2024-03-01T14:30:00.2Z",
        "submitted_at": "2024-03-01T14:30:00.1Z",
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": ASSET_ID,
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "notional": None,
        "qty": "10",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": "limit",
        "type": "limit",
        "side": "buy",
        "time_in_force": "day",
        "limit_price": "187.25",
        "stop_price": None,
        "status": "new",
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }
    body.update(over)
    return body


ACCOUNT_JSON: dict[str, Any] = {
    "id": "2d6a5a45-9a1b-4c43-9b5e-8f0f3e6b1c11",
    "account_number": "PA1234567",
    "status": "ACTIVE",
    "currency": "USD",
    "cash": "100000.12",
    "equity": "100250.5",
    "last_equity": "100000",
    "buying_power": "400000",
    "long_market_value": "250.38",
    "short_market_value": "0",
    "portfolio_value": "100250.5",
    "pattern_day_trader": False,
    "daytrade_count": 1,
    "multiplier": "4",
    "shorting_enabled": True,
}

POSITION_JSON: dict[str, Any] = {
    "asset_id": ASSET_ID,
    "symbol": "TSLA",
    "exchange": "NASDAQ",
    "asset_class": "us_equity",
    "avg_entry_price": "201.1",
    "qty": "-5",
    "side": "short",
    "market_value": "-1000.5",
    "cost_basis": "-1005.5",
    "current_price": "200.1",
    "lastday_price": "199",
}


def response(
    status: int, body: Any = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.reason = "scripted"
    r.url = "http://127.0.0.1:1/scripted"
    content = text if text is not None else ("" if body is None else json.dumps(body))
    r._content = content.encode()
    r.headers.update(headers or {})
    return r


@dataclass
class ScriptedTransport:
    """Plays back answers in order; an answer may be an exception to raise. Records every call."""

    answers: list[Any]
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    route: Callable[[str, str], Any] | None = None

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        answer = self.route(method, url) if self.route else None
        if answer is None:
            if not self.answers:
                raise AssertionError(f"unexpected request {method} {url}")
            answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, requests.Response)
        return answer


def new_uuid() -> str:
    return str(uuid.uuid4())


# --- crypto positions: real Alpaca shapes ---------------------------------------------------------
# Alpaca lists a crypto position under the pair's legacy, slash-free symbol (``BTCUSD``) while orders,
# fills, assets and market data say ``BTC/USD``, and ``GET /v2/positions/BTC/USD`` answers 404:
# alpaca-py #179 and #537, alpaca-trade-api-csharp #713, Alpaca-API #215. The position also carries its
# own asset id, not the pair asset's 276e2673-… (alpaca-py #490: "I get BTCUSD with UUID of
# 64bbff5159d64b3c935113ad85e3c752").
CRYPTO_POSITION_ASSET_ID = "64bbff51-59d6-4b3c-9351-13ad85e3c752"  # alpaca-py #490
CRYPTO_PAIR_ASSET_ID = "276e2673-764b-4ab6-a611-caf665ca6340"  # Alpaca docs, crypto asset example

#: The fields and their order are Alpaca's "Sample Position Object" (docs.alpaca.markets/reference/positions);
#: symbol, asset id and asset class are what a crypto position carries (sources above); the exchange is
#: alpaca-py's ``AssetExchange.CRYPTO`` (alpaca-py commit ebcc3bb "Update enums to include Crypto
#: Exchange"). The quantity is the 0.0283 BTC that the close-all body below sells.
CRYPTO_POSITION_JSON: dict[str, Any] = {
    "asset_id": CRYPTO_POSITION_ASSET_ID,
    "symbol": "BTCUSD",
    "exchange": "CRYPTO",
    "asset_class": "crypto",
    "asset_marginable": False,
    "avg_entry_price": "23800",
    "qty": "0.0283",
    "qty_available": "0.0283",
    "side": "long",
    "market_value": "680.615",
    "cost_basis": "673.54",
    "unrealized_pl": "7.075",
    "unrealized_plpc": "0.0105042",
    "unrealized_intraday_pl": "4.245",
    "unrealized_intraday_plpc": "0.0062762",
    "current_price": "24050",
    "lastday_price": "23900",
    "change_today": "0.0062762",
}

#: Alpaca-API #215
POSITION_NOT_FOUND: dict[str, Any] = {"code": 40410000, "message": "position does not exist"}

#: The order Alpaca creates to close 0.0283 BTC: the first entry of the 207 body below, verbatim.
CRYPTO_CLOSE_ORDER_JSON: dict[str, Any] = {
    "id": "e6419d12-56e4-4d67-a61b-f6e464e1f8a8",
    "client_order_id": "c6814ede-8c93-4480-9a27-7a00853d9881",
    "created_at": "2022-07-27T08:12:33.66897767Z",
    "updated_at": "2022-07-27T08:12:33.66902729Z",
    "submitted_at": "2022-07-27T08:12:33.667750101Z",
    "filled_at": None,
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": CRYPTO_PAIR_ASSET_ID,
    "symbol": "BTC/USD",
    "asset_class": "crypto",
    "notional": None,
    "qty": "0.0283",
    "filled_qty": "0",
    "filled_avg_price": None,
    "order_class": "",
    "order_type": "market",
    "type": "market",
    "side": "sell",
    "time_in_force": "gtc",
    "limit_price": None,
    "stop_price": None,
    "status": "pending_new",
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
    "position_intent": "sell_to_close",
    "subtag": None,
    "source": None,
}

#: DELETE /v2/positions answers 207 with one entry per position: ``BTCUSD`` outside, an order for
#: ``BTC/USD`` inside. Verbatim from alpaca-py tests/trading/trading_client/test_position_routes.py
#: (test_close_all_positions).
CLOSE_ALL_207_JSON: list[dict[str, Any]] = [
    {"symbol": "BTCUSD", "status": 200, "body": CRYPTO_CLOSE_ORDER_JSON},
    {
        "symbol": "SQQQ",
        "status": 403,
        "body": {
            "available": "0",
            "code": 40310000,
            "existing_qty": "1000",
            "held_for_orders": "1000",
            "message": "insufficient qty available for order (requested: 1000, available: 0)",
            "symbol": "SQQQ",
        },
    },
    {
        "symbol": "NYC",
        "status": 403,
        "body": {"code": 40310000, "message": "account is not allowed to short"},
    },
]
