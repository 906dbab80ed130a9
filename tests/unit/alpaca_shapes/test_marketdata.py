"""Alpaca market-data messages through Heron's decoding, quote book, candles and history service.

Stream messages are Alpaca's documented examples (alpaca-docs realtime.md and stream entities,
alpaca-trade-api-go's and alpaca-py's stream tests), packed as the msgpack frames the data stream
sends (``t`` as a msgpack timestamp). REST bodies are the market-data OpenAPI spec's examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import pytest
import requests
from alpaca.data.historical.stock import StockHistoricalDataClient
from websockets.asyncio.server import ServerConnection, serve

from services.domain.enums import ConnectionState, Timeframe
from services.marketdata.datastream import DataConnection
from services.marketdata.history import HistoryService
from services.marketdata.pipeline import MarketDataPipeline
from tests.support import alpaca_fixtures as fx

RECEIVED = 1_700_000_000.0  # the receiving wall clock; these tests never read the real one


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def ns(text: str) -> int:
    return fx.rfc3339_ns(text)


def dt(text: str) -> datetime:
    return datetime.fromtimestamp(ns(text) // 1000 / 1e6, UTC)


def pipeline(controls: list[dict[str, Any]] | None = None) -> MarketDataPipeline:
    return MarketDataPipeline(
        control=controls.append if controls is not None else None, wall_clock=lambda: RECEIVED
    )


# --- decoding, book and candles --------------------------------------------------------------------------


def test_rfc3339_is_packed_to_the_nanosecond() -> None:
    """RFC-3339 with nanoseconds (realtime.md: "RFC-3339 formatted timestamp with nanosecond precision")."""
    assert fx.rfc3339_ns("2021-02-22T15:51:45.335689322Z") == 1614009105_335689322
    frame = msgpack.unpackb(fx.stream_frame("quote"), timestamp=2)
    assert frame[0]["t"] == 1614009105_335689322


def test_trade_message_updates_last_price_volume_and_the_working_candle() -> None:
    """Alpaca's trade example: AAPL 1 @ 126.55 at 2021-02-22T15:51:44.208Z."""
    p = pipeline()
    assert p.process_frame(fx.stream_frame("trade"), RECEIVED) == 1
    assert p.book.last_price("AAPL") == Decimal("126.55")
    last = p.book.last_trade("AAPL")
    assert last is not None and last.ts == dt("2021-02-22T15:51:44.208Z") and last.size == Decimal(1)
    bar = p.candles.partial("AAPL")
    assert bar is not None and bar.ts == datetime(2021, 2, 22, 15, 51, tzinfo=UTC)
    assert (bar.open, bar.close, bar.volume, bar.trade_count) == (
        Decimal("126.55"),
        Decimal("126.55"),
        Decimal(1),
        1,
    )


def test_quote_message_sets_the_book() -> None:
    """Alpaca's quote example: AMD bid 87.66 x 1, ask 87.68 x 4."""
    p = pipeline()
    p.process_frame(fx.stream_frame("quote"), RECEIVED)
    q = p.book.quote("AMD")
    assert q is not None and (q.bid, q.ask, q.bid_size, q.ask_size) == (
        Decimal("87.66"),
        Decimal("87.68"),
        Decimal(1),
        Decimal(4),
    )
    assert q.ts == dt("2021-02-22T15:51:45.335689322Z")


def test_streaming_session_example_frames() -> None:
    """realtime.md's wscat session: one trade frame, then a frame of AMD quotes."""
    p = pipeline()
    trade_frame, quote_frame = fx.body("stream", "session_trade_quote")
    assert p.process_frame(fx.msgpack_frame(trade_frame), RECEIVED) == 1
    assert p.process_frame(fx.msgpack_frame(quote_frame), RECEIVED) == len(quote_frame)
    q = p.book.quote("AMD")
    assert q is not None and q.bid == Decimal(str(quote_frame[-1]["bp"]))
    assert p.book.last_price("AAPL") == Decimal("126.55") and p.decode_errors == 0


@pytest.mark.parametrize(
    ("name", "kind"), [("bar", "b"), ("go_bar", "b"), ("go_updated_bar", "u"), ("daily_bar", "d")]
)
def test_exchange_bars_reach_the_batch_exactly(name: str, kind: str) -> None:
    """Minute bars (``b``), updated bars (``u``, alpaca-trade-api-go testUpdatedBar) and daily bars
    (``d``)."""
    [m] = fx.body("stream", name)
    p = pipeline()
    assert p.process_frame(fx.stream_frame(name), RECEIVED) == 1
    batch = p.tick(RECEIVED, force=True)
    assert batch is not None
    [xb] = batch.exchange_bars
    assert xb.kind == kind and xb.bar.symbol == m["S"] and xb.bar.ts == dt(m["t"])
    assert (xb.bar.open, xb.bar.high, xb.bar.low, xb.bar.close, xb.bar.volume) == tuple(
        Decimal(str(m[k])) for k in ("o", "h", "l", "c", "v")
    )
    assert xb.bar.trade_count == m.get("n")
    assert xb.bar.vwap == (Decimal(str(m["vw"])) if "vw" in m else None)


def test_control_messages_are_passed_on_not_counted_as_data() -> None:
    """subscription, 405 and 406 arrive in-band (realtime.md): they are not market data."""
    controls: list[dict[str, Any]] = []
    p = pipeline(controls)
    for name in ("subscription", "error_405_symbol_limit", "error_406_connection_limit"):
        assert p.process_frame(fx.stream_frame(name), RECEIVED) == 0
    assert [c["T"] for c in controls] == ["subscription", "error", "error"]
    assert [c.get("code") for c in controls[1:]] == [405, 406]
    assert controls[0]["bars"] == ["IBM", "AAPL", "VOO"] and p.decode_errors == 0


def _trade_of(cancel_or_correction: dict[str, Any], *, original: bool) -> dict[str, Any]:
    """The trade a cancel (``x``) or correction (``c``) message refers to, from its own fields
    (``i``/``p``/``s`` of a cancel; ``oi``/``op``/``os``/``oc`` of a correction)."""
    m = cancel_or_correction
    if m["T"] == "x":
        return {
            "T": "t",
            "S": m["S"],
            "i": m["i"],
            "x": m["x"],
            "p": m["p"],
            "s": m["s"],
            "t": m["t"],
            "c": ["@"],
            "z": m["z"],
        }
    assert original
    return {
        "T": "t",
        "S": m["S"],
        "i": m["oi"],
        "x": m["x"],
        "p": m["op"],
        "s": m["os"],
        "t": m["t"],
        "c": m["oc"],
        "z": m["z"],
    }


def test_trade_cancel_comes_out_of_last_price_volume_and_candle() -> None:
    """alpaca-trade-api-go testCancelError: trade 123 of TEST (10 @ 100) is canceled. An earlier
    print of the same minute (5 @ 99.5, made up) stays. Stream docs: a canceled trade must come out."""
    [cancel] = fx.body("stream", "go_cancel")
    earlier = {
        "T": "t",
        "S": "TEST",
        "i": 122,
        "x": "X",
        "p": 99.5,
        "s": 5,
        "t": "2021-12-07T13:32:00Z",
        "c": ["@"],
        "z": "C",
    }
    p = pipeline()
    p.process_frame(fx.msgpack_frame([earlier, _trade_of(cancel, original=True)]), RECEIVED)
    assert p.book.last_price("TEST") == Decimal(100)
    p.process_frame(fx.stream_frame("go_cancel"), RECEIVED)
    bar = p.candles.partial("TEST")
    assert bar is not None and (bar.high, bar.close, bar.volume, bar.trade_count) == (
        Decimal("99.5"),
        Decimal("99.5"),
        Decimal(5),
        1,
    )
    assert p.book.entry("TEST").volume == Decimal(5)
    assert p.book.last_price("TEST") == Decimal("99.5")


def test_trade_correction_replaces_price_and_size() -> None:
    """alpaca-trade-api-go testCorrection: trade 123 (123 @ 123.123) corrected to 124 @ 124.124."""
    [corr] = fx.body("stream", "go_correction")
    p = pipeline()
    p.process_frame(fx.msgpack_frame([_trade_of(corr, original=True)]), RECEIVED)
    p.process_frame(fx.stream_frame("go_correction"), RECEIVED)
    bar = p.candles.partial("TEST")
    assert bar is not None and (bar.open, bar.high, bar.close, bar.volume) == (
        Decimal("124.124"),
        Decimal("124.124"),
        Decimal("124.124"),
        Decimal(124),
    )
    assert p.book.entry("TEST").volume == Decimal(124)
    assert p.book.last_price("TEST") == Decimal("124.124")


def test_alpaca_py_cancel_message_is_not_malformed() -> None:
    """alpaca-py test_websockets: the DJT cancel message decodes without an error."""
    p = pipeline([])
    p.process_frame(fx.stream_frame("py_cancel"), RECEIVED)
    assert p.decode_errors == 0


# --- the connection: greeting, auth and in-band errors ---------------------------------------------------


class Server:
    """A websocket that speaks the data stream's handshake with the given fixture frames."""

    def __init__(self, after_auth: list[str], after_subscribe: list[str]) -> None:
        self.after_auth = after_auth
        self.after_subscribe = after_subscribe
        self.received: list[dict[str, Any]] = []

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(fx.stream_frame("connected"))
        self.received.append(msgpack.unpackb(await ws.recv()))
        for name in self.after_auth:
            await ws.send(fx.stream_frame(name))
        with contextlib.suppress(Exception):
            self.received.append(msgpack.unpackb(await ws.recv()))
            for name in self.after_subscribe:
                await ws.send(fx.stream_frame(name))
            await ws.wait_closed()


async def _session(
    server: Server, *, stop_on: set[ConnectionState], frames: int = 0
) -> tuple[list[tuple[ConnectionState, str]], DataConnection]:
    states: list[tuple[ConnectionState, str]] = []
    done = asyncio.Event()
    async with serve(server.handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]

        def on_state(channel: str, state: ConnectionState, reason: str) -> None:
            states.append((state, reason))
            if state in stop_on:
                done.set()

        conn = DataConnection(
            "stock",
            f"ws://127.0.0.1:{port}/v2/iex",
            "PKFIXTURE",
            "secret",
            pipeline(),
            on_state,
            data_timeout=None,
            backoff_min=0.01,
            backoff_max=0.02,
            rng=random.Random(4),
        )
        seen = 0

        def after_frame() -> None:
            nonlocal seen
            seen += 1
            if frames and seen >= frames:
                done.set()

        conn.after_frame = after_frame
        await conn.update({"trades": ["AAPL"], "quotes": ["AMD"], "bars": ["SPY"]}, {})
        task = asyncio.ensure_future(conn.run())
        await asyncio.wait_for(done.wait(), 10)
        await conn.stop()
        await asyncio.wait_for(task, 10)
    return states, conn


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock market data: the keys were refused")
def test_refused_keys_402_fail_once_with_what_alpaca_said() -> None:
    """402 auth failed (realtime.md): the keys are wrong; one FAILED state, no retry loop."""
    server = Server(["error_402_auth_failed"], [])
    states, _ = run(_session(server, stop_on={ConnectionState.FAILED}))
    assert server.received[0]["action"] == "auth"
    failed = [r for s, r in states if s is ConnectionState.FAILED]
    assert len(failed) == 1 and "auth failed" in failed[0]


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock stream lost \(another connection uses these",
)
def test_406_connection_limit_is_retried_not_reported_as_refused_keys() -> None:
    """406 connection limit exceeded (realtime.md: "You already have an ongoing authenticated
    session"): another connection uses these keys; retry with backoff and say so."""
    server = Server(["error_406_connection_limit"], [])
    states, _ = run(_session(server, stop_on={ConnectionState.FAILED, ConnectionState.RECONNECTING}))
    assert not [r for s, r in states if s is ConnectionState.FAILED]
    reconnecting = [r for s, r in states if s is ConnectionState.RECONNECTING]
    assert reconnecting and "connection limit" in reconnecting[0]
    assert "refused the keys" not in reconnecting[0]


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock market data: no live data for")
def test_405_symbol_limit_after_subscribe_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    """405 symbol limit exceeded (realtime.md): the subscription stays as it was; the trader must
    learn which symbols are left without data (a state reason or a WARNING naming the limit)."""
    server = Server(["authenticated"], ["error_405_symbol_limit"])
    with caplog.at_level(logging.WARNING):
        states, _ = run(_session(server, stop_on=set(), frames=1))
    assert server.received[1]["action"] == "subscribe"
    logged = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    said = [r for _, r in states] + logged
    assert any("symbol limit" in text for text in said)


# --- REST market data ------------------------------------------------------------------------------------


class Routes:
    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.calls: list[str] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.split("?", 1)[0]
        self.calls.append(path)
        for suffix, payload in self.routes.items():
            if path.endswith(suffix):
                return fx.http_response(200, payload)
        raise AssertionError(f"unexpected request {method} {url}")


def history(routes: dict[str, Any]) -> tuple[HistoryService, Routes]:
    client = StockHistoricalDataClient("PKFIXTURE", "secret")
    client._retry = 0
    transport = Routes(routes)
    client._session.request = transport  # type: ignore[method-assign,assignment]
    return HistoryService(None, None, stock_client=client, crypto_client=object()), transport


def test_rest_bars() -> None:
    """Market-data spec /v2/stocks/bars example-1: AAPL daily bar of 2022-02-28 (a 05:00Z start)."""
    svc, t = history({"/v2/stocks/bars": fx.body("marketdata_rest", "bars_multi")})
    assert t.calls == []
    bars = run(
        svc.fetch_bars(
            "AAPL", Timeframe("1Day"), datetime(2022, 2, 28, tzinfo=UTC), datetime(2022, 3, 1, tzinfo=UTC)
        )
    )
    [b] = bars
    assert b.ts == datetime(2022, 2, 28, 5, 0, tzinfo=UTC)
    assert (b.open, b.high, b.low, b.close, b.volume, b.trade_count, b.vwap) == (
        Decimal("163.02"),
        Decimal("165.42"),
        Decimal("162.43"),
        Decimal("165.12"),
        Decimal(90552883),
        743379,
        Decimal("164.274348"),
    )
    assert t.calls == ["https://data.alpaca.markets/v2/stocks/bars"]


def test_rest_latest_trade_and_quote() -> None:
    svc, _ = history(
        {
            "/v2/stocks/trades/latest": fx.body("marketdata_rest", "latest_trades"),
            "/v2/stocks/quotes/latest": fx.body("marketdata_rest", "latest_quotes"),
        }
    )
    trade = run(svc.latest_trade("AAPL"))
    assert (trade.price, trade.size, trade.ts) == (
        Decimal("155.105"),
        Decimal(300),
        dt("2022-03-11T17:24:56.321817175Z"),
    )
    quote = run(svc.latest_quote("TSLA"))
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
        Decimal(798),
        Decimal(850),
        Decimal(2),
        Decimal(1),
    )


def test_rest_snapshot_previous_close() -> None:
    """Spec /v2/stocks/snapshots example-1: prevDailyBar gives the previous close."""
    body = fx.body("marketdata_rest", "snapshots")
    svc, _ = history({"/v2/stocks/snapshots": body})
    snap = run(svc.snapshot("AAPL"))
    assert snap.previous_close == Decimal(str(body["AAPL"]["prevDailyBar"]["c"]))
    assert snap.latest_trade is not None and snap.latest_trade.price == Decimal("156.055")
    assert snap.daily_bar is not None and snap.daily_bar.volume == Decimal(1180799)
