"""Local exchange throughput: orders through real alpaca-py, and market-data messages to one client.

``exchange_orders_per_s``: 500 limit orders (far from the market, so they rest) submitted from 4
threads with alpaca-py's TradingClient over loopback, each acknowledged (HTTP 200 + parsed Order).
``exchange_stream_msgs_per_s``: trades+quotes for 500 symbols with the simulator in storm mode,
received and msgpack-decoded (Timestamp ext objects, as alpaca-py decodes) by ONE websocket client,
counted on the client side over 5 s. The exchange runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import msgpack

from services.exchange.universe import synthetic_tickers
from tests.support.exchange import ExchangeProcess

ORDERS = 500
THREADS = 4
STREAM_SECONDS = 5.0
STORM_RATE = 150_000


def _orders_per_s(ex: ExchangeProcess) -> float:
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    local = threading.local()

    def client() -> TradingClient:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
            c._retry = 0
        return c

    req = LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00
    )

    def submit(_: int) -> str:
        return str(client().submit_order(req).id)  # type: ignore[union-attr]

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(submit, range(20)))  # warm up connections
        started = time.perf_counter()
        ids = list(pool.map(submit, range(ORDERS)))
        elapsed = time.perf_counter() - started
    assert len(set(ids)) == ORDERS
    return ORDERS / elapsed


async def _stream_msgs_per_s(ex: ExchangeProcess) -> float:
    received = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(
        f"{ex.ws_url}/v2/sip", headers={"Content-Type": "application/msgpack"}, max_msg_size=0
    ) as ws:
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": ex.key_id, "secret": ex.secret}))
        await ws.receive_bytes()
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "trades": ["*"], "quotes": ["*"]}))
        await ws.receive_bytes()
        warm_until = time.perf_counter() + 1.0
        while time.perf_counter() < warm_until:
            await ws.receive_bytes()
        started = time.perf_counter()
        end = started + STREAM_SECONDS
        while True:
            frame = await ws.receive_bytes()
            batch: list[dict[str, Any]] = msgpack.unpackb(frame)
            received += sum(1 for m in batch if m["T"] in ("t", "q"))
            now = time.perf_counter()
            if now >= end:
                return received / (now - started)
    return 0.0


def run() -> dict[str, Any]:
    with ExchangeProcess.start(extra_args=["--rate", "0"]) as ex:
        orders = _orders_per_s(ex)
    symbols = synthetic_tickers(500)
    with ExchangeProcess.start(extra_args=["--rate", str(STORM_RATE), "--symbols", *symbols[:486]]) as ex:
        msgs = asyncio.run(_stream_msgs_per_s(ex))
        stats = ex.admin("/stats")["datastream"]
    return {
        "exchange_orders_per_s": {
            "value": round(orders, 1),
            "unit": "orders/s",
            "goal": ">= 200 (500 limit orders, 4 threads, real alpaca-py)",
        },
        "exchange_stream_msgs_per_s": {
            "value": round(msgs),
            "unit": "msgs/s",
            "goal": ">= 100000 to one msgpack client (500 symbols)",
            "dropped_frames": stats["dropped_frames"],
        },
    }


if __name__ == "__main__":
    print(run())
