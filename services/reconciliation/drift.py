"""What the drift banner says: the worst open incident, its severity and a one-line summary.

Decided here, next to the reconciler, so no panel computes it; the reconciler publishes the result
as :class:`~services.domain.events.IncidentsChangedEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.domain.enums import IncidentSeverity
from services.domain.events import IncidentsChangedEvent
from services.domain.incidents import Incident


def worst_first(incidents: Iterable[Incident]) -> list[Incident]:
    """Critical before warning, then the oldest first (ties keep their order)."""
    return sorted(incidents, key=lambda i: (-i.severity.rank, i.opened_at))


def worst_severity(incidents: Iterable[Incident]) -> IncidentSeverity | None:
    """The severity of the worst incident, or None when there is none."""
    return max((i.severity for i in incidents), key=lambda s: s.rank, default=None)


def drift_summary(incidents: Iterable[Incident]) -> str:
    """One line naming the worst incident and how many more there are ("" when there is none)."""
    ordered = worst_first(incidents)
    if not ordered:
        return ""
    first = ordered[0]
    more = f" (+{len(ordered) - 1} more)" if len(ordered) > 1 else ""
    return f"{first.detail}: local {first.local_value}, broker {first.broker_value}{more}"


def incidents_changed(ts: datetime, open_incidents: Iterable[Incident]) -> IncidentsChangedEvent:
    """The event for this set of open incidents."""
    ordered = worst_first(open_incidents)
    return IncidentsChangedEvent(ts, tuple(ordered), worst_severity(ordered), drift_summary(ordered))
