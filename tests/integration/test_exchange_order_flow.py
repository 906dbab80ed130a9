"""Order flow like Alpaca's, through real alpaca-py (TradingClient + TradingStream) against the exchange.

Sources (see docs/alpaca-rules.md "Order lifecycle" and "Replace (PATCH)"):
- Alpaca docs "Orders": ``POST /v2/orders`` answers with the order accepted (``accepted``,
  ``pending_new``, ``new``); fills arrive afterwards on ``trade_updates`` (``fill``,
  ``partial_fill``) with ``execution_id``, ``price``, ``qty`` and ``position_qty``.
- Order entity docs, Alpaca-API #191: a notional order has ``qty`` null.
- PATCH /v2/orders/{order_id} (Alpaca's Trading API reference) and docs/alpaca-rules.md: the replacement
  is a new order that starts unfilled; a partially filled order can be replaced; Alpaca-API #165: a
  price-only replace of a partially filled order carries the original qty, and a liquidating sell
  then fails for want of shares (a replace never flips the position).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream

from tests.support.exchange import ExchangeProcess
from tests.support.polling import async_wait_for

ACCEPTED = (OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW, OrderStatus.NEW)


def _client(ex: ExchangeProcess) -> TradingClient:
    c = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
    c._retry = 0
    return c


async def _with_stream(ex: ExchangeProcess, body: Callable[[TradingClient, list[Any]], Any]) -> None:
    updates: list[Any] = []

    async def on_update(u: Any) -> None:
        updates.append(u)

    ts = TradingStream(ex.key_id, ex.secret, url_override=f"{ex.ws_url}/stream")
    ts.subscribe_trade_updates(on_update)
    task = asyncio.ensure_future(ts._run_forever())
    try:
        await async_wait_for(
            'ex.admin("/stats")["venue"]["stream_clients"] >= 1',
            lambda: ex.admin("/stats")["venue"]["stream_clients"] >= 1,
            10,
        )
        await body(_client(ex), updates)
    finally:
        await ts.stop_ws()
        await ts.close()
        await asyncio.wait_for(task, 10)


def test_marketable_orders_are_answered_accepted_and_filled_on_the_stream(
    module_exchange_clean: ExchangeProcess,
) -> None:
    ex = module_exchange_clean

    async def body(client: TradingClient, updates: list[Any]) -> None:
        req = MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        order: Any = await asyncio.to_thread(client.submit_order, req)
        assert order.status in ACCEPTED and float(order.filled_qty) == 0 and order.filled_at is None

        def fills() -> list[Any]:
            mine = [u for u in updates if str(u.order.id) == str(order.id)]
            return [u for u in mine if u.event in ("fill", "partial_fill")]

        await async_wait_for(
            'any(u.event == "fill" for u in fills())',
            lambda: any(u.event == "fill" for u in fills()),
            10,
        )
        assert next(u.event for u in updates if str(u.order.id) == str(order.id)) == "new"
        assert sum(float(u.qty) for u in fills()) == 3
        assert all(u.execution_id is not None and float(u.price) > 0 for u in fills())
        assert len({u.execution_id for u in fills()}) == len(fills())
        pos: Any = client.get_open_position("AAPL")
        assert fills()[-1].position_qty == float(pos.qty)

        notional = MarketOrderRequest(
            symbol="AAPL", notional=250.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
        n: Any = await asyncio.to_thread(client.submit_order, notional)
        assert n.status in ACCEPTED and n.qty is None
        await async_wait_for(
            'any(u.event == "fill" and str(u.order.id) == str(n.id) for u in updates)',
            lambda: any(u.event == "fill" and str(u.order.id) == str(n.id) for u in updates),
            10,
        )
        done: Any = client.get_order_by_id(n.id)
        assert done.status == OrderStatus.FILLED and done.qty is None
        assert 250 < float(done.filled_qty) * float(done.filled_avg_price) <= 250.5

    asyncio.run(_with_stream(ex, body))


def test_ioc_is_answered_accepted_then_resolved_on_the_stream(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean

    async def body(client: TradingClient, updates: list[Any]) -> None:
        req = LimitOrderRequest(
            symbol="MSFT", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.IOC, limit_price=1.00
        )
        order: Any = await asyncio.to_thread(client.submit_order, req)
        assert order.status in ACCEPTED
        await async_wait_for(
            'any(u.event == "canceled" and str(u.order.id) == str(order.id) for u in updates)',
            lambda: any(u.event == "canceled" and str(u.order.id) == str(order.id) for u in updates),
            10,
        )
        assert client.get_order_by_id(order.id).status == OrderStatus.CANCELED  # type: ignore[union-attr]

    asyncio.run(_with_stream(ex, body))


def test_replace_never_flips_a_position(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean
    client = _client(ex)
    # A short of 4 AMD, then a buy limit that covers it: a replace may not make it buy more.
    short: Any = client.submit_order(
        MarketOrderRequest(symbol="AMD", qty=4, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
    )
    asyncio.run(
        async_wait_for(
            "client.get_order_by_id(short.id).status == OrderStatus.FILLED",
            lambda: client.get_order_by_id(short.id).status == OrderStatus.FILLED,
            10,
        )
    )  # type: ignore[union-attr]
    held = -int(float(client.get_open_position("AMD").qty))  # type: ignore[union-attr]
    assert held >= 4
    cover: Any = client.submit_order(
        LimitOrderRequest(
            symbol="AMD", qty=held, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1
        )
    )
    try:
        client.replace_order_by_id(cover.id, ReplaceOrderRequest(qty=held + 1))
    except APIError as err:
        assert err.status_code == 403
    else:
        raise AssertionError("a replace turned a short cover into a long")
    replaced: Any = client.replace_order_by_id(cover.id, ReplaceOrderRequest(limit_price=2))
    assert (
        replaced.status in ACCEPTED and float(replaced.filled_qty) == 0 and int(float(replaced.qty)) == held
    )
    client.cancel_orders()
