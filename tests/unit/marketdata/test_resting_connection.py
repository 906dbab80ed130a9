"""A market-data connection rests between frames at idle (its socket is not read; the kernel keeps
what arrives) against a real websocket server speaking Alpaca's data-stream handshake: nothing sent
is lost, the newest quote reaches the loop thread in a frame, and a stop ends a rest at once (a
rest that outlived the stop held the socket's closing handshake for a second).

Handshake frames: Alpaca market-data stream docs ("WebSocket Stream",
docs.alpaca.markets/docs/streaming-market-data): ``[{"T":"success","msg":"connected"}]``, then
``[{"T":"success","msg":"authenticated"}]``; quotes as in the real-time stock data docs
(``T`` ``q``, ``S``, ``bp``, ``bs``, ``ap``, ``as``, ``t``), msgpack-encoded as the stream sends them
with ``Content-Type: application/msgpack``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from services.marketdata.datastream import DataConnection
from services.marketdata.pipeline import MarketDataBatch, MarketDataPipeline
from services.marketdata.streams import MarketDataThread
from tests.support.polling import async_wait_for

CONNECTED = [{"T": "success", "msg": "connected"}]
AUTHENTICATED = [{"T": "success", "msg": "authenticated"}]


def _quote(symbol: str, i: int) -> bytes:
    bid = 187 + i / 100
    t = msgpack.Timestamp.from_unix_nano(time.time_ns())
    return msgpack.packb([{"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 1, "ax": "V",
                           "ap": bid + 0.02, "as": 2, "c": ["R"], "z": "C", "t": t}])  # fmt: skip


class _Server:
    """Sends a quote every 5 ms while ``flowing`` is set: AAPL to the stock stream, BTC/USD to the
    crypto stream."""

    def __init__(self) -> None:
        self.sent = {"AAPL": 0, "BTC/USD": 0}
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(msgpack.packb(CONNECTED))
        await ws.recv()  # auth
        await ws.send(msgpack.packb(AUTHENTICATED))
        subscribe = msgpack.unpackb(await ws.recv())
        await ws.send(msgpack.packb([{"T": "subscription", "quotes": subscribe.get("quotes", [])}]))
        symbol = "BTC/USD" if "crypto" in ws.request.path else "AAPL"  # type: ignore[union-attr]
        try:
            while True:
                await self.flowing.wait()
                await ws.send(_quote(symbol, self.sent[symbol]))
                self.sent[symbol] += 1
                await asyncio.sleep(0.005)
        except ConnectionClosed:
            pass


async def _scenario() -> None:
    server = _Server()
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        pipeline = MarketDataPipeline()
        batches: list[MarketDataBatch] = []
        thread = MarketDataThread(pipeline, batches.append, lambda *a: None, frame_interval=0.08)
        conn, other = (
            DataConnection(channel, f"ws://127.0.0.1:{port}/{path}", "KEY", "SECRET", pipeline,
                           thread._state_to_main, data_timeout=10)
            for channel, path in (("stock", "v2/iex"), ("crypto", "v1beta3/crypto/us"))
        )  # fmt: skip
        thread.add(conn)
        thread.add(other)  # closed second at the stop, while the first's close runs
        thread.start()
        try:
            await thread.call(conn.update({"quotes": ["AAPL"]}, {}))
            await thread.call(other.update({"quotes": ["BTC/USD"]}, {}))
            await async_wait_for("the connection resting between frames", lambda: conn.rests >= 5)
            server.flowing.clear()
            sent = sum(server.sent.values())
            await async_wait_for("every quote sent handled", lambda: pipeline.messages == sent)
            assert other.rests > 0
            last = round(187 + (server.sent["AAPL"] - 1) / 100, 2)

            def newest_shown() -> Any:
                quotes = [b.quotes.get("AAPL") for b in batches]
                return [q for q in quotes if q is not None and round(q[0], 2) == last]

            await async_wait_for("the newest quote in a frame", newest_shown)
            server.flowing.set()  # data keeps coming while the stop runs
            await async_wait_for("resting again", lambda: conn.rests >= 10)
        finally:
            await thread.stop()
        assert thread._thread is not None and not thread._thread.is_alive()
        # every rest ended by the clock or the stop: a connection that rested again while the other
        # closed held its own close (which must read the server's answer) for REST_MAX_S
        assert (conn.rest_timeouts, other.rest_timeouts) == (0, 0)


def test_a_resting_connection_loses_nothing_and_a_stop_ends_its_rest() -> None:
    asyncio.run(_scenario())
