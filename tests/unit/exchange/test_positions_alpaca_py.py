"""Positions through real alpaca-py against the in-process venue, with a fake clock to cross days.

Sources: Alpaca docs "Position Average Entry Price Calculation" (weighted average intraday,
compressed FIFO for positions from previous trading days, with worked examples); alpaca-py #179,
#490, #537, Alpaca-API #215, alpaca-trade-api-csharp #713 and alpaca-docs crypto-trading-broker.md
(a crypto position is listed as ``BTCUSD`` and ``/v2/positions/BTC/USD`` is a 404 for GET and DELETE
alike); alpaca-py tests/trading/trading_client/test_position_routes.py test_close_all_positions
(the 207 entry says ``BTCUSD``, its order ``BTC/USD``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import ClosePositionRequest, MarketOrderRequest

from services.exchange.http.trading_api import add_trading_routes

from .test_trading_api import errors
from .test_venue_fakes import Rig, make_rig

D = Decimal


def run(tmp_path: Path, body: Callable[[TradingClient, Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = make_rig(tmp_path, always_open=True)
        rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]  # no partial fills
        app = web.Application(middlewares=[errors])
        add_trading_routes(app, rig.venue)
        async with TestClient(TestServer(app)) as c:
            await rig.venue.start()
            client = TradingClient("key", "secret", url_override=str(c.make_url("")).rstrip("/"))
            client._retry = 0
            try:
                await body(client, rig)
            finally:
                await rig.venue.close()

    asyncio.run(main())


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """alpaca-py is synchronous: run it off the loop that serves the venue."""
    return await asyncio.to_thread(fn, *args)


async def trade(client: TradingClient, rig: Rig, symbol: str, side: str, qty: str, price: str) -> None:
    """A market order filled at ``price`` (bid = ask = price)."""
    rig.quote(symbol, price, price)
    tif = TimeInForce.GTC if "/" in symbol else TimeInForce.DAY
    req = MarketOrderRequest(symbol=symbol, qty=float(qty), side=OrderSide(side), time_in_force=tif)
    order: Any = await call(client.submit_order, req)
    rig.venue.sweep()
    filled: Any = await call(client.get_order_by_id, order.id)
    assert filled.status == "filled" and D(filled.filled_avg_price) == D(price)


def test_average_entry_price_is_weighted_intraday_and_compressed_fifo_the_next_day(tmp_path: Path) -> None:
    """Alpaca docs, "Position Average Entry Price Calculation": day 1 buy 100 @ 10 and 50 @ 12, day 2
    buy 30 @ 15, day 3 sell 120. On day 3 the position shows the weighted average (11.39, cost basis
    683.33); from day 4 compressed FIFO (12.83, cost basis 770: day 1's shares were sold first)."""

    async def body(client: TradingClient, rig: Rig) -> None:
        await trade(client, rig, "AAPL", "buy", "100", "10")
        await trade(client, rig, "AAPL", "buy", "50", "12")
        rig.clock.advance(days=1)
        await trade(client, rig, "AAPL", "buy", "30", "15")
        rig.clock.advance(days=1)
        await trade(client, rig, "AAPL", "sell", "120", "20")
        pos: Any = await call(client.get_open_position, "AAPL")
        assert D(pos.qty) == 60
        assert round(D(pos.avg_entry_price), 2) == D("11.39") and round(D(pos.cost_basis), 2) == D("683.33")
        rig.clock.advance(days=1)
        pos = await call(client.get_open_position, "AAPL")
        assert round(D(pos.avg_entry_price), 2) == D("12.83") and D(pos.cost_basis) == 770
        [listed] = await call(client.get_all_positions)
        assert D(listed.cost_basis) == 770 and D(listed.unrealized_pl) == 60 * 20 - 770

    run(tmp_path, body)


def test_intraday_pl_of_shares_added_today_is_measured_from_their_entry(tmp_path: Path) -> None:
    """docs/alpaca-rules.md (Positions): ``unrealized_intraday_pl`` of shares bought today is measured from
    their entry, not from the previous close. 10 carried from yesterday, 5 bought today at 35, closed
    yesterday at 35.89, now 36.28: 10 x 0.39 + 5 x 1.28 = 10.30."""

    async def body(client: TradingClient, rig: Rig) -> None:
        await trade(client, rig, "AAPL", "buy", "10", "30")
        rig.clock.advance(days=1)
        await trade(client, rig, "AAPL", "buy", "5", "35")
        rig.quote("AAPL", "36.27", "36.29", last="36.28", prev_close="35.89")
        pos: Any = await call(client.get_open_position, "AAPL")
        assert D(pos.unrealized_intraday_pl) == D("10.30")
        assert D(pos.lastday_price) == D("35.89")

    run(tmp_path, body)


def test_crypto_position_is_listed_as_btcusd_and_btc_slash_usd_is_a_404(tmp_path: Path) -> None:
    """alpaca-py #179, #537, Alpaca-API #215: the position is ``BTCUSD``; GET and DELETE
    ``/v2/positions/BTC/USD`` answer 404 while ``/v2/positions/BTCUSD`` works. Orders and fills keep
    ``BTC/USD``; close-all's 207 entry says ``BTCUSD`` around an order for ``BTC/USD`` (alpaca-py
    test_close_all_positions)."""

    async def body(client: TradingClient, rig: Rig) -> None:
        await trade(client, rig, "BTC/USD", "buy", "0.5", "50000")
        [listed] = await call(client.get_all_positions)
        assert listed.symbol == "BTCUSD" and listed.asset_class == "crypto"
        for fn in (client.get_open_position, client.close_position):
            with pytest.raises(APIError) as err:
                await call(fn, "BTC/USD")
            assert err.value.status_code == 404 and err.value.code == 40410000
        pos: Any = await call(client.get_open_position, "BTCUSD")
        assert pos.symbol == "BTCUSD" and D(pos.qty) == D("0.5")
        closing: Any = await call(client.close_position, "BTCUSD", ClosePositionRequest(qty="0.1"))
        assert closing.symbol == "BTC/USD" and closing.side == OrderSide.SELL
        rig.venue.sweep()
        pos = await call(client.get_open_position, "BTCUSD")
        assert D(pos.qty) == D("0.4")
        [result] = await call(client.close_all_positions, True)
        assert result.symbol == "BTCUSD" and result.status == 200 and result.body.symbol == "BTC/USD"
        activities = rig.venue.ledger.activities
        assert {a["symbol"] for a in activities} == {"BTC/USD"}

    run(tmp_path, body)


def test_days_are_new_york_dates(tmp_path: Path) -> None:
    """The trading day is the New York date: 23:30 New York is still the same day (no compression),
    00:30 the next day is a new one."""

    async def body(client: TradingClient, rig: Rig) -> None:
        await trade(client, rig, "AAPL", "buy", "10", "10")
        await trade(client, rig, "AAPL", "sell", "5", "11")
        await trade(client, rig, "AAPL", "buy", "5", "12")  # weighted: (5 x 10 + 5 x 12) / 10 = 11
        rig.clock.now = rig.clock.now.replace(hour=4, minute=30) + timedelta(days=1)  # 23:30 New York
        pos: Any = await call(client.get_open_position, "AAPL")
        assert D(pos.avg_entry_price) == 11
        rig.clock.advance(hours=1)  # 00:30 New York: the day is over, compressed FIFO
        pos = await call(client.get_open_position, "AAPL")
        # the day's opens are 15 @ 10.67; the 5 sold leave 10 @ 10.67
        assert round(D(pos.avg_entry_price), 2) == D("10.67") and round(D(pos.cost_basis), 2) == D("106.67")

    run(tmp_path, body)
