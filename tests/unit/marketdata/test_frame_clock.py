"""The market-data thread's frame clock: batches reach the loop thread at the frame rate, a stop
ends the thread at once, and a frame that fails ends the thread as crashed, which every feed's
connection state says (it is not swallowed by the clock and retried 12.5 times a second)."""

from __future__ import annotations

import asyncio
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
    await thread.stop()
    assert thread._thread is not None and not thread._thread.is_alive()  # ended, not left by the join


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
        thread._maybe_frame()  # sent 1 or 3 ms after it was due
        tick += 0.08
    assert len(batches) == 50  # one per tick: a late one did not push the next frame back
