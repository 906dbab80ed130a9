"""The shared small fakes (tests/support/fakes.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.fakes import AlwaysOpen


def test_always_open_is_regular_hours_at_any_time() -> None:
    hours = AlwaysOpen()
    saturday_night = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)
    christmas = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)
    for ts in (saturday_night, christmas):
        assert hours.is_open(ts) and not hours.is_extended(ts)
