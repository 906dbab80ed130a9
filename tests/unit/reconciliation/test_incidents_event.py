"""The reconciler publishes IncidentsChangedEvent whenever its set of open incidents changes, with
the worst severity and the banner's summary decided in services (not by a panel)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import IncidentSeverity
from services.domain.events import IncidentsChangedEvent
from services.domain.incidents import Incident, IncidentKind
from services.reconciliation.drift import drift_summary, incidents_changed, worst_first, worst_severity
from services.reconciliation.reconciler import Reconciler
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import Rig, build

T0 = datetime(2026, 3, 2, 15, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def recon(r: Rig) -> Reconciler:
    return Reconciler(r.broker, r.store, r.journal, r.trading, r.bus, r.clock, r.db)


def events(r: Rig) -> list[IncidentsChangedEvent]:
    seen: list[IncidentsChangedEvent] = []
    r.bus.subscribe(IncidentsChangedEvent, seen.append)
    return seen


def incident(n: int, severity: IncidentSeverity, *, minutes: int = 0) -> Incident:
    kind = IncidentKind.POSITION_QTY if severity is IncidentSeverity.CRITICAL else IncidentKind.POSITION_PRICE
    return Incident(
        f"inc-{n}", kind, severity, f"S{n}", "1", "2", f"S{n} differs", T0 + timedelta(minutes=minutes)
    )


def test_worst_severity_and_summary() -> None:
    warn_old = incident(1, IncidentSeverity.WARNING)
    crit_new = incident(2, IncidentSeverity.CRITICAL, minutes=5)
    crit_newer = incident(3, IncidentSeverity.CRITICAL, minutes=9)
    assert worst_severity([]) is None and drift_summary([]) == ""
    assert worst_severity([warn_old]) is IncidentSeverity.WARNING
    assert worst_severity([warn_old, crit_new]) is IncidentSeverity.CRITICAL
    assert worst_first([warn_old, crit_newer, crit_new]) == [crit_new, crit_newer, warn_old]
    assert drift_summary([warn_old]) == "S1 differs: local 1, broker 2"
    assert drift_summary([warn_old, crit_newer, crit_new]) == "S2 differs: local 1, broker 2 (+2 more)"
    event = incidents_changed(T0, [warn_old, crit_new])
    assert event.incidents == (crit_new, warn_old) and event.count == 2
    assert event.worst is IncidentSeverity.CRITICAL and event.summary.startswith("S2 differs")


def test_event_fires_on_open_and_on_acknowledge_with_the_worst_severity(db: Database) -> None:
    r = build(db, ManualClock())
    seen = events(r)
    rc = recon(r)
    run(rc.startup())
    assert seen == []  # clean: nothing changed
    r.store.book_adjustment("AAPL", Decimal(10), Decimal("100"), "seed")
    r.broker.set_position("AAPL", Decimal(10), Decimal("100.02"))  # price drift: a warning
    r.clock.advance(30)
    run(rc.run_cycle())
    [first] = seen
    assert first.worst is IncidentSeverity.WARNING and [i.kind for i in first.incidents] == ["position_price"]
    assert first.summary == "AAPL average price differs: local 100, broker 100.02"
    run(rc.run_cycle())
    assert len(seen) == 1  # the same drift again: the open set did not change
    r.broker.set_position("MSFT", Decimal(-3), Decimal(200))  # quantity drift: critical
    run(rc.run_cycle())
    second = seen[-1]
    assert len(seen) == 2 and second.worst is IncidentSeverity.CRITICAL and second.count == 2
    assert second.incidents[0].subject == "MSFT" and second.summary.endswith("(+1 more)")
    rc.acknowledge(second.incidents[0].id, "bob", "known manual trade")
    third = seen[-1]
    assert len(seen) == 3 and third.worst is IncidentSeverity.WARNING and third.count == 1
    rc.acknowledge(third.incidents[0].id, "bob")
    assert len(seen) == 4 and seen[-1].worst is None and seen[-1].incidents == () and seen[-1].summary == ""


@pytest.mark.expected_log(r"^services\.reconciliation\.reconciler: incident \S+ closed itself")
def test_event_fires_when_an_incident_resolves_itself_and_on_adopt(db: Database) -> None:
    r = build(db, ManualClock())
    r.broker.set_position("AAPL", Decimal(7), Decimal("50"))
    r.broker.set_position("TSLA", Decimal(-2), Decimal(300))
    seen = events(r)
    rc = recon(r)
    run(rc.startup())
    assert len(seen) == 1 and seen[0].count == 2 and seen[0].worst is IncidentSeverity.CRITICAL
    assert rc.incidents_event().incidents == seen[0].incidents
    r.broker.set_position("TSLA", Decimal(0), Decimal(300))  # undone outside: local equals broker again
    r.clock.advance(30)
    run(rc.run_cycle())
    assert len(seen) == 2 and [i.subject for i in seen[-1].incidents] == ["AAPL"]
    run(rc.adopt_broker_state(seen[-1].incidents[0].id, "alice"))
    assert len(seen) == 3 and seen[-1].count == 0 and seen[-1].worst is None


def test_a_restarted_reconciler_starts_from_the_stored_incidents(db: Database) -> None:
    r = build(db, ManualClock())
    r.broker.set_position("AAPL", Decimal(7), Decimal("50"))
    run(recon(r).startup())
    r2 = r.restart()
    seen = events(r2)
    rc2 = recon(r2)
    now = rc2.incidents_event()
    assert now.count == 1 and now.worst is IncidentSeverity.CRITICAL
    assert isinstance(now.incidents[0].kind, IncidentKind)
    run(rc2.run_cycle())
    assert seen == []  # the same incident is still the only open one
