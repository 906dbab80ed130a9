"""DataConnection against Alpaca's documented data-stream handshake and error messages.

Sources (every frame below is a body Alpaca documents):
- Greeting, auth reply and error table: Alpaca market-data stream docs, "WebSocket Stream"
  (docs.alpaca.markets/docs/streaming-market-data) and alpacahq/alpaca-docs
  content/api-references/market-data-api (realtime.md, "Errors"):
  ``[{"T":"success","msg":"connected"}]``, ``[{"T":"success","msg":"authenticated"}]``,
  ``[{"T":"error","code":406,"msg":"connection limit exceeded"}]`` ("You already have an ongoing
  authenticated session"), ``[{"T":"error","code":405,"msg":"symbol limit exceeded"}]`` ("If this
  happens your symbol subscriptions are the same as they were before you sent the request that
  failed"), ``[{"T":"error","code":402,"msg":"auth failed"}]``.
- Subscription answer: Alpaca real-time stock data docs
  (docs.alpaca.markets/docs/real-time-stock-pricing-data).

The connection is driven with recorded frames through a fake socket; backoff waits are recorded,
not slept.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
import websockets

from services.domain.enums import ConnectionState
from services.marketdata.datastream import DataConnection
from services.marketdata.pipeline import MarketDataPipeline

CONNECTED = [{"T": "success", "msg": "connected"}]
AUTHENTICATED = [{"T": "success", "msg": "authenticated"}]
E406 = [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
E405 = [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
E402 = [{"T": "error", "code": 402, "msg": "auth failed"}]


def subscription(trades: list[str], quotes: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "T": "subscription",
            "trades": trades,
            "quotes": quotes,
            "bars": [],
            "updatedBars": [],
            "dailyBars": [],
            "statuses": [],
            "lulds": [],
            "corrections": trades,
            "cancelErrors": trades,
        }
    ]


def pack(msgs: Any) -> bytes:
    return msgpack.packb(msgs)


class FakeSocket:
    """Plays frames (bytes, str, or a callable run when reached), then closes like a dropped socket."""

    def __init__(self, frames: list[Any]) -> None:
        self.frames = list(frames)
        self.sent: list[dict[str, Any]] = []

    async def recv(self) -> Any:
        while self.frames:
            item = self.frames.pop(0)
            if callable(item):
                await item()
                continue
            return item
        raise websockets.exceptions.ConnectionClosedError(None, None)

    async def send(self, data: bytes) -> None:
        self.sent.append(msgpack.unpackb(data))

    async def close(self) -> None:
        self.frames.clear()


class Harness:
    def __init__(self, sessions: list[list[Any]], *, stop_after: int) -> None:
        self.sockets = [FakeSocket(f) for f in sessions]
        self.opened: list[FakeSocket] = []
        self.states: list[tuple[ConnectionState, str]] = []
        self.notices: list[tuple[str, str]] = []
        self.pauses: list[float] = []
        self.stop_after = stop_after
        self.conn = DataConnection(
            "stock",
            "wss://stream.data.alpaca.markets/v2/iex",
            "KEY",
            "SECRET",
            MarketDataPipeline(),
            lambda ch, st, why: self.states.append((st, why)),
            data_timeout=None,
            on_notice=lambda ch, lvl, msg: self.notices.append((lvl, msg)),
            connector=self._connect,
            pause=self._pause,
        )

    @asynccontextmanager
    async def _connect(self) -> Any:
        if not self.sockets:
            raise OSError("no more sessions")
        ws = self.sockets.pop(0)
        self.opened.append(ws)
        yield ws

    async def _pause(self, delay: float) -> None:
        self.pauses.append(delay)
        if len(self.pauses) >= self.stop_after:
            await self.conn.stop()

    async def run(self, subscribe: dict[str, list[str]]) -> None:
        await self.conn.update(subscribe, {})
        await self.conn.run()


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock stream lost \(another connection uses these",
    r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError: no close frame",
)
def test_406_connection_limit_is_retried_and_said_in_words(caplog: pytest.LogCaptureFixture) -> None:
    """406 answers the auth of a second connection (Alpaca stream docs, "Connection limit"): it is
    not refused keys. Heron backs off, says another connection uses the keys, and connects once the
    other one is gone."""
    h = Harness(
        [
            [pack(CONNECTED), pack(E406)],
            [pack(CONNECTED), pack(E406)],
            [pack(CONNECTED), pack(AUTHENTICATED), pack(subscription(["AAPL"], ["AAPL"]))],
        ],
        stop_after=3,
    )
    with caplog.at_level(logging.WARNING):
        asyncio.run(h.run({"trades": ["AAPL"], "quotes": ["AAPL"]}))
    states = [s for s, _ in h.states]
    assert ConnectionState.FAILED not in states
    reasons = [why for s, why in h.states if s is ConnectionState.RECONNECTING]
    assert reasons and "another connection uses these keys" in reasons[0]
    assert "406 connection limit exceeded" in reasons[0]
    assert "refused" not in reasons[0]
    assert ConnectionState.LIVE in states and h.conn.connects == 1
    assert h.pauses[1] >= h.pauses[0] / 2  # backoff, not a tight loop
    assert any("another connection uses these keys" in r.getMessage() for r in caplog.records)
    # The person is told once (a notification), not on every retry.
    assert [lvl for lvl, msg in h.notices if "another connection uses these keys" in msg] == ["warning"]


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock market data: the keys were refused")
def test_402_auth_failed_stops_with_refused_keys() -> None:
    """402 auth failed (Alpaca stream docs, "Errors"): retrying cannot help; one FAILED state."""
    h = Harness([[pack(CONNECTED), pack(E402)]], stop_after=5)
    asyncio.run(h.run({"trades": ["AAPL"]}))
    assert h.states[-1][0] is ConnectionState.FAILED
    assert "keys were refused" in h.states[-1][1]
    assert h.pauses == []
    assert h.notices and h.notices[-1][0] == "error"


@pytest.mark.parametrize(
    "greeting",
    [
        '[{"T":"success","msg":"connected"}]',  # a JSON text frame instead of msgpack
        pack({"T": "success", "msg": "connected"}),  # one object, not the documented array
        pack([]),
        pack(["connected"]),
        b"\xc1",  # not msgpack at all
    ],
    ids=["text-frame", "object", "empty", "not-a-dict", "garbage"],
)
@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError: no close frame",
    r"^services\.marketdata\.datastream: stock stream lost \(ProtocolError: un",
)
def test_unexpected_greeting_is_logged_and_retried(greeting: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The documented greeting is ``[{"T":"success","msg":"connected"}]`` (Alpaca stream docs).
    Anything else is an error that is logged and retried, never a silently dead task."""
    h = Harness([[greeting], [pack(CONNECTED), pack(AUTHENTICATED)]], stop_after=2)
    with caplog.at_level(logging.WARNING):
        asyncio.run(h.run({"trades": ["AAPL"]}))
    states = [s for s, _ in h.states]
    assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.RECONNECTING]
    assert ConnectionState.LIVE in states and h.conn.connects == 1
    assert any("stream lost" in r.getMessage() for r in caplog.records)
    assert h.states[-1][0] is ConnectionState.STOPPED


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock market data: no live data for",
    r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError: no close frame",
)
def test_405_symbol_limit_names_the_symbols_left_without_data() -> None:
    """405 refuses the whole subscribe request; subscriptions stay what they were before it (Alpaca
    stream docs, "Errors"). The symbols of that request are named, and a reconnect does not resend
    them (which would make Alpaca refuse the whole set)."""
    h = Harness([], stop_after=1)

    async def add_more() -> None:
        await h.conn.update({"trades": ["TSLA", "NVDA"], "quotes": ["TSLA", "NVDA"]}, {})

    h.sockets = [
        FakeSocket(
            [
                pack(CONNECTED),
                pack(AUTHENTICATED),
                pack(subscription(["AAPL"], ["AAPL"])),
                add_more,
                pack(E405),
            ]
        ),
        FakeSocket([pack(CONNECTED), pack(AUTHENTICATED)]),
    ]
    h.stop_after = 2
    asyncio.run(h.run({"trades": ["AAPL"], "quotes": ["AAPL"]}))
    assert h.conn.without_data == {"TSLA", "NVDA"}
    warnings = [msg for lvl, msg in h.notices if lvl == "warning"]
    assert warnings and "NVDA, TSLA" in warnings[0] and "AAPL" not in warnings[0]
    assert "405 symbol limit exceeded" in warnings[0]
    live = [why for s, why in h.states if s is ConnectionState.LIVE]
    assert any("no data for NVDA, TSLA" in why for why in live)
    resubscribe = h.opened[1].sent[-1]
    assert resubscribe == {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL"]}


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock market data: no live data for",
    r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError: no close frame",
)
def test_405_on_the_first_subscribe_names_every_symbol() -> None:
    """The full set sent after auth can itself be over the plan's limit (free IEX plan: 30 symbols,
    docs/alpaca-rules.md "Market data"); then every symbol of it is without data, and said so."""
    h = Harness([[pack(CONNECTED), pack(AUTHENTICATED), pack(E405)]], stop_after=1)
    asyncio.run(h.run({"trades": ["AAPL", "MSFT"], "quotes": ["AAPL"]}))
    assert h.conn.without_data == {"AAPL", "MSFT"}
    assert any("AAPL, MSFT" in msg for _, msg in h.notices)


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock market data: another connection uses these",
    r"^services\.marketdata\.datastream: stock stream lost \(another connection uses these",
)
def test_406_during_the_session_is_said_in_words(caplog: pytest.LogCaptureFixture) -> None:
    """An error message can arrive inside a session (Alpaca stream docs: "You may receive an error
    during your session"); a 406 there is reported as another connection, then retried."""
    h = Harness([[pack(CONNECTED), pack(AUTHENTICATED), pack(E406)]], stop_after=1)
    with caplog.at_level(logging.WARNING):
        asyncio.run(h.run({"trades": ["AAPL"]}))
    assert any("another connection uses these keys" in msg for _, msg in h.notices)
    reasons = [why for s, why in h.states if s is ConnectionState.RECONNECTING]
    assert reasons and "another connection uses these keys" in reasons[0]


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError")
def test_a_data_frame_costs_no_task_of_its_own() -> None:
    """Every frame is awaited under the data timeout (a socket that stays open but goes silent is
    caught); the timeout costs no task per frame, which ~40 frames a second of an idle terminal
    would create and schedule for nothing."""
    quote = {
        "T": "q",
        "S": "AAPL",
        "bp": 187.1,
        "bs": 1,
        "ap": 187.14,
        "as": 2,
        "t": 1_700_000_000_000_000_000,
    }
    frames = [pack(CONNECTED), pack(AUTHENTICATED), pack(subscription([], ["AAPL"]))]
    frames += [pack([quote]) for _ in range(60)]
    h = Harness([frames], stop_after=1)
    h.conn.data_timeout = 30.0
    tasks: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            tasks.append(coro)
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(factory)
        await h.run({"quotes": ["AAPL"]})

    asyncio.run(main())
    assert h.conn.pipeline.messages == 60
    assert len(tasks) < 10
