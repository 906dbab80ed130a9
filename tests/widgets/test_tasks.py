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


def test_an_action_scheduled_after_the_loop_closed_is_dropped_without_a_stray_coroutine() -> None:
    """A panel's timer may fire once more while Heron shuts down, after the event loop closed: the
    action is dropped and said as cancelled; no coroutine is left un-awaited (Python would warn at
    garbage collection, into whatever runs next)."""
    import asyncio
    import gc

    from widgets.tasks import run_async

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.close()
    ran: list[str] = []
    seen: list[tuple[object, BaseException | None]] = []

    async def action() -> str:
        ran.append("ran")
        return "done"

    try:
        fut = run_async(action(), lambda result, error: seen.append((result, error)))
        gc.collect()  # a never-awaited coroutine would warn here (warnings are errors in the tests)
    finally:
        asyncio.set_event_loop(None)
    assert fut.cancelled() and ran == []
    assert len(seen) == 1 and seen[0][0] is None and isinstance(seen[0][1], asyncio.CancelledError)


def test_an_action_scheduled_with_no_event_loop_at_all_is_dropped_the_same_way() -> None:
    import asyncio

    from widgets.tasks import run_async

    asyncio.set_event_loop(None)

    async def action() -> None:
        raise AssertionError("must not run")

    seen: list[BaseException | None] = []
    fut = run_async(action(), lambda _result, error: seen.append(error))
    assert fut.cancelled() and len(seen) == 1 and isinstance(seen[0], asyncio.CancelledError)


def test_an_action_refused_by_a_closed_broker_is_no_error(qtbot, caplog) -> None:  # type: ignore[no-untyped-def]
    """A panel's last timer may call the broker after Heron closed it (shutdown): the caller hears
    of it, and nothing is logged as a failure (nothing was sent)."""
    import asyncio
    import logging

    from services.broker.base import BrokerClosed
    from widgets.tasks import run_async

    async def action() -> None:
        raise BrokerClosed("the broker connection is closed")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    seen: list[BaseException | None] = []
    try:
        with caplog.at_level(logging.DEBUG):
            fut = run_async(action(), lambda _r, error: seen.append(error))
            loop.run_until_complete(asyncio.wait([fut]))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert len(seen) == 1 and isinstance(seen[0], BrokerClosed)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
