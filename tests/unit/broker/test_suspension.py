"""A suspended broker sends nothing to its address (the local exchange died and its port may be a
stranger's): every call fails at once saying why, even one already past the first check."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.base import BrokerUnavailable
from services.broker.budget import RequestBudget
from tests.support.clock import FakeClock
from tests.unit.broker.fakes import ACCOUNT_JSON, ScriptedTransport, response

WHY = "the local exchange (pid 42) ended; nothing is sent to http://127.0.0.1:1 until it is back"


def make(answers: list[Any]) -> tuple[AlpacaBroker, ScriptedTransport]:
    clock = FakeClock()
    transport = ScriptedTransport(answers)
    broker = AlpacaBroker(
        "PKTEST", "secret", environment="local", base_url="http://127.0.0.1:1", transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=3, rng=random.Random(3), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
    )  # fmt: skip
    return broker, transport


def test_a_suspended_broker_fails_fast_without_a_request_and_resumes() -> None:
    broker, transport = make([response(200, ACCOUNT_JSON)])

    async def main() -> None:
        broker.suspend(WHY)
        assert broker.suspended == WHY
        with pytest.raises(BrokerUnavailable, match="not sent: the local exchange"):
            await broker.get_account()
        assert transport.calls == []  # nothing left the process
        broker.resume()
        assert broker.suspended is None
        assert (await broker.get_account()).account_number
        assert len(transport.calls) == 1

    asyncio.run(main())


def test_a_call_already_under_way_sends_nothing_once_suspended() -> None:
    """The check is repeated at the moment of sending (on the worker thread)."""
    broker, transport = make([])
    seen: list[str] = []
    inner = broker.client._session.request

    def suspend_then_send(method: str, url: str, **kwargs: Any) -> Any:
        seen.append(url)
        broker.suspend(WHY)  # the death noticed between the first check and the send
        return inner(method, url, **kwargs)

    broker.client._session.request = suspend_then_send  # type: ignore[method-assign]

    async def main() -> None:
        with pytest.raises(BrokerUnavailable, match="not sent"):
            await broker.get_clock()

    asyncio.run(main())
    assert seen and transport.calls == []
