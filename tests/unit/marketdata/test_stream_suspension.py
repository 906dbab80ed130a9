"""A suspended data connection sends nothing (the local exchange died; its port may be a stranger's):
no auth message even on a socket that opened just before, no reconnect until resumed."""

from __future__ import annotations

import asyncio

import pytest

from services.domain.enums import ConnectionState
from tests.unit.marketdata.test_datastream_errors import AUTHENTICATED, CONNECTED, Harness, pack, subscription

WHY = "the local exchange (pid 42) ended; nothing is sent to http://127.0.0.1:1 until it is back"


@pytest.mark.expected_log(
    r"^services\.marketdata\.datastream: stock market data paused: the local exchange",
    r"^services\.marketdata\.datastream: stock stream lost \(ConnectionClosedError: no close frame",
)
def test_a_connection_suspended_while_connecting_sends_no_keys_and_waits_for_resume() -> None:
    resumed_after: list[int] = []
    h: Harness

    async def death_noticed() -> None:  # between the socket opening and the greeting being read
        h.conn.suspend(WHY)
        loop = asyncio.get_running_loop()

        def resume() -> None:
            resumed_after.append(len(h.opened))
            h.conn.resume()

        loop.call_later(0.05, resume)

    h = Harness(
        [
            [death_noticed, pack(CONNECTED), pack(AUTHENTICATED)],
            [pack(CONNECTED), pack(AUTHENTICATED), pack(subscription(["AAPL"], []))],
        ],
        stop_after=1,
    )
    asyncio.run(h.run({"trades": ["AAPL"]}))
    first, second = h.opened
    assert first.sent == []  # not the keys, nothing
    assert resumed_after == [1]  # no second connection before resume()
    assert second.sent[0] == {"action": "auth", "key": "KEY", "secret": "SECRET"}
    paused = [why for st, why in h.states if st is ConnectionState.RECONNECTING and why.startswith("paused")]
    assert paused == [f"paused: {WHY}"]
    assert ConnectionState.LIVE in [st for st, _ in h.states]
    assert len(h.pauses) == 1  # lost while suspended: no backoff wait, only the final loss
