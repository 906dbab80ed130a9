"""Single-symbol stock data routes, through alpaca-py's own request path and models.

Sources: Alpaca's market-data OpenAPI spec (docs.alpaca.markets/reference,
paths ``/v2/stocks/{symbol}/trades``, ``/quotes``, ``/bars``, ``/trades/latest``,
``/quotes/latest``, ``/bars/latest``, ``/snapshot``; schemas TradesResponse, QuotesResponse,
BarsResponse, LatestTradeResponse, LatestQuoteResponse, LatestBarResponse, Snapshot) and the
official Node SDK, which calls exactly these paths (alpacahq/alpaca-trade-api-js
lib/resources/datav2/rest_v2.ts: getTradesV2, getQuotesV2, getBarsV2, getLatestTrade,
getLatestQuote, getLatestBar, getSnapshot). The requests go through alpaca-py's RESTClient (its
URL building, headers and error handling) and the bodies are parsed with alpaca-py's models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import Bar, Quote, Snapshot, Trade

from tests.support.exchange import ExchangeProcess


@pytest.fixture
def stocks(module_exchange_clean: ExchangeProcess) -> StockHistoricalDataClient:
    c = StockHistoricalDataClient(
        module_exchange_clean.key_id, module_exchange_clean.secret, url_override=module_exchange_clean.url
    )
    c._retry = 0
    return c


def _window() -> dict[str, Any]:
    end = datetime.now(UTC) - timedelta(days=1)
    return {"start": (end - timedelta(days=3)).isoformat(), "end": end.isoformat()}


@pytest.mark.parametrize(
    ("kind", "model", "extra"),
    [("trades", Trade, {}), ("quotes", Quote, {}), ("bars", Bar, {"timeframe": "1Min"})],
)
def test_single_symbol_history_pages_like_the_multi_symbol_route(
    stocks: StockHistoricalDataClient, kind: str, model: type, extra: dict[str, Any]
) -> None:
    """``GET /v2/stocks/{symbol}/{kind}``: ``{kind: [...], "symbol", "next_page_token"}``, paged with
    the token, the same items as ``/v2/stocks/{kind}?symbols=...`` (spec TradesResponse etc.)."""
    params = {**_window(), **extra, "limit": 500, "feed": "iex"}
    single: list[dict[str, Any]] = []
    token = None
    pages = 0
    while pages < 3:
        body = stocks.get(f"/stocks/AAPL/{kind}", {**params, "page_token": token})
        assert isinstance(body, dict)
        assert set(body) == {kind, "symbol", "next_page_token"}
        assert body["symbol"] == "AAPL"
        single.extend(body[kind])
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert len(single) >= 500  # paged at least once: the window holds more than one page
    multi = stocks.get(f"/stocks/{kind}", {**params, "symbols": "AAPL", "limit": len(single)})
    assert isinstance(multi, dict)
    assert multi[kind]["AAPL"] == single
    parsed = [model("AAPL", row) for row in single]
    assert parsed[0].symbol == "AAPL"
    assert parsed[0].timestamp <= parsed[-1].timestamp


@pytest.mark.parametrize(
    ("kind", "key", "model"), [("trades", "trade", Trade), ("quotes", "quote", Quote), ("bars", "bar", Bar)]
)
def test_single_symbol_latest(stocks: StockHistoricalDataClient, kind: str, key: str, model: type) -> None:
    """``GET /v2/stocks/{symbol}/{kind}/latest``: ``{"symbol": "AAPL", key: {...}}`` (spec
    LatestTradeResponse / LatestQuoteResponse / LatestBarResponse; required: the object, symbol)."""
    body = stocks.get(f"/stocks/AAPL/{kind}/latest", {"feed": "iex"})
    assert isinstance(body, dict)
    assert set(body) == {"symbol", key}
    assert body["symbol"] == "AAPL"
    item = model("AAPL", body[key])
    assert item.timestamp <= datetime.now(UTC) + timedelta(seconds=5)


def test_single_symbol_snapshot(stocks: StockHistoricalDataClient) -> None:
    """``GET /v2/stocks/{symbol}/snapshot``: the snapshot object itself with ``symbol`` (spec Snapshot
    and its example snapshot-example-1), parsed by alpaca-py's Snapshot model."""
    body = stocks.get("/stocks/AAPL/snapshot", {"feed": "iex"})
    assert isinstance(body, dict)
    assert body["symbol"] == "AAPL"
    assert {"latestTrade", "latestQuote", "minuteBar", "dailyBar", "prevDailyBar"} <= set(body)
    snap = Snapshot("AAPL", body)
    assert snap.latest_trade is not None and snap.latest_trade.price > 0
    assert snap.latest_quote is not None and snap.latest_quote.ask_price >= snap.latest_quote.bid_price
    assert snap.daily_bar is not None and snap.previous_daily_bar is not None


def test_single_symbol_routes_reject_bad_symbols(stocks: StockHistoricalDataClient) -> None:
    """A malformed symbol or a crypto pair on a stock route is a 400 with Alpaca's JSON body; a
    well-formed symbol nobody lists has no latest values (404) and an empty history."""
    for path in ("/stocks/BAD!/trades", "/stocks/BAD!/trades/latest", "/stocks/BAD!/snapshot"):
        with pytest.raises(APIError) as err:
            stocks.get(path, _window())
        assert err.value.status_code == 400
        assert "symbol" in err.value.message
    for path in ("/stocks/ZZZZ/quotes/latest", "/stocks/ZZZZ/snapshot"):
        with pytest.raises(APIError) as err:
            stocks.get(path)
        assert err.value.status_code == 404
    body = stocks.get("/stocks/ZZZZ/trades", _window())
    assert body == {"trades": [], "symbol": "ZZZZ", "next_page_token": None}
