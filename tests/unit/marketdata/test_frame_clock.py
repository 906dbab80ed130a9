"""The market-data thread's frame clock: batches reach the loop thread at the frame rate, a stop
ends the thread at once, and a frame that fails ends the thread as crashed, which every feed's
connection state says (it is not swallowed by the clock and retried 12.5 times a second)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.domain.enums import ConnectionState
from services.marketdata.streams import MarketDataThread
from tests.support.polling import async_wait_for


class _Connection:
    """A feed that stays connected until stopped."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.after_frame: Any = None
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self._stopped = asyncio.Event()
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()


class _Pipeline:
    """A batch on every frame (its number), or an error from frame ``fail_at`` on."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.ticks = 0
        self.fail_at = fail_at

    def tick(self) -> int:
        self.ticks += 1
        if self.fail_at is not None and self.ticks >= self.fail_at:
            raise RuntimeError("pipeline bug")
        return self.ticks


def _thread(
    pipeline: _Pipeline, batches: list[int], states: list[tuple[str, ConnectionState, str]]
) -> MarketDataThread:
    thread = MarketDataThread(
        pipeline,  # type: ignore[arg-type]
        batches.append,  # type: ignore[arg-type]
        lambda ch, st, why: states.append((ch, st, why)),
        frame_interval=0.02,
    )
    thread.add(_Connection("stocks"))  # type: ignore[arg-type]
    return thread


def test_batches_arrive_on_the_frame_clock_and_a_stop_ends_the_thread_at_once() -> None:
    asyncio.run(_batches_and_stop())


async def _batches_and_stop() -> None:
    batches: list[int] = []
    thread = _thread(_Pipeline(), batches, [])
    thread.start()
    await async_wait_for("five batches on the loop thread", lambda: len(batches) >= 5)
    assert batches == sorted(batches)
    started = time.monotonic()
    await thread.stop()
    assert thread._thread is not None and not thread._thread.is_alive()
    assert time.monotonic() - started < 2.0  # not the 10 s join timeout


@pytest.mark.expected_log("market-data thread crashed")
def test_a_failing_frame_ends_the_thread_as_crashed_for_every_feed() -> None:
    asyncio.run(_failing_frame())


async def _failing_frame() -> None:
    batches: list[int] = []
    states: list[tuple[str, ConnectionState, str]] = []
    pipeline = _Pipeline(fail_at=3)
    thread = _thread(pipeline, batches, states)
    thread.start()
    await async_wait_for("the crash reported", lambda: states)
    assert states == [("stocks", ConnectionState.FAILED, "market-data thread crashed (see log)")]
    assert thread._thread is not None
    await asyncio.to_thread(thread._thread.join, 5)
    assert not thread._thread.is_alive()
    assert pipeline.ticks == 3 and batches == [1, 2]  # no frame after the failing one


class _Main:
    """The loop thread: takes each batch at once."""

    def is_closed(self) -> bool:
        return False

    def call_soon_threadsafe(self, fn: Any, *args: Any) -> None:
        fn(*args)


def test_a_resting_connection_reads_before_the_frame_goes() -> None:
    """At idle a connection stops reading between frames (the kernel keeps what arrives). At the
    clock tick it reads again, and the frame goes once it has handled what it read and rests again,
    so the frame carries everything that arrived before its tick; a woken connection that reads
    nothing whole (a silent feed) holds the frame back for ``GRACE_S`` at most."""
    from services.marketdata import streams

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        now = [100.0]
        batches: list[int] = []
        thread = MarketDataThread(_Pipeline(), batches.append, lambda *a: None, frame_interval=0.08)  # type: ignore[arg-type]
        thread.loop, thread._main_loop = loop, _Main()  # type: ignore[assignment]
        thread.clock = lambda: now[0]
        try:
            turn = thread.wait_turn("stocks")  # rested at once: nothing due yet at t=100
            assert len(batches) == 1 and not turn.done()  # the first frame was due at once
            now[0] += 0.08
            thread._clock_tick(loop)
            assert turn.done() and len(batches) == 1  # woken to read; the frame waits for it
            turn = thread.wait_turn("stocks")  # read and handled: rests again, the frame goes
            assert len(batches) == 2 and thread._grace is None
            now[0] += 0.08
            thread._clock_tick(loop)  # woken, but it reads nothing whole this time
            assert len(batches) == 2 and thread._grace is not None
            await asyncio.sleep(streams.GRACE_S * 3)
            assert len(batches) == 3  # the frame went after the grace
            now[0] += 0.08
            thread._clock_tick(loop)  # nobody rests now: the frame goes on the tick
            assert len(batches) == 4
        finally:
            if thread._clock is not None:
                thread._clock.cancel()

    asyncio.run(scenario())


def test_frames_keep_their_cadence_when_sent_just_after_the_tick() -> None:
    """A frame sent a little after its tick (once the connections have read) must not push the next
    one back a whole interval: the next is due one interval after this one was due."""

    now = [100.0]
    batches: list[int] = []
    thread = MarketDataThread(_Pipeline(), batches.append, lambda *a: None, frame_interval=0.08)  # type: ignore[arg-type]
    thread._main_loop = _Main()  # type: ignore[assignment]
    thread.clock = lambda: now[0]
    tick = now[0]
    for i in range(50):
        now[0] = tick + (0.003 if i % 2 else 0.001)
        thread._maybe_frame()  # sent 1 or 3 ms after its tick, as the connections finish reading
        tick += 0.08
    assert len(batches) == 50  # one per tick: a late one did not push the next frame back
