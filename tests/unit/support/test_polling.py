"""The one polling helper (tests/support/polling.py): returns the first truthy value, fails with a
message that names what was awaited, and keeps the caller's loop running between polls."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.support.polling import async_wait_for, file_text, loop_pump, wait_for, wait_for_text


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for("the third poll", lambda: max(0, next(counter) - 2), 5, every=0.001) == 1


def test_fails_after_the_deadline_naming_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"the answer: not within 0.05 s \(last: \[\]\)"):
        wait_for("the answer", lambda: [], 0.05, every=0.01)


def test_a_check_that_raises_gives_up_at_once() -> None:
    def check() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_for("never", check, 60)


def test_the_pump_passes_the_time_between_polls() -> None:
    pumped: list[float] = []
    counter = itertools.count()
    wait_for("the second poll", lambda: next(counter) == 1, 5, every=0.25, pump=pumped.append)
    assert pumped == [0.25]


def test_async_wait_for_lets_other_tasks_run() -> None:
    async def main() -> str:
        box: list[str] = []

        async def producer() -> None:
            await asyncio.sleep(0.01)
            box.append("done")

        task = asyncio.create_task(producer())
        got = await async_wait_for("the producer", lambda: box and box[0], 5)
        await task
        return got

    assert asyncio.run(main()) == "done"


def test_async_wait_for_fails_with_the_same_message() -> None:
    with pytest.raises(AssertionError, match=r"nothing: not within 0.02 s \(last: None\)"):
        asyncio.run(async_wait_for("nothing", lambda: None, 0.02, every=0.005))


def test_loop_pump_runs_the_given_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        box: list[int] = []
        loop.call_later(0.01, box.append, 1)
        assert wait_for("the callback", lambda: box, 5, pump=loop_pump(loop)) == [1]
    finally:
        loop.close()


def test_file_helpers(tmp_path: Path) -> None:
    log = tmp_path / "heron.log"
    assert file_text(log)() == ""
    log.write_text("start-up reconciliation: clean\n")
    assert wait_for("the log", file_text(log), 1) == "start-up reconciliation: clean\n"
    wait_for_text(log, "clean", 1)
    with pytest.raises(AssertionError, match=r"'dirty' in heron\.log"):
        wait_for_text(log, "dirty", 0.05)
