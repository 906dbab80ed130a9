"""The shared test clocks (tests/support/clock.py) do what the tests that use them rely on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clock import T0, FakeClock, ManualClock


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    assert clock() == 1000.0 and FakeClock(0.0)() == 0.0
    assert clock.advance(2.5) == 1002.5 and clock() == 1002.5


def test_fake_clock_sleep_advances_records_and_yields_once() -> None:
    clock = FakeClock(0.0)
    order: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(30)
        order.append("slept")

    async def other() -> None:
        order.append("other ran")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert clock() == 30 and clock.sleeps == [30]
    assert order == ["other ran", "slept"]  # the sleep gave the loop a turn


def test_fake_clock_runs_scheduled_callbacks_once_their_time_comes() -> None:
    clock = FakeClock(0.0)
    ran: list[float] = []
    clock.at(5, lambda: ran.append(clock()))
    clock.at(10, lambda: ran.append(clock()))
    clock.advance(4.9)
    assert ran == []
    asyncio.run(clock.sleep(0.1))  # exactly 5: due
    assert ran == [5.0]
    clock.advance(20)
    clock.advance(20)
    assert ran == [5.0, 25.0]  # each callback once


def test_manual_clock_is_utc_and_moves_by_seconds_or_timedelta_keywords() -> None:
    clock = ManualClock()
    assert clock() == T0 and clock().tzinfo is UTC
    assert clock.advance(90) == T0 + timedelta(seconds=90)
    assert clock.advance(minutes=5) == T0 + timedelta(seconds=390)
    assert clock.advance(days=1) == T0 + timedelta(days=1, seconds=390)
    start = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
    assert ManualClock(start)() == start


def test_manual_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))
