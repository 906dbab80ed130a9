"""When the position check waits for an order to catch up with the broker, and what it says.

An order Heron holds open that is not open at the broker with the same filled quantity means an
execution Heron has not processed yet may already be in the broker's positions; the reconciler
postpones the position comparison rather than report drift the engine is about to close. That wait
is said once when it starts (INFO) and once when it ends (INFO), not every cycle; a wait that
outlasts its limit is cut short (positions compared anyway, so a stuck order never silences drift)
with one WARNING per stuck order.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

log = logging.getLogger("services.reconciliation.reconciler")


class PositionCheckWait:
    """The reconciler's postponed position check: since when, and for which order."""

    def __init__(self, limit: timedelta) -> None:
        self.limit = limit
        #: when the position check was first postponed, None while it runs every cycle
        self.since: datetime | None = None
        #: the order the check waits for (said once), and the one warned about (warned once)
        self.waiting_for: str | None = None
        self.warned_for: str | None = None

    def overdue(self, now: datetime) -> bool:
        return self.since is not None and now - self.since >= self.limit

    def postponed(self, now: datetime) -> None:
        if self.since is None:
            self.since = now

    def waiting(self, client_order_id: str) -> None:
        """The check waits for ``client_order_id`` to catch up with the broker."""
        if self.waiting_for is None:
            log.info("position check deferred: %s is not caught up with the broker", client_order_id)
        elif self.waiting_for != client_order_id:
            log.debug("position check still deferred: now for %s", client_order_id)
        self.waiting_for = client_order_id

    def compared(self, now: datetime, overdue: bool) -> None:
        """Positions are compared this cycle: end the wait, or say once that it was cut short."""
        waited = (now - self.since).total_seconds() if self.since else 0.0
        self.since = None
        if overdue:
            if self.waiting_for is not None and self.warned_for != self.waiting_for:
                log.warning(
                    "positions compared although executions still look in transit: %s is not caught "
                    "up with the broker after %.0f s (limit %.0f s)",
                    self.waiting_for,
                    waited,
                    self.limit.total_seconds(),
                )
                self.warned_for = self.waiting_for
            return  # still waiting: the end of the wait is said once the order catches up
        if self.waiting_for is not None:
            log.info("position check resumed: %s caught up with the broker", self.waiting_for)
        self.waiting_for = self.warned_for = None
