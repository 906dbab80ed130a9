"""The health watch on the service side, with fake clocks: it derives (and logs) the connection on
its own loop with nobody asking, and a stream whose socket is open but silent is never reported
live."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.broker.health import HealthMonitor
from services.broker.latency import LatencyRecorder
from services.broker.status import HealthWatch
from services.domain.enums import ConnectionState
from services.marketdata.staleness import FeedFreshness, StalenessVerdict
from tests.support.clock import FakeClock


@dataclass
class Gate:
    allowed: bool = True
    reason: str = ""


@dataclass
class Guard:
    feeds: FeedFreshness


@dataclass
class Book:
    guard: Guard

    def staleness(self, symbol: str) -> StalenessVerdict:
        return StalenessVerdict(symbol, False, 0.0, "fresh")


@dataclass
class Streams:
    book: Book
    states: dict[str, ConnectionState] = field(
        default_factory=lambda: {ch: ConnectionState.LIVE for ch in ("stock", "crypto", "trading")}
    )
    reasons: dict[str, str] = field(default_factory=dict)
    gate: Gate = field(default_factory=Gate)


def _watch(
    clock: FakeClock, wall: FakeClock, rest: Any, sleep: Any = asyncio.sleep
) -> tuple[HealthWatch, Streams, LatencyRecorder]:
    rec = LatencyRecorder(clock=clock)
    streams = Streams(Book(Guard(FeedFreshness(wall=wall))))

    async def ping(timeout: float) -> bool:
        await asyncio.Event().wait()  # a frozen broker never answers
        return True

    watch = HealthWatch(rec, HealthMonitor(clock=clock), rest, streams, ping=ping, sleep=sleep)
    return watch, streams, rec


def _answered(rec: LatencyRecorder, clock: FakeClock) -> None:
    token = rec.begin("get_clock")
    clock.advance(0.05)
    rec.end(token)


@pytest.mark.expected_log(r"^services\.broker\.health: broker connection live \-> unresponsive: no answer")
def test_a_silent_stream_with_an_open_socket_is_not_reported_live() -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)

    async def rest() -> None:
        await asyncio.Event().wait()

    watch, streams, rec = _watch(clock, wall, rest)
    _answered(rec, clock)
    for feed in ("stock", "crypto", "trading"):
        streams.book.guard.feeds.heard(feed)
    watch.trade_update()
    fresh = watch.status().report()["connection"]
    assert fresh["streams"] == {"crypto": "live", "stock": "live", "trading": "live"}

    clock.advance(31.0)  # frozen: the sockets stay open, nothing arrives
    wall.advance(31.0)
    report = watch.status().report()
    streams_said = report["connection"]["streams"]
    assert "live" not in streams_said.values(), streams_said
    assert streams_said["trading"] == "unresponsive"
    assert streams_said["stock"] == streams_said["crypto"] == "silent"
    assert report["connection"]["streams_silent_s"] == {"stock": 31.0, "crypto": 31.0, "trading": 31.0}
    assert fresh["streams_silent_s"] == {}
    assert report["connection"]["live"] is False


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker connection live \-> unresponsive: nothing heard",
)
def test_the_watch_derives_and_logs_a_frozen_broker_with_nobody_asking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)
    probes: list[str] = []
    latest: list[Any] = []

    async def main() -> None:
        ticks = 0
        enough = asyncio.Event()

        async def sleep(seconds: float) -> None:  # one tick of fake time
            nonlocal ticks
            ticks += 1
            clock.advance(seconds)
            wall.advance(seconds)
            if ticks >= 12:
                enough.set()
            await asyncio.sleep(0)

        async def rest() -> None:
            probes.append("clock")
            rec.begin("get_clock")  # a frozen broker: the probe never returns
            await asyncio.Event().wait()

        watch, _, rec = _watch(clock, wall, rest, sleep)
        _answered(rec, clock)
        runner = asyncio.ensure_future(watch.run())
        await enough.wait()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        latest.append(getattr(watch, "latest", None))

    asyncio.run(main())
    assert probes, "the quiet broker was never probed"
    lines = [
        r
        for r in caplog.records
        if "broker connection live -> unresponsive" in r.getMessage()
        or "broker connection connecting -> unresponsive" in r.getMessage()
    ]
    assert len(lines) == 1 and lines[0].levelname == "WARNING"
    assert latest[0] is not None and not latest[0].connection.live  # what the status bar reads
