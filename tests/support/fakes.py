"""Small fakes shared by test packages (the fake broker is tests/support/fake_broker.py, the clocks
tests/support/clock.py)."""

from __future__ import annotations

from datetime import datetime


class AlwaysOpen:
    """Market hours that are always regular hours: the engine's ``hours`` for tests about orders,
    not about the session calendar."""

    def is_open(self, ts: datetime) -> bool:
        return True

    def is_extended(self, ts: datetime) -> bool:
        return False
