"""``build_state_report``: the ``--state-report`` JSON of docs/state-report.md (version 1).

Only the sections this layer knows are filled; ``strategies`` and ``shadow`` are added by their
owners later, and any section whose source is not given is omitted, never invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from services.domain.enums import Mode, TradingState
from services.domain.money import decimal_str
from services.orders.store import OrderStore


class IncidentLike(Protocol):
    id: str
    kind: str
    severity: str
    subject: str
    local_value: str
    broker_value: str


class ReconcilerLike(Protocol):
    """What the report reads from :class:`services.reconciliation.reconciler.Reconciler`."""

    last_run: Any  # datetime | None
    last_clean: bool | None
    broker_positions: Mapping[str, Any]

    def open_incidents(self) -> Any: ...


class ClosingLike(Protocol):
    """What the report reads from :class:`services.orders.closing.PositionCloser`."""

    def report_section(self) -> dict[str, Any] | None: ...


def build_state_report(
    *,
    mode: Mode | str,
    trading_state: TradingState | str,
    store: OrderStore | None = None,
    connection: Mapping[str, Any] | None = None,
    health: Mapping[str, Any] | None = None,
    reconciler: ReconcilerLike | None = None,
    closing: ClosingLike | None = None,
) -> dict[str, Any]:
    """Return the state report (docs/state-report.md) as a JSON-ready dict.

    ``health``: the ``connection``, ``data`` and ``trading`` sections as the status bar derives them
    (:meth:`services.broker.status.HealthStatus.report`); its ``connection`` replaces ``connection``.
    """
    report: dict[str, Any] = {
        "version": 1,
        "mode": str(Mode(mode).value if not isinstance(mode, Mode) else mode.value),
        "trading_state": TradingState(trading_state).value,
    }
    if connection is not None:
        report["connection"] = dict(connection)
    for key in ("connection", "data", "trading"):
        if health is not None and health.get(key) is not None:
            report[key] = dict(health[key])
    if store is not None:
        open_list = []
        for rec in store.open_orders():
            open_list.append(
                {
                    "id": rec.broker_order_id or "",
                    "client_order_id": rec.current_client_order_id,
                    "symbol": rec.symbol,
                    "side": rec.side.value,
                    "qty": decimal_str(rec.qty) or "0",
                    "filled_qty": decimal_str(rec.filled_qty) or "0",
                    "status": store.status_of(rec).value,
                    "source": rec.source,
                }
            )
        report["orders"] = {"by_status": store.counts_by_status(), "open": open_list}
        positions: dict[str, Any] = {
            "local": {s: decimal_str(p.qty) for s, p in sorted(store.positions.items()) if p.qty != 0}
        }
        if reconciler is not None and reconciler.last_run is not None:
            positions["broker"] = {
                s: decimal_str(q) for s, q in sorted(reconciler.broker_positions.items()) if q != 0
            }
        report["positions"] = positions
    if reconciler is not None and reconciler.last_run is not None:
        report["reconciliation"] = {
            "last_run": reconciler.last_run.isoformat().replace("+00:00", "Z"),
            "clean": bool(reconciler.last_clean),
            "open_incidents": [
                {
                    "id": i.id,
                    "kind": i.kind,
                    "severity": i.severity,
                    "subject": i.subject,
                    "local": i.local_value,
                    "broker": i.broker_value,
                }
                for i in reconciler.open_incidents()
            ],
        }
    section = closing.report_section() if closing is not None else None
    if section is not None:  # per symbol, the latest close / flatten outcome (flat or still open, why)
        report["closing"] = section
    return report
