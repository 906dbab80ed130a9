"""The local exchange binds loopback, requires its keys everywhere it should, and keeps admin off.

The REST checks run the real application in-process on 127.0.0.1 (an aiohttp runner); binding and
argument checks run ``python -m services.exchange`` itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.exchange.__main__ import parse_config
from services.exchange.http.admin import PREFIX as ADMIN_PREFIX
from services.exchange.http.auth import KEYLESS_PREFIX, WEBSOCKET_PATHS, ApiKey
from services.exchange.http.server import ExchangeConfig, build_app
from tests.security.support import REPO

KEY = ApiKey("PKEXPOSURETEST000001", "exposure-secret-0123456789abcdefghijklmn")
WRONG = {"APCA-API-KEY-ID": KEY.key_id, "APCA-API-SECRET-KEY": "not-the-secret"}
RIGHT = {"APCA-API-KEY-ID": KEY.key_id, "APCA-API-SECRET-KEY": KEY.secret}
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}


@asynccontextmanager
async def exchange(tmp_path: Path, *, admin: bool) -> AsyncIterator[tuple[str, web.Application]]:
    config = ExchangeConfig(data_dir=tmp_path, key=KEY, always_open=True, admin=admin, rate=50, rate_limit=0)
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()


def _concrete(path: str) -> str:
    """A route template with its {placeholders} filled in."""
    samples = {"symbol": "AAPL", "order_id": "00000000-0000-4000-8000-000000000000", "loc": "us",
               "activity_type": "FILL"}  # fmt: skip
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: samples.get(m.group(1), "x"), path)


def _rest_routes(app: web.Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*") or path in WEBSOCKET_PATHS:
            continue
        routes.append((route.method, _concrete(path)))
    return sorted(set(routes))


def test_every_rest_route_but_keyless_crypto_data_needs_the_keys(tmp_path: Path) -> None:
    async def go() -> None:
        async with exchange(tmp_path, admin=True) as (url, app), aiohttp.ClientSession() as http:
            routes = _rest_routes(app)
            trading = [r for r in routes if r[1].startswith("/v2/") and not r[1].startswith("/v2/stocks")]
            assert len(trading) >= 20 and any(p.startswith(ADMIN_PREFIX) for _, p in routes)
            for method, path in routes:
                for headers in ({}, WRONG, {"Authorization": "Basic bm90OnJpZ2h0"}):
                    if path.startswith(KEYLESS_PREFIX) and not headers:
                        continue
                    async with http.request(method, url + path, headers=headers, json={}) as resp:
                        body = await resp.json(content_type=None)
                        assert (resp.status, body) == (401, UNAUTHORIZED), (method, path, headers)
            # Keyless crypto market data, as on Alpaca.
            crypto = [p for m, p in routes if m == "GET" and p.startswith(KEYLESS_PREFIX)]
            assert crypto
            async with http.get(url + "/v1beta3/crypto/us/latest/quotes?symbols=BTC/USD") as resp:
                assert resp.status == 200
            async with http.get(url + "/v2/account", headers=RIGHT) as resp:
                assert resp.status == 200

    asyncio.run(go())


def test_streams_refuse_wrong_keys(tmp_path: Path) -> None:
    async def go() -> None:
        async with exchange(tmp_path, admin=False) as (url, _), aiohttp.ClientSession() as http:
            ws_url = url.replace("http", "ws")
            async with http.ws_connect(ws_url + "/v2/iex") as ws:
                await ws.receive(timeout=5)  # the greeting
                await ws.send_str(json.dumps({"action": "auth", "key": KEY.key_id, "secret": "nope"}))
                reply = json.loads((await ws.receive(timeout=5)).data)
                assert reply[0]["T"] == "error" and reply[0]["code"] in (401, 402)
            async with http.ws_connect(ws_url + "/stream") as ws:
                auth = {"action": "authenticate", "data": {"key_id": KEY.key_id, "secret_key": "nope"}}
                await ws.send_str(json.dumps(auth))
                msg = await ws.receive(timeout=5)
                text = msg.data.decode() if isinstance(msg.data, bytes) else str(msg.data)
                assert json.loads(text)["data"]["status"] == "unauthorized"
                await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
                msg = await ws.receive(timeout=5)
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    text = msg.data.decode() if isinstance(msg.data, bytes) else str(msg.data)
                    assert "listening" not in json.loads(text)["stream"]

    asyncio.run(go())


def test_admin_api_is_off_by_default_and_needs_the_keys_when_on(tmp_path: Path) -> None:
    async def status(admin: bool, headers: dict[str, str], method: str = "GET", path: str = "/faults") -> Any:
        async with (
            exchange(tmp_path / str(admin), admin=admin) as (url, _),
            aiohttp.ClientSession() as http,
            http.request(method, url + ADMIN_PREFIX + path, headers=headers, json={}) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    assert asyncio.run(status(False, RIGHT))[0] == 404
    assert asyncio.run(status(False, RIGHT, "POST", "/rest/429"))[0] == 404
    assert asyncio.run(status(True, {})) == (401, UNAUTHORIZED)
    assert asyncio.run(status(True, WRONG, "POST", "/reset")) == (401, UNAUTHORIZED)
    assert asyncio.run(status(True, RIGHT))[0] == 200
    assert parse_config(["--data-dir", str(tmp_path / "d")])[0].admin is False


def test_binds_loopback_by_default_and_refuses_other_hosts_without_the_override(tmp_path: Path) -> None:
    _, host, *_ = parse_config(["--data-dir", str(tmp_path / "a")])
    assert host == "127.0.0.1"
    for bad in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(SystemExit) as exited:
            parse_config(["--data-dir", str(tmp_path / "b"), "--host", bad])
        assert exited.value.code == 2
    _, host, *_ = parse_config(["--data-dir", str(tmp_path / "c"), "--host", "0.0.0.0", "--allow-remote"])
    assert host == "0.0.0.0"
    refused = subprocess.run(
        [sys.executable, "-m", "services.exchange", "--data-dir", str(tmp_path / "e"), "--host", "0.0.0.0"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2 and "refusing to bind non-loopback host" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_default_exchange_process_listens_on_loopback_only(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.exchange", "--data-dir", str(tmp_path), "--rate", "10"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        listening = _listening_addresses(port)
        assert listening and all(addr.startswith("127.") for addr in listening), listening
        # Generated keys went to a 0600 file, not to the output.
        keys = json.loads((tmp_path / "keys.json").read_text())
        assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
        assert keys["secret"] not in line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert keys["secret"] not in err


def _listening_addresses(port: int) -> list[str]:
    """IPv4 addresses with a LISTEN socket on ``port`` (from /proc/net/tcp; IPv6 wildcard counts too)."""
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            fields = row.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            if v6:
                found.append("::" if set(addr_hex) == {"0"} else f"v6:{addr_hex}")
            else:
                found.append(".".join(str(int(addr_hex[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found
