"""The JSON bodies the exchange returns pass Alpaca's OpenAPI schemas where the spec is current.

Specs: alpaca-trading-openapi.yaml and alpaca-market-data-openapi.yaml (Alpaca's published OpenAPI
documents, older than today's SDK; found through tests/support/openapi.py ``spec_dir``). Each body
is checked against the schema the spec documents for that path and status (or, where the path is
not in the spec, the named component schema). The schema subset checked: types, nullable, enum,
required, properties, items, formats date-time/date (tests/support/openapi.py).

Where the spec is outdated, the deviation is listed in DEVIATIONS with the reason and the source
that shows what Alpaca sends today; a listed deviation that no longer occurs fails the test, so
the list stays honest. Not checked because the spec is not current for them: crypto data (the
spec documents /v1beta1/crypto; Alpaca and the exchange serve /v1beta3/crypto/us), and the /v3
clock and calendar (not in the spec; tests/integration/test_exchange_routes.py checks them against
alpaca-py's models).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.exchange import ExchangeProcess
from tests.support.openapi import OpenApi, spec_dir
from tests.support.polling import wait_for

SPECS = spec_dir()
pytestmark = pytest.mark.skipif(SPECS is None, reason="Alpaca's OpenAPI specs are not available")

_NULL_TRAILING = (
    "trail_price, trail_percent and hwm are null on orders that are not trailing stops: the spec's own "
    "Order example (components.schemas.Order.x-examples.example-1) has them null, but the properties "
    "lack nullable: true; alpaca-py's Order model types them Optional"
)
_CRYPTO_EXCHANGE = (
    "crypto positions name the exchange CRYPTO: the spec's Exchange enum predates crypto; alpaca-py's "
    "AssetExchange enum (alpaca/trading/enums.py) has CRYPTO = 'CRYPTO', and Position.exchange uses it"
)
# (case, error pattern) → why the spec is outdated, and the source showing Alpaca's current shape.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("POST /v2/orders", r"\.(trail_price|trail_percent|hwm): null where"): _NULL_TRAILING,
    ("GET /v2/orders/{order_id}", r"\.(trail_price|trail_percent|hwm): null where"): _NULL_TRAILING,
    ("GET /v2/orders", r"\.(trail_price|trail_percent|hwm): null where"): _NULL_TRAILING,
    ("GET /v2/positions", r"\.exchange: 'CRYPTO' is not one of"): _CRYPTO_EXCHANGE,
    ("GET /v2/positions/{symbol_or_asset_id}", r"\.exchange: 'CRYPTO' is not one of"): _CRYPTO_EXCHANGE,
}


@pytest.fixture(scope="module")
def trading() -> OpenApi:
    assert SPECS is not None
    return OpenApi(SPECS / "alpaca-trading-openapi.yaml")


@pytest.fixture(scope="module")
def data() -> OpenApi:
    assert SPECS is not None
    return OpenApi(SPECS / "alpaca-market-data-openapi.yaml")


@pytest.fixture(scope="module")
def ex() -> Iterator[ExchangeProcess]:
    exchange = ExchangeProcess.start()
    try:
        yield exchange
    finally:
        exchange.stop()


def _get(ex: ExchangeProcess, path: str, **params: Any) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = ex.request("GET", path + ("?" + query if query else ""))
    assert status == 200, (path, status, body)
    return body


def _check(
    case: str, api: OpenApi, schema: dict[str, Any], body: Any, seen: set[tuple[str, str]]
) -> list[str]:
    """Schema errors not explained by a listed deviation (and records the deviations that occurred)."""
    left = []
    for err in api.errors(schema, body):
        hit = [k for k in DEVIATIONS if k[0] == case and re.search(k[1], err)]
        if hit:
            seen.update(hit)
        else:
            left.append(err)
    return left


def test_trading_bodies_pass_the_trading_spec(ex: ExchangeProcess, trading: OpenApi) -> None:
    seen: set[tuple[str, str]] = set()
    problems: dict[str, list[str]] = {}

    def check(case: str, schema: dict[str, Any], body: Any) -> None:
        errs = _check(case, trading, schema, body, seen)
        if errs:
            problems[case] = errs[:10]

    status, order = ex.request(
        "POST",
        "/v2/orders",
        {
            "symbol": "AAPL",
            "qty": "1",
            "side": "buy",
            "type": "limit",
            "time_in_force": "gtc",
            "limit_price": "1.00",
            "client_order_id": f"openapi-{time.time_ns()}",
        },
    )
    assert status == 200, order
    check("POST /v2/orders", trading.response_schema("/v2/orders", "post"), order)
    status, market = ex.request(
        "POST",
        "/v2/orders",
        {
            "symbol": "BTC/USD",
            "qty": "0.01",
            "side": "buy",
            "type": "market",
            "time_in_force": "gtc",
        },
    )
    assert status == 200, market
    check("POST /v2/orders", trading.response_schema("/v2/orders", "post"), market)
    check(
        "GET /v2/orders/{order_id}",
        trading.response_schema("/v2/orders/{order_id}"),
        _get(ex, f"/v2/orders/{order['id']}"),
    )
    check("GET /v2/orders", trading.response_schema("/v2/orders"), _get(ex, "/v2/orders", status="all"))
    check("GET /v2/account", trading.response_schema("/v2/account"), _get(ex, "/v2/account"))
    check(
        "GET /v2/account/configurations",
        trading.response_schema("/v2/account/configurations"),
        _get(ex, "/v2/account/configurations"),
    )
    # the market buy fills on the stream, maybe after the answer
    positions = wait_for("the crypto market buy filled", lambda: _get(ex, "/v2/positions"), 15, every=0.1)
    check("GET /v2/positions", trading.response_schema("/v2/positions"), positions)
    one = trading.response_schema("/v2/positions/{symbol_or_asset_id}")
    check("GET /v2/positions/{symbol_or_asset_id}", one, _get(ex, "/v2/positions/BTCUSD"))
    check(
        "GET /v2/account/portfolio/history",
        trading.response_schema("/v2/account/portfolio/history"),
        _get(ex, "/v2/account/portfolio/history"),
    )
    check(
        "GET /v2/account/activities/{activity_type}",
        trading.response_schema("/v2/account/activities/{activity_type}"),
        _get(ex, "/v2/account/activities/FILL"),
    )
    check("GET /v2/clock", trading.response_schema("/v2/clock"), _get(ex, "/v2/clock"))
    check(
        "GET /v2/calendar",
        trading.response_schema("/v2/calendar"),
        _get(ex, "/v2/calendar", start="2025-01-01", end="2025-12-31"),
    )
    check("GET /v2/assets/{symbol}", trading.schema("Assets"), _get(ex, "/v2/assets/AAPL"))
    status, cancel = ex.request("DELETE", f"/v2/orders/{order['id']}")
    assert status in (200, 204), cancel
    assert not problems, problems
    assert {k for k in DEVIATIONS if k[0] in _TRADING_CASES} <= seen, "a listed deviation no longer occurs"


_TRADING_CASES = {
    "POST /v2/orders",
    "GET /v2/orders/{order_id}",
    "GET /v2/orders",
    "GET /v2/account",
    "GET /v2/account/configurations",
    "GET /v2/positions",
    "GET /v2/positions/{symbol_or_asset_id}",
    "GET /v2/account/portfolio/history",
    "GET /v2/account/activities/{activity_type}",
    "GET /v2/clock",
    "GET /v2/calendar",
    "GET /v2/assets/{symbol}",
}


def test_stock_data_bodies_pass_the_market_data_spec(ex: ExchangeProcess, data: OpenApi) -> None:
    seen: set[tuple[str, str]] = set()
    problems: dict[str, list[str]] = {}
    end = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = {"start": start, "end": end, "limit": 200, "feed": "iex"}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v2/stocks/bars", {**window, "symbols": "AAPL,MSFT", "timeframe": "1Min"}),
        ("/v2/stocks/trades", {**window, "symbols": "AAPL,MSFT"}),
        ("/v2/stocks/quotes", {**window, "symbols": "AAPL,MSFT"}),
        ("/v2/stocks/bars/latest", {"symbols": "AAPL,MSFT"}),
        ("/v2/stocks/trades/latest", {"symbols": "AAPL,MSFT"}),
        ("/v2/stocks/quotes/latest", {"symbols": "AAPL,MSFT"}),
        ("/v2/stocks/snapshots", {"symbols": "AAPL,MSFT"}),
        ("/v2/stocks/{symbol}/bars", {**window, "timeframe": "1Day"}),
        ("/v2/stocks/{symbol}/trades", window),
        ("/v2/stocks/{symbol}/quotes", window),
        ("/v2/stocks/{symbol}/bars/latest", {}),
        ("/v2/stocks/{symbol}/trades/latest", {}),
        ("/v2/stocks/{symbol}/quotes/latest", {}),
        ("/v2/stocks/{symbol}/snapshot", {}),
    ]
    for template, params in cases:
        body = _get(ex, template.replace("{symbol}", "AAPL"), **params)
        errs = _check(f"GET {template}", data, data.response_schema(template), body, seen)
        if errs:
            problems[template] = errs[:10]
    assert not problems, problems
    assert {k for k in DEVIATIONS if k[0] not in _TRADING_CASES} <= seen, "a listed deviation is gone"
