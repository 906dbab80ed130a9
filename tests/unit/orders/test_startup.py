"""Trading start-up's small parts: waiting for the trading stream and prices, the periodic loop, and
a start-up whose journal cannot be recovered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.orders import startup
from services.storage import StorageError


@dataclass
class _Gate:
    allowed: bool = False
    reason: str = "trading stream connecting"


@dataclass
class _Streams:
    gate: _Gate = field(default_factory=_Gate)


@dataclass
class _Book:
    priced: list[str] = field(default_factory=list)

    def symbols(self) -> list[str]:
        return self.priced


def test_wait_market_data_names_what_is_missing() -> None:
    async def scenario() -> list[str | None]:
        streams, book = _Streams(), _Book()
        out = [await startup.wait_market_data(None, book, 0.0)]
        out.append(await startup.wait_market_data(streams, book, 0.0))
        book.priced.append("AAPL")
        out.append(await startup.wait_market_data(streams, book, 0.0))
        streams.gate.allowed = True
        out.append(await startup.wait_market_data(streams, book, 0.0))
        return out

    assert asyncio.run(scenario()) == [
        "market data is not running",
        "no market data received yet",
        "the trading stream is not live (trading stream connecting)",
        None,
    ]


@pytest.mark.expected_log(r"^heron\.app: periodic task \S+ failed; it runs again")
def test_every_keeps_running_after_a_failure(monkeypatch: Any) -> None:
    real_sleep = asyncio.sleep

    async def instant(_seconds: float) -> None:
        await real_sleep(0)

    monkeypatch.setattr(startup.asyncio, "sleep", instant)
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    async def scenario() -> None:
        task = asyncio.ensure_future(startup.every(1.0, work))
        while len(calls) < 3:
            await real_sleep(0)
        task.cancel()

    asyncio.run(scenario())
    assert len(calls) >= 3


def test_a_journal_that_cannot_be_recovered_stops_start_up() -> None:
    class _Engine:
        async def recover(self) -> list[str]:
            raise StorageError("the journal cannot be read")

    failed: list[str] = []
    spawned: list[str] = []
    ok = asyncio.run(
        startup.startup_trading(
            _Engine(),  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            None,
            None,
            notify=lambda *_a: None,
            spawn=lambda name, coro: (spawned.append(name), coro.close()),
            on_failed=failed.append,
        )
    )
    assert not ok and failed == ["the journal cannot be read"] and spawned == []


def test_operator_is_a_name() -> None:
    assert startup.operator()
