"""Hypothesis over request bodies and query parameters: always a 4xx with Alpaca's JSON, never a 500.

The whole exchange (real venue included) runs in-process on a background event loop; requests go
over loopback with urllib (no SDK, no retries) so malformed bodies reach the server unchanged.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.exchange.http.auth import ApiKey
from services.exchange.http.server import EXCHANGE, ExchangeConfig, build_app

KEY = ApiKey("PKFUZZ", "fuzz-secret")
H = {"APCA-API-KEY-ID": KEY.key_id, "APCA-API-SECRET-KEY": KEY.secret}


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = build_app(
            ExchangeConfig(data_dir=data_dir, key=KEY, seed=3, rate_limit=0, always_open=True, rate=50)
        )
        self.runner = web.AppRunner(self.app)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method=method,
            headers={**H, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        return status, (json.loads(raw) if raw else None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("fuzz"))
    yield s
    s.stop()


def _check(status: int, body: Any) -> None:
    assert status < 500, body
    if status >= 400:
        assert (
            isinstance(body, dict)
            and isinstance(body.get("code"), int)
            and isinstance(body.get("message"), str)
        )


numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1", "-1", "0", "NaN", "inf", "1e400", "abc", "", " 2 ", "0.0000000001"]),
)
anything = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def order_bodies(enum_values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "symbol": st.one_of(
                st.sampled_from(["AAPL", "BTC/USD", "HTBX", "ZZZZ", "", "aapl", "BTCUSD"]), anything
            ),
            "qty": numbers,
            "notional": numbers,
            "limit_price": numbers,
            "stop_price": numbers,
            "trail_percent": numbers,
            "trail_price": numbers,
            "side": st.one_of(st.sampled_from(["buy", "sell", "BUY", "hold"]), enum_values),
            "type": st.one_of(
                st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop", "x"]), enum_values
            ),
            "time_in_force": st.one_of(
                st.sampled_from(["day", "gtc", "ioc", "fok", "opg", "cls", "week"]), enum_values
            ),
            "order_class": st.one_of(
                st.sampled_from(["simple", "bracket", "oco", "oto", "mleg", ""]), enum_values
            ),
            "take_profit": anything,
            "stop_loss": anything,
            "extended_hours": anything,
            "client_order_id": st.one_of(st.text(max_size=60), anything),
        },
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(order_bodies(st.text(max_size=12)), anything))
def test_order_bodies_never_500(server: Server, body: Any) -> None:
    try:
        raw = json.dumps(body).encode()
    except ValueError:
        raw = repr(body).encode()
    _check(*server.call("POST", "/v2/orders", raw))


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=order_bodies(anything))
def test_order_bodies_with_non_string_enums_never_500(server: Server, body: Any) -> None:
    _check(*server.call("POST", "/v2/orders", json.dumps(body, default=str).encode()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"{", b"[]", b"null", b'{"qty": NaN}', b'{"symbol": "AAPL", "qty": 1e999}']),
    )
)
def test_malformed_json_never_500(server: Server, raw: bytes) -> None:
    _check(*server.call("POST", "/v2/orders", raw))
    _check(*server.call("PATCH", "/v2/orders/00000000-0000-4000-8000-000000000000", raw))


params = st.dictionaries(
    st.sampled_from(
        [
            "symbols",
            "timeframe",
            "start",
            "end",
            "limit",
            "sort",
            "page_token",
            "feed",
            "adjustment",
            "markets",
            "time",
            "timezone",
            "asset_class",
        ]
    ),
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            ["AAPL", "1Min", "2024-01-02T00:00:00+00:00", "-5", "99999999999", "desc", "Z", "1Day", "BTC/USD"]
        ),
    ),
    max_size=6,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        [
            "/v2/stocks/bars",
            "/v2/stocks/trades",
            "/v2/stocks/quotes",
            "/v2/stocks/snapshots",
            "/v2/stocks/trades/latest",
            "/v1beta3/crypto/us/bars",
            "/v1beta3/crypto/us/quotes",
            "/v1beta3/crypto/us/latest/orderbooks",
            "/v2/orders",
            "/v2/positions/AAPL",
            "/v2/account/portfolio/history",
            "/v2/calendar",
            "/v2/assets",
            "/v2/stocks/AAPL/trades",
            "/v2/stocks/AAPL/quotes",
            "/v2/stocks/AAPL/bars",
            "/v2/stocks/AAPL/trades/latest",
            "/v2/stocks/AAPL/snapshot",
            "/v3/clock",
            "/v3/calendar/NYSE",
        ]
    ),
    query=params,
)
def test_query_parameters_never_500(server: Server, path: str, query: dict[str, str]) -> None:
    ticks = ("/v2/stocks/t", "/v2/stocks/q", "/v2/stocks/AAPL/t", "/v2/stocks/AAPL/q")
    if "start" in query and "end" not in query and path.startswith(ticks):
        query["end"] = query["start"]  # keep tick ranges small: the point is parsing, not volume
    _check(*server.call("GET", path + "?" + urllib.parse.urlencode(query)))


def test_oversized_body_is_413_json(server: Server) -> None:
    before = server.app[EXCHANGE].errors["internal_errors"]
    status, body = server.call("POST", "/v2/orders", b"{" + b" " * (2 << 20) + b"}")
    assert status == 413 and body["code"] == 41310000
    assert server.app[EXCHANGE].errors["internal_errors"] == before
