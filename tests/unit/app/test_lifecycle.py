from __future__ import annotations

import asyncio
import os
import signal

import pytest

from app import lifecycle as L
from app.lifecycle import Lifecycle


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_stages_run_in_design_order_whatever_the_registration_order() -> None:
    calls: list[str] = []
    lc = Lifecycle()
    for stage in reversed(L.STAGES):
        lc.add_step(stage, stage, lambda s=stage: calls.append(s))
    lc.add_step(L.CLOSE_STREAMS, "second stream step", lambda: calls.append("streams-2"))
    report = run(lc.shutdown("test"))
    expected = list(L.STAGES)
    expected.insert(expected.index(L.CLOSE_STREAMS) + 1, "streams-2")
    assert calls == expected
    assert L.STAGES[:6] == (
        "stop strategies",
        "open-order policy",
        "final reconciliation",
        "close streams",
        "close broker",
        "flush storage",
    )
    assert report.ok


def test_shutdown_is_idempotent_and_concurrent_callers_share_one_run() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        await asyncio.sleep(0)

    async def main() -> None:
        lc = Lifecycle()
        lc.add_step(L.CLOSE_BROKER, "broker", step)
        a, b = await asyncio.gather(lc.shutdown("a"), lc.shutdown("b"))
        c = await lc.shutdown("c")
        assert a is b is c
        assert a.reason == "a"
        with pytest.raises(RuntimeError, match="already started"):
            lc.add_step(L.CLOSE_BROKER, "late", step)

    run(main())
    assert calls == [1]


@pytest.mark.expected_log(
    r"^heron\.lifecycle: shutdown step 'crashing' \(stop strategies\) failed; continuing",
    r"^heron\.lifecycle: shutdown step 'hanging' \(final reconciliation\) timed out",
)
def test_failing_and_hanging_steps_do_not_stop_later_stages() -> None:
    calls: list[str] = []

    def boom() -> None:
        raise RuntimeError("strategy crashed")

    async def hang() -> None:
        await asyncio.Event().wait()

    lc = Lifecycle()
    lc.add_step(L.STOP_STRATEGIES, "crashing", boom)
    lc.add_step(L.FINAL_RECONCILIATION, "hanging", hang, timeout=0.01)
    lc.add_step(L.FLUSH_STORAGE, "flush", lambda: calls.append("flushed"))
    report = run(lc.shutdown("test"))
    assert calls == ["flushed"]
    assert not report.ok
    errors = {s.name: s.error for s in report.steps}
    assert errors["crashing"] == "RuntimeError: strategy crashed"
    assert errors["hanging"] is not None and "timed out" in errors["hanging"]
    assert errors["flush"] is None


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown shutdown stage"):
        Lifecycle().add_step("tidy up", "x", lambda: None)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_requests_shutdown(sig: signal.Signals) -> None:
    async def main() -> str:
        lc = Lifecycle()
        lc.install_signal_handlers(asyncio.get_running_loop())
        try:
            os.kill(os.getpid(), sig)
            return await asyncio.wait_for(lc.wait_requested(), timeout=5)
        finally:
            lc.remove_signal_handlers()

    assert run(main()) == f"signal {sig.name}"


def test_sighup_requests_shutdown_like_sigterm() -> None:
    async def main() -> str:
        lc = Lifecycle()
        lc.install_signal_handlers(asyncio.get_running_loop())
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            return await asyncio.wait_for(lc.wait_requested(), 10)
        finally:
            lc.remove_signal_handlers()

    assert asyncio.run(main()) == "signal SIGHUP"


@pytest.mark.expected_log(r"^heron\.lifecycle: shutdown step 'order records' \(close broker\) failed;")
def test_a_foreseen_step_failure_is_one_line_and_still_makes_the_shutdown_unclean(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Order records a full disk kept in memory at exit: said in words, no traceback; the report is
    not ok, so a headless run exits non-zero."""

    class Said(RuntimeError):
        expected = True

    def unwritten() -> None:
        raise Said("3 order record(s) could not be written (disk full)")

    lc = Lifecycle()
    lc.add_step(L.CLOSE_BROKER, "order records", unwritten)
    report = asyncio.run(lc.shutdown("test"))
    assert not report.ok
    lines = [r for r in caplog.records if "order records" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info and "disk full" in lines[0].getMessage()
