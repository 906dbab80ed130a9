"""build_app in-process (aiohttp TestServer) with a stand-in venue: middlewares, errors, pagination,
and the data stream protocol (slow client, kill-after) with a fake clock driving the simulator."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.exchange.http.auth import ApiKey
from services.exchange.http.server import EXCHANGE, ExchangeConfig, build_app
from tests.support.polling import async_wait_for

KEY = ApiKey("PKUNIT", "unit-secret")
H = {"APCA-API-KEY-ID": KEY.key_id, "APCA-API-SECRET-KEY": KEY.secret}


@dataclass
class _Faults:
    drop_next: int = 0
    duplicate_next: int = 0
    reorder_next: int = 0
    kill_after: int | None = None


class StandInVenue:
    """Implements the server's Venue protocol; one route that raises to exercise the 500 path."""

    def __init__(self, **kwargs: Any) -> None:
        self.faults = _Faults()
        self.quotes = 0
        self.paused = False

    def add_routes(self, app: web.Application) -> None:
        async def boom(request: web.Request) -> web.Response:
            raise RuntimeError("bug")

        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"size": len(await request.read())})

        app.router.add_get("/v2/boom", boom)
        app.router.add_post("/v2/echo", echo)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def on_quote(self, symbol: str) -> None:
        self.quotes += 1

    def on_trade(self, symbol: str, price: Any) -> None: ...

    def wants_trades(self, symbol: str) -> bool:
        return False

    def set_matching_paused(self, paused: bool) -> None:
        self.paused = paused

    async def kill_streams(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"quotes": self.quotes}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 5, 15, 0, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def run_app(
    tmp: Path, body: Callable[[TestClient, web.Application, Clock], Awaitable[None]], **cfg: Any
) -> None:
    clock = Clock()
    config = ExchangeConfig(data_dir=tmp, key=KEY, seed=1, **({"admin": True, "rate_limit": 1000} | cfg))
    app = build_app(
        config, venue_factory=StandInVenue, venue_routes=lambda app, v: v.add_routes(app), clock=clock
    )

    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await body(client, app, clock)

    asyncio.run(main())


def step(app: web.Application, clock: Clock, seconds: float) -> None:
    clock.now += timedelta(seconds=seconds)
    app[EXCHANGE].market.step(int(clock.now.timestamp() * 1e6) * 1000)


@pytest.mark.expected_log(r"^services\.exchange\.http\.server: internal error on GET")
def test_errors_are_always_alpaca_json(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        r = await c.get("/v2/stocks/bars?symbols=AAPL&timeframe=1Min")
        assert r.status == 401 and await r.json() == {
            "code": 40110000,
            "message": "request is not authorized",
        }
        basic = "Basic " + base64.b64encode(f"{KEY.key_id}:{KEY.secret}".encode()).decode()
        r = await c.get("/v2/stocks/bars?symbols=AAPL&timeframe=1Min", headers={"Authorization": basic})
        assert r.status == 200 and "X-RateLimit-Remaining" in r.headers
        r = await c.get("/v1beta3/crypto/us/latest/trades?symbols=BTC/USD")  # keyless crypto data
        assert r.status == 200 and "BTC/USD" in (await r.json())["trades"]
        for method, path, status in (
            ("GET", "/nope", 404),
            ("DELETE", "/v2/stocks/bars", 405),
            ("GET", "/v2/boom", 500),
        ):
            r = await c.request(method, path, headers=H)
            assert r.status == status and r.content_type == "application/json"
            assert set(await r.json()) >= {"code", "message"}
        r = await c.post("/v2/echo", data=io.BytesIO(b"x" * (2 << 20)), headers=H)
        assert r.status == 413 and (await r.json())["code"] == 41310000
        assert app[EXCHANGE].errors["internal_errors"] == 1

    run_app(tmp_path, body)


def test_pages_join_to_the_single_answer_in_both_directions(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        q = "symbols=MSFT,AAPL&timeframe=5Min&start=2024-03-01T00:00:00Z&end=2024-03-05T14:00:00%2B00:00"
        for sort in ("asc", "desc"):
            whole = await (await c.get(f"/v2/stocks/bars?{q}&limit=10000&sort={sort}", headers=H)).json()
            assert whole["next_page_token"] is None
            pages: dict[str, list[Any]] = {}
            token = None
            for _ in range(50):
                url = f"/v2/stocks/bars?{q}&limit=37&sort={sort}" + (f"&page_token={token}" if token else "")
                page = await (await c.get(url, headers=H)).json()
                for sym, rows in page["bars"].items():
                    pages.setdefault(sym, []).extend(rows)
                token = page["next_page_token"]
                if token is None:
                    break
            assert pages == whole["bars"]
            ts = [b["t"] for b in whole["bars"]["AAPL"]]
            assert ts == sorted(ts, reverse=sort == "desc")
        r = await c.get(f"/v2/stocks/bars?{q}&page_token=!!!", headers=H)
        assert r.status == 400

    run_app(tmp_path, body)


async def _auth(ws: Any) -> None:
    assert msgpack.unpackb(await ws.receive_bytes())[0]["msg"] == "connected"
    await ws.send_bytes(msgpack.packb({"action": "auth", "key": KEY.key_id, "secret": KEY.secret}))
    assert msgpack.unpackb(await ws.receive_bytes())[0]["msg"] == "authenticated"


def test_stream_fan_out_kill_after_and_slow_client(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        hub = app[EXCHANGE].streams
        hub.flush_interval = 0  # each step is sent as it is made: the test steps a fake clock
        headers = {"Content-Type": "application/msgpack"}
        ws = await c.ws_connect("/v2/iex", headers=headers)
        await _auth(ws)
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "trades": ["AAPL"], "quotes": ["*"]}))
        assert msgpack.unpackb(await ws.receive_bytes())[0]["T"] == "subscription"
        step(app, clock, 0.5)
        frame = msgpack.unpackb(await ws.receive_bytes())
        assert frame and all(m["T"] == "q" or (m["T"] == "t" and m["S"] == "AAPL") for m in frame)
        assert all(isinstance(m["t"], msgpack.Timestamp) for m in frame)
        # Slow client: a tiny queue that is never drained gets 407 and is closed.
        hub.queue_frames, hub.slow_drops, hub.frame_messages = 2, 3, 1
        ws._response.connection.transport.pause_reading()  # the client stops reading
        for _ in range(40):
            step(app, clock, 0.05)
            await asyncio.sleep(0)
        assert hub.stats["dropped_frames"] >= 3 and hub.stats["slow_clients"] == 1
        ws._response.connection.transport.resume_reading()
        await ws.close()
        hub.queue_frames, hub.slow_drops, hub.frame_messages = 512, 2000, 1000
        # kill_after: the next connection is closed once N messages went out.
        ws2 = await c.ws_connect("/v2/iex", headers=headers)
        await _auth(ws2)
        await ws2.send_bytes(msgpack.packb({"action": "subscribe", "quotes": ["*"]}))
        await ws2.receive_bytes()
        hub.kill_after(5)
        step(app, clock, 1.0)
        closed = False
        for _ in range(100):
            msg = await ws2.receive()
            if msg.type.name in ("CLOSE", "CLOSED", "CLOSING"):
                closed = True
                break
        await async_wait_for("the hub killed the socket", lambda: hub.stats["killed"], 1, every=0.01)
        assert closed and hub.stats["killed"] == 1

    run_app(tmp_path, body)


def test_admin_state_and_venue_wiring(tmp_path: Path) -> None:
    async def body(c: TestClient, app: web.Application, clock: Clock) -> None:
        r = await c.post("/_heron/admin/matching", json={"paused": True}, headers=H)
        assert r.status == 200
        venue = app[EXCHANGE].venue
        assert venue.paused  # type: ignore[attr-defined]
        r = await c.post("/_heron/admin/trade-updates", json={"duplicate_next": 3}, headers=H)
        assert (await r.json())["trade_updates"]["duplicate_next"] == 3
        step(app, clock, 0.5)
        assert venue.quotes > 0  # type: ignore[attr-defined]
        r = await c.post("/_heron/admin/rate", json={"msgs_per_s": 10**9}, headers=H)
        assert r.status == 400

    run_app(tmp_path, body)


def test_garble_makes_one_number_of_an_order_answer_unreadable_and_spares_errors() -> None:
    """The chaos fault for "a broker answer that cannot be read": the order the request made stands,
    only its answer carries a number Heron cannot parse (NaN, Infinity, a wrong type)."""
    import json
    import random

    from services.exchange.http.admin import GARBLE_FIELDS, garble_body

    order = {
        "id": "o-1",
        "client_order_id": "hr-1",
        "qty": "3",
        "filled_qty": "0",
        "notional": None,
        "filled_avg_price": None,
        "limit_price": "187.5",
        "status": "accepted",
    }
    rng = random.Random(3)
    for _ in range(20):
        out = garble_body(web.json_response(order), rng)
        assert out is not None and isinstance(out.body, bytes)
        changed = {k for k, v in json.loads(out.body).items() if order[k] != v}
        assert len(changed) == 1 and changed <= set(GARBLE_FIELDS)
    assert garble_body(web.json_response({"code": 40310000, "message": "no"}, status=403), rng) is None
    assert garble_body(web.json_response([]), rng) is None
