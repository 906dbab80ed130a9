"""``Suspension``: while it holds, a client of the exchange's address sends nothing there.

When the local exchange dies its port is free, and whatever binds it next would receive the keys
that the REST clients send in every request's headers and the streams in their auth message. The
terminal suspends every client of that address the moment the death is noticed and resumes them
once its own restarted exchange listens there again. Thread-safe: suspended from the thread that
notices the death, checked on the worker threads that send requests.
"""

from __future__ import annotations

from services.broker.base import BrokerNotSent


class Suspension:
    """A reason to send nothing, or None. Reads and writes are single attribute accesses."""

    def __init__(self) -> None:
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def suspend(self, reason: str) -> None:
        self._reason = reason

    def resume(self) -> None:
        self._reason = None

    def check(self, what: str) -> None:
        """Raise :class:`BrokerNotSent` (nothing sent) while suspended."""
        reason = self._reason
        if reason is not None:
            raise BrokerNotSent(f"{what}: not sent: {reason}")
