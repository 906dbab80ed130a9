"""The data streams and trade_updates through real alpaca-py streams (awaiting ``_run_forever``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgpack
import pytest
from alpaca.data.live import CryptoDataStream, StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest
from alpaca.trading.stream import TradingStream

from tests.support.exchange import ExchangeProcess
from tests.support.polling import async_wait_for


async def _stop(stream: Any, task: asyncio.Task[Any]) -> None:
    await stream.stop_ws()
    await stream.close()
    await asyncio.wait_for(task, 10)


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def test_stock_stream_trades_and_quotes_and_reconnect_after_kill(
    module_exchange_clean: ExchangeProcess,
) -> None:
    ex = module_exchange_clean
    ex.admin("/rate", {"msgs_per_s": 2000})

    async def main() -> None:
        trades: list[Any] = []
        quotes: list[Any] = []

        async def on_trade(t: Any) -> None:
            trades.append(t)

        async def on_quote(q: Any) -> None:
            quotes.append(q)

        ds = StockDataStream(ex.key_id, ex.secret, url_override=f"{ex.ws_url}/v2/iex")
        ds.subscribe_trades(on_trade, "AAPL", "SPY")
        ds.subscribe_quotes(on_quote, "AAPL")
        task = asyncio.ensure_future(ds._run_forever())
        try:
            await async_wait_for(
                "len(trades) >= 5 and len(quotes) >= 5",
                lambda: len(trades) >= 5 and len(quotes) >= 5,
                10,
            )
            assert {t.symbol for t in trades} <= {"AAPL", "SPY"}
            q = quotes[-1]
            assert q.symbol == "AAPL" and q.bid_price < q.ask_price
            assert trades[-1].timestamp.tzinfo is not None
            killed = await asyncio.to_thread(ex.admin, "/streams/kill", {"which": "data"})
            assert killed["killed"] >= 1
            # alpaca-py reconnects by itself (backoff starts at 1 s), re-auths and resubscribes.
            await async_wait_for(
                'ex.admin("/stats")["datastream"]["authenticated"] >= 2',
                lambda: ex.admin("/stats")["datastream"]["authenticated"] >= 2,
                15,
            )
            await asyncio.sleep(0.2)  # frames buffered before the kill have been handled by now
            before = len(trades)
            await async_wait_for("len(trades) > before + 3", lambda: len(trades) > before + 3, 15)
        finally:
            await _stop(ds, task)

    _run(main)


def test_crypto_stream_receives_trades_quotes_and_orderbooks(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean
    ex.admin("/rate", {"msgs_per_s": 2000})

    async def main() -> None:
        got: dict[str, list[Any]] = {"t": [], "q": [], "o": []}

        async def on_t(x: Any) -> None:
            got["t"].append(x)

        async def on_q(x: Any) -> None:
            got["q"].append(x)

        async def on_o(x: Any) -> None:
            got["o"].append(x)

        cs = CryptoDataStream(ex.key_id, ex.secret, url_override=f"{ex.ws_url}/v1beta3/crypto/us")
        cs.subscribe_trades(on_t, "BTC/USD")
        cs.subscribe_quotes(on_q, "*")
        cs.subscribe_orderbooks(on_o, "ETH/USD")
        task = asyncio.ensure_future(cs._run_forever())
        try:
            await async_wait_for(
                "all(len(v) >= 2 for v in got.values())",
                lambda: all(len(v) >= 2 for v in got.values()),
                15,
            )
            assert {t.symbol for t in got["t"]} == {"BTC/USD"}
            assert {q.symbol for q in got["q"]} <= {"BTC/USD", "ETH/USD"}
            book = got["o"][-1]
            assert book.bids[0].price < book.asks[0].price
        finally:
            await _stop(cs, task)

    _run(main)


async def _raw_handshake(ws: aiohttp.ClientWebSocketResponse, key: str, secret: str) -> list[Any]:
    first = msgpack.unpackb(await ws.receive_bytes())
    assert first == [{"T": "success", "msg": "connected"}]
    await ws.send_bytes(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
    result: list[Any] = msgpack.unpackb(await ws.receive_bytes())
    return result


def test_raw_protocol_errors_connection_limit_and_json_mode(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean
    url = f"{ex.ws_url}/v2/sip"
    headers = {"Content-Type": "application/msgpack"}

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            # Wrong secret: 402, then the server closes.
            async with session.ws_connect(url, headers=headers) as ws:
                assert await _raw_handshake(ws, ex.key_id, "wrong") == [
                    {"T": "error", "code": 402, "msg": "auth failed"}
                ]
            async with session.ws_connect(url, headers=headers) as ws:
                msgpack.unpackb(await ws.receive_bytes())
                # Subscribe before auth: 401; garbage: 400.
                await ws.send_bytes(msgpack.packb({"action": "subscribe", "trades": ["AAPL"]}))
                assert msgpack.unpackb(await ws.receive_bytes())[0]["code"] == 401
                await ws.send_str("{not json")
                assert msgpack.unpackb(await ws.receive_bytes())[0]["code"] == 400
                await ws.send_bytes(msgpack.packb({"action": "auth", "key": ex.key_id, "secret": ex.secret}))
                assert msgpack.unpackb(await ws.receive_bytes())[0]["msg"] == "authenticated"
                await ws.send_bytes(msgpack.packb({"action": "auth", "key": ex.key_id, "secret": ex.secret}))
                assert msgpack.unpackb(await ws.receive_bytes())[0]["code"] == 403
                await ws.send_bytes(
                    msgpack.packb(
                        {"action": "subscribe", "trades": ["AAPL"], "bars": ["*"], "quotes": ["MSFT"]}
                    )
                )
                sub = msgpack.unpackb(await ws.receive_bytes())[0]
                assert sub["T"] == "subscription"
                assert sub["trades"] == ["AAPL"] and sub["bars"] == ["*"] and sub["quotes"] == ["MSFT"]
                assert sub["corrections"] == ["AAPL"] and sub["updatedBars"] == []
                # A second connection with the same key on the same endpoint: 406.
                async with session.ws_connect(url, headers=headers) as ws2:
                    assert (await _raw_handshake(ws2, ex.key_id, ex.secret))[0]["code"] == 406
                await ws.send_bytes(msgpack.packb({"action": "unsubscribe", "quotes": ["MSFT"]}))
                # Data frames may come first; find the subscription reply among the frames.
                sub = {}
                for _ in range(500):
                    frame = msgpack.unpackb(await ws.receive_bytes())
                    sub = next((m for m in frame if m.get("T") == "subscription"), {})
                    if sub:
                        break
                assert sub["quotes"] == []
            # Without the msgpack header the server speaks JSON text with RFC3339 timestamps.
            async with session.ws_connect(f"{ex.ws_url}/v1beta3/crypto/us") as ws:
                assert json.loads(await ws.receive_str()) == [{"T": "success", "msg": "connected"}]
                await ws.send_str(json.dumps({"action": "auth", "key": ex.key_id, "secret": ex.secret}))
                assert json.loads(await ws.receive_str())[0]["msg"] == "authenticated"
                await ws.send_str(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"]}))
                assert json.loads(await ws.receive_str())[0]["T"] == "subscription"
                data = json.loads(await asyncio.wait_for(ws.receive_str(), 10))
                assert data[0]["T"] == "q" and data[0]["t"].endswith("Z")

    _run(main)


def test_trading_stream_gets_new_and_reconnects(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean

    async def main() -> None:
        updates: list[Any] = []

        async def on_update(u: Any) -> None:
            updates.append(u)

        ts = TradingStream(ex.key_id, ex.secret, url_override=f"{ex.ws_url}/stream")
        ts.subscribe_trade_updates(on_update)
        task = asyncio.ensure_future(ts._run_forever())
        client = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
        client._retry = 0
        req = LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00
        )
        try:
            await async_wait_for(
                'ex.admin("/stats")["venue"]["stream_clients"] >= 1',
                lambda: ex.admin("/stats")["venue"]["stream_clients"] >= 1,
                10,
            )
            order = await asyncio.to_thread(client.submit_order, req)
            await async_wait_for(
                "any(str(u.order.id) == str(order.id) for u in updates)",
                lambda: any(str(u.order.id) == str(order.id) for u in updates),
                10,
            )
            await asyncio.to_thread(ex.admin, "/streams/kill", {"which": "trading"})
            await async_wait_for(
                'ex.admin("/stats")["venue"]["stream_clients"] >= 1',
                lambda: ex.admin("/stats")["venue"]["stream_clients"] >= 1,
                15,
            )
            await asyncio.sleep(0.3)
            n = len(updates)
            await asyncio.to_thread(client.cancel_order_by_id, order.id)
            await async_wait_for("len(updates) > n", lambda: len(updates) > n, 10)
            assert updates[-1].event in ("canceled", "pending_cancel")
        finally:
            await _stop(ts, task)

    _run(main)


@pytest.mark.parametrize("path", ["/v2/iex", "/v1beta3/crypto/us"])
def test_malformed_frames_fault_does_not_stop_the_stream(
    module_exchange_clean: ExchangeProcess, path: str
) -> None:
    ex = module_exchange_clean
    ex.admin("/rate", {"msgs_per_s": 2000})

    async def main() -> None:
        got: list[Any] = []

        async def on_q(q: Any) -> None:
            got.append(q)

        stream: Any = (
            StockDataStream(ex.key_id, ex.secret, url_override=ex.ws_url + path)
            if path == "/v2/iex"
            else CryptoDataStream(ex.key_id, ex.secret, url_override=ex.ws_url + path)
        )
        stream.subscribe_quotes(on_q, "*")
        task = asyncio.ensure_future(stream._run_forever())
        try:
            await async_wait_for("len(got) >= 1", lambda: len(got) >= 1, 10)
            await asyncio.to_thread(ex.admin, "/datastream/malformed", {"count": 3})
            await async_wait_for(
                'ex.admin("/stats")["datastream"]["malformed_sent"] >= 3',
                lambda: ex.admin("/stats")["datastream"]["malformed_sent"] >= 3,
                10,
            )
            n = len(got)
            # The SDK drops the connection on an undecodable frame and reconnects; data flows again.
            await async_wait_for("len(got) > n + 3", lambda: len(got) > n + 3, 20)
        finally:
            await _stop(stream, task)

    _run(main)
