"""REST health: HEALTHY → DEGRADED → PRESERVATION on repeated failures, back after recovery.

In PRESERVATION no new orders go out (submits and replaces are refused locally) but cancels do.
Every state carries a reason a person can read. Transitions are published on the EventBus as a
:class:`RestHealthEvent` and as ``ConnectionStateEvent(channel="rest")``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from services.broker.base import BrokerRejected
from services.domain.bus import EventBus
from services.domain.enums import ConnectionState
from services.domain.events import ConnectionStateEvent, Event

log = logging.getLogger(__name__)


class RestHealth(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    PRESERVATION = "preservation"


_AS_CONNECTION = {
    RestHealth.HEALTHY: ConnectionState.LIVE,
    RestHealth.DEGRADED: ConnectionState.RECONNECTING,
    RestHealth.PRESERVATION: ConnectionState.SAFE_MODE,
}


@dataclass(frozen=True, slots=True)
class RestHealthEvent(Event):
    health: RestHealth
    reason: str


class OrdersSuspended(BrokerRejected):
    """Refused locally, never sent: the REST connection is in preservation mode."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"new orders are suspended: {reason}", status=0)


class HealthMonitor:
    """Counts consecutive failures and successes of broker calls. Loop thread only.

    ``degraded_after`` consecutive failures → DEGRADED; ``preservation_after`` → PRESERVATION;
    ``recover_after`` consecutive successes → HEALTHY. An authentication failure goes straight to
    PRESERVATION: no order can succeed with refused keys.
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        degraded_after: int = 3,
        preservation_after: int = 8,
        recover_after: int = 5,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < degraded_after <= preservation_after or recover_after <= 0:
            raise ValueError("need 0 < degraded_after <= preservation_after and recover_after > 0")
        self._bus = bus
        self.degraded_after = degraded_after
        self.preservation_after = preservation_after
        self.recover_after = recover_after
        self._now = now
        self._clock = clock
        self.state = RestHealth.HEALTHY
        self.reason = "no errors"
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.total_failures = 0
        self.last_error: str = ""

    @property
    def allows_new_orders(self) -> bool:
        return self.state is not RestHealth.PRESERVATION

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.state is not RestHealth.HEALTHY and self.consecutive_successes >= self.recover_after:
            self._move(
                RestHealth.HEALTHY,
                f"recovered after {self.consecutive_successes} successful calls "
                f"(last error: {self.last_error})",
            )

    def record_failure(self, reason: str, *, auth: bool = False) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        self.total_failures += 1
        self.last_error = reason
        n = self.consecutive_failures
        if auth:
            self._move(RestHealth.PRESERVATION, f"the broker refused our keys: {reason}")
        elif n >= self.preservation_after:
            self._move(RestHealth.PRESERVATION, f"{n} broker calls failed in a row; last: {reason}")
        elif n >= self.degraded_after and self.state is RestHealth.HEALTHY:
            self._move(RestHealth.DEGRADED, f"{n} broker calls failed in a row; last: {reason}")

    def _move(self, state: RestHealth, reason: str) -> None:
        if state is self.state:
            self.reason = reason
            return
        log.warning("broker REST health %s -> %s: %s", self.state, state, reason)
        self.state = state
        self.reason = reason
        if self._bus is not None:
            ts = self._now()
            self._bus.publish(RestHealthEvent(ts, state, reason))
            self._bus.publish(ConnectionStateEvent(ts, "rest", _AS_CONNECTION[state], reason))
