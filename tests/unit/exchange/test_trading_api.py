"""REST shapes of the trading routes via aiohttp TestServer, validated with alpaca-py's models."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from alpaca.trading.models import (
    AccountConfiguration,
    Asset,
    Calendar,
    Clock,
    ClosePositionResponse,
    Order,
    PortfolioHistory,
    Position,
    TradeAccount,
    TradeActivity,
    TradeUpdate,
)
from alpaca.trading.requests import CancelOrderResponse

from services.exchange.errors import ApiError
from services.exchange.http.responses import error_response
from services.exchange.http.trading_api import add_trading_routes

from .test_venue_fakes import Rig, make_rig


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Stands in for the server's error middleware (not part of the venue).
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)


def run(tmp_path: Path, body: Callable[[TestClient, Rig], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        rig = make_rig(tmp_path, **kw)
        rig.venue.engine.rng.random = lambda: 0.99  # type: ignore[method-assign]
        app = web.Application(middlewares=[errors])
        add_trading_routes(app, rig.venue)
        async with TestClient(TestServer(app)) as client:
            await rig.venue.start()
            try:
                await body(client, rig)
            finally:
                await rig.venue.close()

    asyncio.run(main())


async def post(client: TestClient, path: str, body: Any) -> tuple[int, Any]:
    resp = await client.post(path, data=json.dumps(body) if not isinstance(body, str) else body)
    return resp.status, await resp.json()


def test_account_order_position_shapes_parse_with_alpaca_models(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        acct = await (await c.get("/v2/account")).json()
        TradeAccount(**acct)
        assert acct["cash"] == "100000" and acct["status"] == "ACTIVE" and acct["last_equity"] == "100000"
        st, o = await post(
            c,
            "/v2/orders",
            {
                "symbol": "AAPL",
                "qty": 10.0,
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
                "client_order_id": "c-1",
            },
        )
        assert st == 200
        order = Order(**o)
        # Alpaca docs "Orders": the POST answer is the accepted order; fills follow on the stream.
        assert (
            order.status == "new" and o["order_class"] == "" and o["legs"] is None and o["filled_qty"] == "0"
        )
        assert o["created_at"].endswith("Z")
        await asyncio.sleep(0)  # one loop turn: the venue matches right after the answer
        o = await (await c.get(f"/v2/orders/{o['id']}")).json()
        assert o["status"] == "filled" and o["filled_qty"] == "10"
        positions = await (await c.get("/v2/positions")).json()
        Position(**positions[0])
        assert positions[0]["qty"] == "10" and positions[0]["avg_entry_price"] == "100.01"
        by_asset = await (await c.get(f"/v2/positions/{positions[0]['asset_id']}")).json()
        assert by_asset["symbol"] == "AAPL"
        one = await (await c.get(f"/v2/orders/{o['id']}")).json()
        assert Order(**one).id == order.id
        by_coid = await (
            await c.get("/v2/orders:by_client_order_id", params={"client_order_id": "c-1"})
        ).json()
        assert by_coid["id"] == o["id"]
        acts = await (await c.get("/v2/account/activities/FILL")).json()
        TradeActivity(**acts[0])
        assert acts[0]["order_id"] == o["id"] and acts[0]["type"] == "fill" and acts[0]["cum_qty"] == "10"
        AccountConfiguration(**await (await c.get("/v2/account/configurations")).json())
        hist = await (
            await c.get("/v2/account/portfolio/history", params={"period": "1D", "timeframe": "1Min"})
        ).json()
        PortfolioHistory(**hist)
        assert hist["equity"] == [99999.9] and hist["base_value"] == 99999.9  # mark 100.00 vs cost 100.01

    run(tmp_path, body)


def test_errors_are_alpaca_json_bodies(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        st, e = await post(c, "/v2/orders", "{not json")
        assert st == 400 and e["code"] == 40010000
        st, e = await post(
            c, "/v2/orders", '{"symbol":"AAPL","qty":NaN,"side":"buy","type":"market","time_in_force":"day"}'
        )
        assert st == 400 and "NaN" in e["message"]
        st, e = await post(
            c,
            "/v2/orders",
            {"symbol": "NOPE", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"},
        )
        assert (st, e["code"], e["message"]) == (422, 42210000, 'asset "NOPE" not found')
        resp = await c.get("/v2/positions/AAPL")
        assert resp.status == 404 and await resp.json() == {
            "code": 40410000,
            "message": "position does not exist",
        }
        resp = await c.get("/v2/assets/NOPE")
        assert resp.status == 404 and (await resp.json())["message"] == "asset not found for NOPE"
        resp = await c.get("/v2/orders/00000000-0000-4000-8000-000000000000")
        assert resp.status == 404 and (await resp.json())["message"] == "order not found"
        resp = await c.get("/v2/orders", params={"status": "weird"})
        assert resp.status == 422

    run(tmp_path, body)


def test_list_filters_nested_and_cancel_replace(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        base = {"symbol": "AAPL", "qty": 5.0, "side": "buy", "time_in_force": "gtc"}
        _, br = await post(
            c,
            "/v2/orders",
            {
                **base,
                "type": "limit",
                "limit_price": 95.0,
                "order_class": "bracket",
                "take_profit": {"limit_price": 110.0},
                "stop_loss": {"stop_price": 90.0},
            },
        )
        assert Order(**br).legs is not None and len(br["legs"]) == 2 and br["legs"][0]["status"] == "held"
        rig.clock.advance(seconds=1)
        _, lim = await post(
            c, "/v2/orders", {**base, "symbol": "MSFT", "type": "limit", "limit_price": 250.0}
        )
        flat = await (await c.get("/v2/orders", params={"status": "open"})).json()
        assert len(flat) == 4 and all(o["legs"] is None for o in flat) and flat[0]["id"] == lim["id"]
        nested = await (await c.get("/v2/orders", params={"status": "open", "nested": "True"})).json()
        assert [o["id"] for o in nested] == [lim["id"], br["id"]] and len(nested[1]["legs"]) == 2
        asc = await (
            await c.get(
                "/v2/orders",
                params={"nested": "true", "direction": "asc", "symbols": "MSFT,AAPL", "limit": "1"},
            )
        ).json()
        assert [o["id"] for o in asc] == [br["id"]]
        only = await (await c.get("/v2/orders", params={"symbols": "MSFT"})).json()
        assert [o["id"] for o in only] == [lim["id"]]
        resp = await c.patch(f"/v2/orders/{lim['id']}", data=json.dumps({"qty": 7, "limit_price": 251.0}))
        new = await resp.json()
        assert (
            resp.status == 200
            and Order(**new).replaces is not None
            and new["replaces"] == lim["id"]
            and new["qty"] == "7"
        )
        old = await (await c.get(f"/v2/orders/{lim['id']}")).json()
        assert old["status"] == "replaced" and old["replaced_by"] == new["id"]
        resp = await c.patch(f"/v2/orders/{lim['id']}", data=json.dumps({"qty": 8}))
        assert (
            resp.status == 422
            and (await resp.json())["message"] == "unable to replace order in current state"
        )
        resp = await c.delete(f"/v2/orders/{new['id']}")
        assert resp.status == 204 and await resp.read() == b""
        resp = await c.delete(f"/v2/orders/{new['id']}")
        assert resp.status == 422
        resp = await c.delete("/v2/orders")
        assert resp.status == 207
        cancel_all = await resp.json()
        assert {x["id"] for x in cancel_all} == {br["id"]}
        CancelOrderResponse(**cancel_all[0])
        closed = await (await c.get("/v2/orders", params={"status": "closed", "limit": "500"})).json()
        assert {o["status"] for o in closed} == {"canceled", "replaced"}

    run(tmp_path, body)


def test_close_positions_207_and_assets_clock_calendar(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        for sym, side in (("AAPL", "buy"), ("MSFT", "sell")):
            await post(
                c,
                "/v2/orders",
                {"symbol": sym, "qty": 10.0, "side": side, "type": "market", "time_in_force": "day"},
            )
        resp = await c.delete("/v2/positions/AAPL", params={"percentage": "50"})
        closing = await resp.json()
        assert resp.status == 200 and Order(**closing).qty == "5" and closing["side"] == "sell"
        await post(
            c,
            "/v2/orders",
            {
                "symbol": "AAPL",
                "qty": 5.0,
                "side": "sell",
                "type": "limit",
                "limit_price": 150.0,
                "time_in_force": "gtc",
            },
        )
        resp = await c.delete("/v2/positions", params={"cancel_orders": "False"})
        out = await resp.json()
        assert resp.status == 207
        by_sym = {x["symbol"]: x for x in out}
        assert by_sym["AAPL"]["status"] == 403 and by_sym["AAPL"]["body"]["held_for_orders"] == "5"
        assert by_sym["MSFT"]["status"] == 200 and by_sym["MSFT"]["body"]["side"] == "buy"
        for x in out:
            ClosePositionResponse(**x)
        resp = await c.delete("/v2/positions", params={"cancel_orders": "True"})
        assert [x["status"] for x in await resp.json()] == [200]
        assert await (await c.get("/v2/positions")).json() == []
        assets = await (await c.get("/v2/assets", params={"asset_class": "crypto"})).json()
        assert [a["symbol"] for a in assets] == ["BTC/USD"] and Asset(**assets[0]).fractionable
        btc = await (await c.get("/v2/assets/BTC/USD")).json()
        assert btc["class"] == "crypto"
        clock = await (await c.get("/v2/clock")).json()
        assert Clock(**clock).is_open
        cal = await (await c.get("/v2/calendar", params={"start": "2025-07-01", "end": "2025-07-07"})).json()
        days = [Calendar(**d) for d in cal]
        assert [d["date"] for d in cal] == ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-07"]
        assert cal[2]["close"] == "13:00" and days[0].open.hour == 9

    run(tmp_path, body)


def test_trade_updates_stream_handshake_and_updates(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        bad = await c.ws_connect("/stream")
        await bad.send_str(
            json.dumps({"action": "authenticate", "data": {"key_id": "key", "secret_key": "no"}})
        )
        msg = await bad.receive()
        assert json.loads(msg.data)["data"]["status"] == "unauthorized"
        assert (await bad.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)

        ws = await c.ws_connect("/stream")
        await ws.send_str(
            json.dumps({"action": "authenticate", "data": {"key_id": "key", "secret_key": "secret"}})
        )
        auth = await ws.receive()
        assert auth.type == WSMsgType.BINARY
        assert json.loads(auth.data) == {
            "stream": "authorization",
            "data": {"action": "authenticate", "status": "authorized"},
        }
        await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads((await ws.receive()).data) == {
            "stream": "listening",
            "data": {"streams": ["trade_updates"]},
        }
        await post(
            c,
            "/v2/orders",
            {"symbol": "AAPL", "qty": 2.0, "side": "buy", "type": "market", "time_in_force": "day"},
        )
        got = [json.loads((await ws.receive(timeout=5)).data) for _ in range(2)]
        assert [g["data"]["event"] for g in got] == ["new", "fill"]
        upd = TradeUpdate(**got[1]["data"])
        assert upd.price == 100.01 and upd.qty == 2 and upd.position_qty == 2 and upd.execution_id is not None

        # Faults: drop one, duplicate one, then kill after one.
        rig.venue.faults.drop_next = 1
        rig.venue.faults.duplicate_next = 1
        await post(
            c,
            "/v2/orders",
            {"symbol": "AAPL", "qty": 1.0, "side": "buy", "type": "market", "time_in_force": "day"},
        )
        got = [json.loads((await ws.receive(timeout=5)).data)["data"]["event"] for _ in range(2)]
        assert got == ["fill", "fill"]  # 'new' dropped, 'fill' duplicated
        rig.venue.faults.reorder_next = 2
        await post(
            c,
            "/v2/orders",
            {"symbol": "AAPL", "qty": 1.0, "side": "buy", "type": "market", "time_in_force": "day"},
        )
        got = [json.loads((await ws.receive(timeout=5)).data)["data"]["event"] for _ in range(2)]
        assert got == ["fill", "new"]
        assert await rig.venue.kill_streams() == 1
        closed = await ws.receive(timeout=5)
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert rig.venue.stats()["updates_published"] >= 6

    run(tmp_path, body)


def test_alternate_auth_shape_and_kill_after(tmp_path: Path) -> None:
    async def body(c: TestClient, rig: Rig) -> None:
        ws = await c.ws_connect("/stream")
        await ws.send_str(json.dumps({"action": "auth", "key": "key", "secret": "secret"}))
        assert json.loads((await ws.receive()).data)["data"]["status"] == "authorized"
        await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        await ws.receive()
        rig.venue.faults.kill_after = 1
        await post(
            c,
            "/v2/orders",
            {"symbol": "AAPL", "qty": 1.0, "side": "buy", "type": "market", "time_in_force": "day"},
        )
        first = await ws.receive(timeout=5)
        assert json.loads(first.data)["data"]["event"] == "new"
        closed = await ws.receive(timeout=5)
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)

    run(tmp_path, body)
