"""The one task bridge: run_async on the running loop, and TaskBridge's coroutine path built on it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.widgets import trading_rig
from widgets.tasks import TaskBridge, run_async

qloop = trading_rig.qloop


async def answer() -> int:
    return 42


async def fail() -> int:
    raise ValueError("no answer")


@pytest.mark.expected_log(r"^heron\.widgets: background action failed: no answer")
def test_run_async_calls_back_with_the_result_or_the_logged_error(qloop, caplog) -> None:  # type: ignore[no-untyped-def]
    got: list[tuple[int | None, str | None]] = []

    async def main() -> None:
        futures = [
            run_async(coro, lambda r, e: got.append((r, None if e is None else str(e))))
            for coro in (answer(), fail())
        ]
        await asyncio.wait(futures)
        await asyncio.sleep(0)  # one turn: the done callbacks run

    with caplog.at_level(logging.ERROR, logger="heron.widgets"):
        qloop.run_until_complete(main())
    assert got == [(42, None), (None, "no answer")]
    assert [r.getMessage() for r in caplog.records] == ["background action failed: no answer"]


@pytest.mark.parametrize("factory, outcome", [(answer, ("done", 42)), (fail, ("error", "no answer"))])
def test_bridge_runs_a_coroutine_on_the_running_loop(qtbot, qloop, caplog, factory, outcome) -> None:  # type: ignore[no-untyped-def]
    bridge = TaskBridge()
    got: list[tuple[str, object]] = []

    async def main() -> None:
        with qtbot.waitSignal(bridge.finished, timeout=2000):
            bridge.run_coroutine(
                factory, lambda r: got.append(("done", r)), lambda e: got.append(("error", str(e)))
            )
            assert bridge.running == 1
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="heron.widgets"):
        qloop.run_until_complete(main())
    assert got == [outcome] and bridge.running == 0
    assert caplog.records == []  # the panel shows its own error; the bridge does not log it too


def test_bridge_without_a_loop_runs_the_coroutine_on_a_worker(qtbot) -> None:  # type: ignore[no-untyped-def]
    bridge = TaskBridge()
    got: list[int] = []
    with qtbot.waitSignal(bridge.finished, timeout=5000):
        bridge.run_coroutine(answer, got.append, lambda e: got.append(-1))
    bridge.join()
    assert got == [42]
