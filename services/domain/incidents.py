"""A reconciliation incident: one drift between Heron's books and the broker's, and what became of it.

Opened by the :class:`~services.reconciliation.reconciler.Reconciler`, carried by
:class:`~services.domain.events.IncidentsChangedEvent`, shown by the drift banner and the
reconciliation panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.domain.enums import IncidentSeverity


class IncidentKind(StrEnum):
    """What differs."""

    POSITION_QTY = "position_qty"
    POSITION_PRICE = "position_price"
    UNKNOWN_BROKER_ORDER = "unknown_broker_order"
    MISSING_LOCAL_FILL = "missing_local_fill"

    @property
    def is_position(self) -> bool:
        return self in (IncidentKind.POSITION_QTY, IncidentKind.POSITION_PRICE)


class IncidentResolution(StrEnum):
    """How an incident stopped being open."""

    ACKNOWLEDGED = "acknowledged"  # an operator knows; a quantity drift keeps its symbol reduce-only
    ADOPTED = "adopted"  # an operator rewrote the local position from the broker
    RESOLVED = "resolved"  # local equals broker again


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    kind: IncidentKind
    severity: IncidentSeverity
    subject: str  # symbol or order id
    local_value: str
    broker_value: str
    detail: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolution: IncidentResolution | None = None

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None

    @property
    def signature(self) -> tuple[str, str, str, str]:
        return (self.kind, self.subject, self.local_value, self.broker_value)
