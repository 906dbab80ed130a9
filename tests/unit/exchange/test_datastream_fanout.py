"""Data-stream fan-out over the encoded batches (in-process server, fake clock driving the simulator):
each client gets exactly the messages its subscriptions select, in order, in frames of bounded size,
in msgpack or JSON; unsubscribing stops a channel; groups share one encoding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from services.exchange.http.auth import ApiKey
from services.exchange.http.datastream import to_json_frame
from services.exchange.http.server import EXCHANGE, ExchangeConfig, build_app
from services.exchange.market.encoding import Batch
from tests.support.polling import async_wait_for

KEY = ApiKey("PKFANOUT", "fanout-secret")
MSGPACK = {"Content-Type": "application/msgpack"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)  # a Tuesday, NYSE open

    def __call__(self) -> datetime:
        return self.now


class StubVenue:
    """The smallest Venue the server accepts (this test is about market data)."""

    def __init__(self, **kwargs: Any) -> None:
        self.faults: Any = None

    def add_routes(self, app: web.Application) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def on_quote(self, symbol: str) -> None: ...

    def on_trade(self, symbol: str, price: Any) -> None: ...

    def wants_trades(self, symbol: str) -> bool:
        return False

    def set_matching_paused(self, paused: bool) -> None: ...

    def set_cancel_delay(self, seconds: float) -> None: ...

    def set_replace_race(self, count: int) -> None: ...

    async def kill_streams(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {}


def run_app(tmp: Path, body: Callable[[TestClient, web.Application, Clock], Awaitable[None]]) -> None:
    clock = Clock()
    app = build_app(
        ExchangeConfig(data_dir=tmp, key=KEY, seed=2, rate=400.0),
        venue_factory=StubVenue,
        venue_routes=lambda app, v: v.add_routes(app),
        clock=clock,
    )

    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await body(client, app, clock)

    asyncio.run(main())


def step(app: web.Application, clock: Clock, seconds: float) -> Batch:
    clock.now += timedelta(seconds=seconds)
    batch: Batch = app[EXCHANGE].market.step(int(clock.now.timestamp() * 1e6) * 1000)
    return batch


def decode(data: bytes | str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data)
    return out


async def connect(c: TestClient, path: str, subscribe: dict[str, Any], *, binary: bool = True) -> Any:
    ws = await c.ws_connect(path, headers=MSGPACK if binary else {})

    async def send(obj: dict[str, Any]) -> None:
        await (ws.send_bytes(msgpack.packb(obj)) if binary else ws.send_str(json.dumps(obj)))

    assert decode((await ws.receive()).data)[0]["msg"] == "connected"
    await send({"action": "auth", "key": KEY.key_id, "secret": KEY.secret})
    assert decode((await ws.receive()).data)[0]["msg"] == "authenticated"
    await send({"action": "subscribe", **subscribe})
    assert decode((await ws.receive()).data)[0]["T"] == "subscription"
    return ws


async def receive(ws: Any, count: int, max_frame: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        msg = await ws.receive(timeout=10)
        assert msg.type in (WSMsgType.BINARY, WSMsgType.TEXT), msg
        frame = decode(msg.data)
        assert 0 < len(frame) <= max_frame
        got.extend(frame)
    assert len(got) == count
    return got


def as_json(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(to_json_frame(msgpack.packb([m])))[0]
    return out


def test_each_client_gets_exactly_its_selection_in_order(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        hub = app[EXCHANGE].streams
        hub.frame_messages = 50
        stock_subs = {"trades": ["AAPL", "MSFT"], "quotes": ["*"], "bars": ["AAPL"], "dailyBars": ["*"]}
        a = await connect(c, "/v2/iex", stock_subs)
        b = await connect(c, "/v2/sip", stock_subs, binary=False)
        x = await connect(c, "/v1beta3/crypto/us", {"trades": ["*"], "orderbooks": ["BTC/USD"]})
        sent: list[dict[str, Any]] = []
        for _ in range(60):  # across a minute boundary: bars and daily bars too
            sent.extend(step(app, clock, 1.0).messages())
        crypto = {s for s, i in app[EXCHANGE].universe.items() if i.is_crypto}

        def wanted_stock(m: dict[str, Any]) -> bool:
            return m["S"] not in crypto and (
                m["T"] in ("q", "d")
                or (m["T"] == "t" and m["S"] in ("AAPL", "MSFT"))
                or (m["T"] == "b" and m["S"] == "AAPL")
            )

        want_a = [m for m in sent if wanted_stock(m)]
        want_x = [
            m for m in sent if m["S"] in crypto and (m["T"] == "t" or (m["T"] == "o" and m["S"] == "BTC/USD"))
        ]
        assert {m["T"] for m in want_a} == {"t", "q", "b", "d"} and {m["T"] for m in want_x} == {"t", "o"}
        assert await receive(a, len(want_a), 50) == want_a
        assert await receive(b, len(want_a), 50) == [as_json(m) for m in want_a]
        assert await receive(x, len(want_x), 50) == want_x
        # iex and sip with the same subscriptions but different encodings are two groups.
        assert hub.stats["messages"] == 2 * len(want_a) + len(want_x)
        for ws in (a, b, x):
            await ws.close()

    run_app(tmp_path, body)


def test_unsubscribe_stops_a_channel(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        subs = {"trades": ["*"], "quotes": ["AAPL"]}
        a = await connect(c, "/v2/iex", subs)
        b = await connect(c, "/v2/sip", subs)
        sent = step(app, clock, 2.0).messages()
        want = [
            m for m in sent if "/" not in m["S"] and (m["T"] == "t" or (m["T"] == "q" and m["S"] == "AAPL"))
        ]
        assert await receive(a, len(want), 1000) == want
        assert await receive(b, len(want), 1000) == want
        await a.send_bytes(msgpack.packb({"action": "unsubscribe", "trades": ["*"]}))
        reply = msgpack.unpackb(await a.receive_bytes())[0]
        assert reply["T"] == "subscription" and reply["trades"] == [] and reply["quotes"] == ["AAPL"]
        sent = step(app, clock, 2.0).messages()
        got = await receive(a, sum(1 for m in sent if m["T"] == "q" and m["S"] == "AAPL"), 1000)
        assert got and all(m["T"] == "q" and m["S"] == "AAPL" for m in got)
        for ws in (a, b):
            await ws.close()

    run_app(tmp_path, body)


def test_identical_subscriptions_share_one_encoded_frame(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        hub = app[EXCHANGE].streams
        a = await connect(c, "/v2/iex", {"quotes": ["*"]})
        b = await connect(c, "/v2/sip", {"quotes": ["*"]})
        queued: list[tuple[str, Any]] = []
        enqueue = hub._enqueue

        def spy(client: Any, frame: bytes | str) -> None:
            queued.append((client.path, frame))
            enqueue(client, frame)

        hub._enqueue = spy  # type: ignore[method-assign]
        step(app, clock, 1.0)
        await async_wait_for("the step's frames queued", lambda: queued)
        iex = [f for p, f in queued if p == "/v2/iex"]
        sip = [f for p, f in queued if p == "/v2/sip"]
        assert iex and len(iex) == len(sip) and all(f is g for f, g in zip(iex, sip, strict=True))
        for ws in (a, b):
            await ws.close()

    run_app(tmp_path, body)


def test_steps_within_a_flush_interval_go_out_as_one_frame(tmp_path: Path) -> None:
    """The simulator steps every 20 ms; the hub sends what they made at most every 50 ms, joined in
    order (a pace of the local exchange's own: Alpaca sends as events happen), so each client
    decodes half the frames and no message waits more than 50 ms."""

    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        hub = app[EXCHANGE].streams
        assert hub.flush_interval == 0.05
        a = await connect(c, "/v2/iex", {"quotes": ["*"], "trades": ["*"]})
        sent: list[dict[str, Any]] = []
        frames_before = hub.stats["frames"]
        for _ in range(3):  # three 20-ms steps, made back to back
            sent.extend(m for m in step(app, clock, 0.02).messages() if "/" not in m["S"])
        await async_wait_for("the joined frame", lambda: hub.stats["frames"] > frames_before)
        assert hub.stats["frames"] == frames_before + 1
        frame = decode((await a.receive(timeout=10)).data)
        assert frame == sent and len(sent) > 1
        await a.close()

    run_app(tmp_path, body)
