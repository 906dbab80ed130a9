"""Incidents in the database (``incidents`` table): one row per incident, rewritten on every change."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from services.domain.enums import IncidentSeverity
from services.domain.incidents import Incident, IncidentKind, IncidentResolution
from services.orders.tables import incidents_table
from services.storage import Database


class IncidentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, inc: Incident) -> None:
        with self.db.begin() as conn:
            conn.execute(delete(incidents_table).where(incidents_table.c.id == inc.id))
            conn.execute(
                insert(incidents_table).values(
                    id=inc.id,
                    kind=inc.kind.value,
                    severity=inc.severity.value,
                    subject=inc.subject,
                    local_value=inc.local_value,
                    broker_value=inc.broker_value,
                    detail=inc.detail,
                    opened_at=inc.opened_at,
                    acknowledged_at=inc.acknowledged_at,
                    acknowledged_by=inc.acknowledged_by,
                    resolution=inc.resolution.value if inc.resolution is not None else None,
                )
            )

    def load(self) -> dict[str, Incident]:
        """Every stored incident by id, the oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(select(incidents_table).order_by(incidents_table.c.opened_at)).all()
        out: dict[str, Incident] = {}
        for r in rows:
            m = r._mapping
            resolution = m["resolution"]
            out[m["id"]] = Incident(
                m["id"],
                IncidentKind(m["kind"]),
                IncidentSeverity(m["severity"]),
                m["subject"],
                m["local_value"],
                m["broker_value"],
                m["detail"],
                m["opened_at"],
                m["acknowledged_at"],
                m["acknowledged_by"],
                IncidentResolution(resolution) if resolution is not None else None,
            )
        return out
