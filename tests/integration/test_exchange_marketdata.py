"""Market-data REST through real alpaca-py historical clients (StockHistoricalDataClient, Crypto...)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestBarRequest,
    CryptoLatestOrderbookRequest,
    CryptoLatestQuoteRequest,
    CryptoLatestTradeRequest,
    CryptoQuoteRequest,
    CryptoSnapshotRequest,
    CryptoTradesRequest,
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from tests.support.exchange import ExchangeProcess


@pytest.fixture
def stocks(module_exchange_clean: ExchangeProcess) -> StockHistoricalDataClient:
    c = StockHistoricalDataClient(
        module_exchange_clean.key_id, module_exchange_clean.secret, url_override=module_exchange_clean.url
    )
    c._retry = 0
    return c


@pytest.fixture
def crypto(module_exchange_clean: ExchangeProcess) -> CryptoHistoricalDataClient:
    c = CryptoHistoricalDataClient(url_override=module_exchange_clean.url)  # keyless, as on Alpaca
    c._retry = 0
    return c


def test_stock_bars_paginate_and_aggregate(stocks: StockHistoricalDataClient) -> None:
    end = datetime.now(UTC)
    start = end - timedelta(days=30)
    minute = stocks.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "MSFT"],
            timeframe=TimeFrame.Minute,
            start=start,
            end=end,
            limit=12_000,
            feed=DataFeed.IEX,
        )
    )
    bars = minute.data
    assert sum(len(v) for v in bars.values()) == 12_000  # two pages (10000 + 2000) joined by the SDK
    aapl = bars["AAPL"]
    assert all(a.timestamp < b.timestamp for a, b in itertools.pairwise(aapl))
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in aapl)
    assert all(b.trade_count is not None and b.trade_count > 0 and b.vwap is not None for b in aapl)
    daily = stocks.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="SPY",
            timeframe=TimeFrame.Day,
            start=end - timedelta(days=400),
            end=end,
        )
    ).data["SPY"]
    assert len(daily) >= 365  # --always-open: every day is a session
    hourly = stocks.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="SPY",
            timeframe=TimeFrame(15, TimeFrameUnit.Minute),
            start=end - timedelta(days=2),
            end=end,
        )
    ).data["SPY"]
    assert all(b.timestamp.minute % 15 == 0 for b in hourly)
    df = stocks.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="NVDA",
            timeframe=TimeFrame.Hour,
            start=end - timedelta(days=3),
            end=end,
        )
    ).df
    assert {"open", "high", "low", "close", "volume", "trade_count", "vwap"} <= set(df.columns)


def test_stock_trades_quotes_latest_and_snapshots(stocks: StockHistoricalDataClient) -> None:
    end = datetime.now(UTC) - timedelta(minutes=5)
    trades = stocks.get_stock_trades(
        StockTradesRequest(symbol_or_symbols="AAPL", start=end - timedelta(hours=3), end=end, limit=500)
    )
    assert len(trades.data["AAPL"]) == 500
    quotes = stocks.get_stock_quotes(
        StockQuotesRequest(symbol_or_symbols="AAPL", start=end - timedelta(hours=1), end=end, limit=300)
    )
    assert all(q.bid_price < q.ask_price for q in quotes.data["AAPL"])
    lt = stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=["AAPL", "MSFT"]))
    assert set(lt) == {"AAPL", "MSFT"} and lt["AAPL"].price > 0
    lq = stocks.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="TSLA"))
    assert lq["TSLA"].bid_price < lq["TSLA"].ask_price
    lb = stocks.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="QQQ"))
    assert lb["QQQ"].trade_count is not None
    snap = stocks.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["AAPL", "SPY"]))
    assert set(snap) == {"AAPL", "SPY"}
    s = snap["AAPL"]
    assert s.latest_trade is not None and s.daily_bar is not None and s.previous_daily_bar is not None
    assert s.previous_daily_bar.timestamp < s.daily_bar.timestamp


def test_crypto_without_keys(crypto: CryptoHistoricalDataClient) -> None:
    end = datetime.now(UTC)
    bars = crypto.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols=["BTC/USD", "ETH/USD"],
            timeframe=TimeFrame.Hour,
            start=end - timedelta(days=5),
            end=end,
        )
    ).data
    assert len(bars["BTC/USD"]) >= 5 * 24 - 1 and len(bars["ETH/USD"]) >= 5 * 24 - 1
    trades = crypto.get_crypto_trades(
        CryptoTradesRequest(symbol_or_symbols="BTC/USD", start=end - timedelta(minutes=30), end=end, limit=50)
    ).data
    assert len(trades["BTC/USD"]) == 50
    quotes = crypto.get_crypto_quotes(
        CryptoQuoteRequest(symbol_or_symbols="ETH/USD", start=end - timedelta(minutes=30), end=end, limit=20)
    ).data
    assert len(quotes["ETH/USD"]) == 20
    assert crypto.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD"))[
        "BTC/USD"
    ].price
    q = crypto.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols="BTC/USD"))["BTC/USD"]
    assert q.bid_price < q.ask_price
    assert crypto.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols="ETH/USD"))["ETH/USD"].close
    ob = crypto.get_crypto_latest_orderbook(CryptoLatestOrderbookRequest(symbol_or_symbols="BTC/USD"))
    assert ob["BTC/USD"].bids[0].price < ob["BTC/USD"].asks[0].price
    snap = crypto.get_crypto_snapshot(CryptoSnapshotRequest(symbol_or_symbols="BTC/USD"))
    assert snap["BTC/USD"].latest_quote is not None


def test_bad_parameters_are_json_400s(
    stocks: StockHistoricalDataClient, module_exchange: ExchangeProcess
) -> None:
    status, body = module_exchange.request("GET", "/v2/stocks/bars?symbols=AAPL&timeframe=7Parsec")
    assert status == 400 and body["code"] == 40010000 and "timeframe" in body["message"]
    status, body = module_exchange.request(
        "GET", "/v2/stocks/bars?symbols=AAPL&timeframe=1Min&start=yesterday"
    )
    assert status == 400 and "start" in body["message"]
    status, body = module_exchange.request("GET", "/v2/stocks/trades?symbols=AAPL&limit=0")
    assert status == 400 and "limit" in body["message"]
    status, body = module_exchange.request("GET", "/v2/stocks/bars?timeframe=1Min")
    assert status == 400 and "symbols" in body["message"]
    # A well-formed but unlisted symbol is simply absent, as on Alpaca.
    status, body = module_exchange.request("GET", "/v2/stocks/bars?symbols=ZZZZ&timeframe=1Day")
    assert status == 200 and body == {"bars": {}, "next_page_token": None}
    with pytest.raises(APIError) as err:
        stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="not a symbol!"))
    assert err.value.status_code == 400


def test_history_joins_live_prices_without_a_jump(stocks: StockHistoricalDataClient) -> None:
    end = datetime.now(UTC)
    bars = stocks.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Minute,
            start=end - timedelta(hours=2),
            end=end,
        )
    ).data["AAPL"]
    last_close = bars[-1].close
    live = stocks.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    mid = (live.bid_price + live.ask_price) / 2
    assert abs(mid - last_close) / last_close < 0.01
    closes = [b.close for b in bars]
    steps = [abs(b - a) / a for a, b in itertools.pairwise(closes)]
    assert max(steps) < 0.01
