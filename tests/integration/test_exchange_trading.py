"""Every TradingClient call Heron uses (docs/alpaca-protocol.md §2), through real alpaca-py over loopback."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for


def _client(ex: ExchangeProcess) -> TradingClient:
    c = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
    c._retry = 0  # alpaca-py would otherwise sleep 3 s per 429/504
    return c


@pytest.fixture
def client(module_exchange_clean: ExchangeProcess) -> TradingClient:
    c = _client(module_exchange_clean)
    c.cancel_orders()
    c.close_all_positions(cancel_orders=True)
    return c


def test_account_clock_calendar_assets(client: TradingClient) -> None:
    acct: Any = client.get_account()
    assert acct.status == "ACTIVE" and float(acct.buying_power) > 0
    clock: Any = client.get_clock()
    assert clock.is_open  # --always-open
    cal: Any = client.get_calendar(
        GetCalendarRequest(start=date.today(), end=date.today() + timedelta(days=7))
    )
    assert len(cal) >= 5
    assets: Any = client.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    assert {a.symbol for a in assets} >= {"BTC/USD", "ETH/USD"}
    aapl: Any = client.get_asset("AAPL")
    assert aapl.tradable and aapl.fractionable
    with pytest.raises(APIError) as err:
        client.get_asset("NOPE")
    assert err.value.status_code == 404
    hist: Any = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1W", timeframe="1H"))
    assert len(hist.timestamp) == len(hist.equity)


def test_market_order_fills_then_position_and_close(client: TradingClient) -> None:
    order: Any = client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    filled = wait_for(
        "(o := client.get_order_by_id(order.id)).status == OrderStatus.FILLED and o",
        lambda: (o := client.get_order_by_id(order.id)).status == OrderStatus.FILLED and o,
        10,
    )
    assert float(filled.filled_qty) == 3 and float(filled.filled_avg_price) > 0
    pos: Any = client.get_open_position("AAPL")
    assert float(pos.qty) == 3 and pos.side == "long"
    [listed] = client.get_all_positions()  # type: ignore[misc]
    assert listed.symbol == "AAPL"
    # bought today: the day's P&L is the whole unrealized P&L, not the move from yesterday's close
    assert pos.unrealized_intraday_pl == pos.unrealized_pl
    assert listed.unrealized_intraday_pl == listed.unrealized_pl
    closing: Any = client.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert closing.side == OrderSide.SELL
    wait_for(
        '0 < float(client.get_open_position("AAPL").qty) < 3',
        lambda: 0 < float(client.get_open_position("AAPL").qty) < 3,
        10,
    )  # type: ignore[union-attr]
    result: Any = client.close_all_positions(cancel_orders=True)
    assert [r.symbol for r in result] == ["AAPL"]
    wait_for("not client.get_all_positions()", lambda: not client.get_all_positions(), 10)
    with pytest.raises(APIError) as err:
        client.get_open_position("AAPL")
    assert err.value.status_code == 404 and err.value.code == 40410000


def test_resting_orders_query_replace_cancel(client: TradingClient) -> None:
    coid = f"heron-{uuid.uuid4().hex[:12]}"
    limit: Any = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=1.00,
            client_order_id=coid,
        )
    )
    assert limit.status in (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW)
    assert client.get_order_by_client_id(coid).id == limit.id  # type: ignore[union-attr]
    # A short-sale stop in another symbol: flat in MSFT with the buy above pending, Alpaca refuses a
    # sell in MSFT (API v2 "Notes on Orders and Positions": no sell while flat with a pending buy).
    stop: Any = client.submit_order(
        StopOrderRequest(
            symbol="AMZN", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=1.00
        )
    )
    stop_limit: Any = client.submit_order(
        StopLimitOrderRequest(
            symbol="NVDA",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            stop_price=1_000,
            limit_price=1_001,
        )
    )
    trailing: Any = client.submit_order(
        TrailingStopOrderRequest(
            symbol="TSLA", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_percent=5
        )
    )
    open_orders: Any = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert {limit.id, stop_limit.id} <= {o.id for o in open_orders}
    replaced: Any = client.replace_order_by_id(limit.id, ReplaceOrderRequest(qty=3, limit_price=1.5))
    assert replaced.id != limit.id and str(replaced.replaces) == str(limit.id)
    old: Any = client.get_order_by_id(limit.id, GetOrderByIdRequest(nested=True))
    assert old.status == OrderStatus.REPLACED
    client.cancel_order_by_id(replaced.id)
    wait_for(
        "client.get_order_by_id(replaced.id).status == OrderStatus.CANCELED",
        lambda: client.get_order_by_id(replaced.id).status == OrderStatus.CANCELED,
        10,
    )  # type: ignore[union-attr]
    with pytest.raises(APIError) as err:
        client.cancel_order_by_id(uuid.uuid4())
    assert err.value.status_code == 404
    responses: Any = client.cancel_orders()
    assert all(r.status in (200, 204) for r in responses)
    del stop, trailing


def test_complex_orders_and_rejections(client: TradingClient) -> None:
    bracket: Any = client.submit_order(
        MarketOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class="bracket",
            take_profit=TakeProfitRequest(limit_price=100_000),
            stop_loss=StopLossRequest(stop_price=1.0),
        )
    )
    assert bracket.legs is not None and len(bracket.legs) == 2
    oto: Any = client.submit_order(
        LimitOrderRequest(
            symbol="QQQ",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=1.0,
            order_class="oto",
            stop_loss=StopLossRequest(stop_price=0.5),
        )
    )
    assert oto.order_class == "oto"
    notional: Any = client.submit_order(
        MarketOrderRequest(symbol="AAPL", notional=250.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert notional.notional is not None
    with pytest.raises(APIError) as err:  # buying power
        client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=1_000_000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
    assert err.value.status_code == 403
    with pytest.raises(APIError) as err:  # not shortable
        client.submit_order(
            MarketOrderRequest(symbol="HTBX", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
        )
    assert err.value.status_code in (403, 422)
    with pytest.raises(APIError) as err:  # unknown symbol
        client.submit_order(
            MarketOrderRequest(symbol="ZZZZ", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
    assert err.value.status_code in (404, 422)
    assert isinstance(err.value.code, int)


def test_crypto_position_is_listed_as_btcusd_and_btc_slash_usd_is_a_404(client: TradingClient) -> None:
    """alpaca-py #179, #490, #537; Alpaca-API #215; alpaca-trade-api-csharp #713; alpaca-docs
    crypto-trading-broker.md: a crypto position is listed as ``BTCUSD``; ``GET`` and ``DELETE
    /v2/positions/BTC/USD`` answer 404 while ``/v2/positions/BTCUSD`` works. Orders keep ``BTC/USD``;
    close-all's 207 entry says ``BTCUSD`` around an order for ``BTC/USD`` (alpaca-py
    test_position_routes.py test_close_all_positions)."""
    order: Any = client.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert order.symbol == "BTC/USD"
    wait_for(
        "client.get_order_by_id(order.id).status == OrderStatus.FILLED",
        lambda: client.get_order_by_id(order.id).status == OrderStatus.FILLED,
        10,
    )  # type: ignore[union-attr]
    [listed] = client.get_all_positions()  # type: ignore[misc]
    assert listed.symbol == "BTCUSD" and listed.asset_class == AssetClass.CRYPTO
    for call in (client.get_open_position, client.close_position):
        with pytest.raises(APIError) as err:
            call("BTC/USD")
        assert err.value.status_code == 404 and err.value.code == 40410000
    pos: Any = client.get_open_position("BTCUSD")
    assert pos.symbol == "BTCUSD" and float(pos.qty) == 0.01
    closing: Any = client.close_position("BTCUSD", ClosePositionRequest(qty="0.004"))
    assert closing.symbol == "BTC/USD"
    wait_for(
        'float(client.get_open_position("BTCUSD").qty) == 0.006',
        lambda: float(client.get_open_position("BTCUSD").qty) == 0.006,
        10,
    )  # type: ignore[union-attr]
    [result] = client.close_all_positions(cancel_orders=True)  # type: ignore[misc]
    assert result.symbol == "BTCUSD" and result.status == 200 and result.body.symbol == "BTC/USD"
    wait_for("not client.get_all_positions()", lambda: not client.get_all_positions(), 10)
