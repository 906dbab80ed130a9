"""Row types and table models of the reconciliation panel: incidents, and local-vs-broker
positions and open orders side by side. The rows are built from what the
:class:`~services.reconciliation.reconciler.Reconciler` and its order store hold; nothing here
decides whether something is drift (a differing cell is only highlighted)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from widgets import theme
from widgets.models.columns import Column, KeyedTableModel
from widgets.models.common import TIMES, fmt_timestamp, zoned

DIFF_BG = theme.DIFF_BG
WARN_FG = theme.WARN
CRIT_FG = theme.DOWN
OK_FG = theme.UP
MUTED = theme.MUTED
DASH = "—"
NOT_FETCHED = "not fetched"


def dec_text(v: Decimal | None) -> str:
    if v is None:
        return DASH
    text = format(v, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def ts_text(ts: datetime | None) -> str:
    return DASH if ts is None else fmt_timestamp(ts)


def incident_status(inc: Any) -> str:
    if inc.acknowledged_at is None:
        return "open"
    if restricts(inc):
        return "acknowledged (reduce-only)"
    return inc.resolution or "acknowledged"


def restricts(inc: Any) -> bool:
    """An acknowledged, unadopted quantity drift: its symbol trades reduce-only at the broker's quantity."""
    return bool(inc.kind == "position_qty" and inc.resolution == "acknowledged")


def in_force(inc: Any) -> bool:
    """Open, or acknowledged and still restricting trading: Adopt can still settle it."""
    return inc.acknowledged_at is None or restricts(inc)


def _status_fg(inc: Any) -> str:
    if inc.acknowledged_at is not None:
        return MUTED
    return CRIT_FG if inc.severity == "critical" else WARN_FG


INCIDENT_COLUMNS: list[Column[Any]] = [
    Column("Status", incident_status, foreground=_status_fg),
    Column("Severity", lambda i: i.severity,
           foreground=lambda i: CRIT_FG if i.severity == "critical" else WARN_FG),
    Column(zoned("Opened"), lambda i: ts_text(i.opened_at), sort=lambda i: i.opened_at),
    Column("Kind", lambda i: i.kind.replace("_", " ")),
    Column("Subject", lambda i: i.subject),
    Column("Local", lambda i: i.local_value, numeric=True),
    Column("Broker", lambda i: i.broker_value, numeric=True),
    Column("Detail", lambda i: i.detail, tooltip=lambda i: _incident_tip(i)),
    Column("Resolved by", lambda i: i.acknowledged_by or DASH,
           tooltip=lambda i: _resolved_tip(i)),
]  # fmt: skip


def _resolved_tip(i: Any) -> str | None:
    return (
        None
        if i.acknowledged_at is None
        else f"{i.resolution} at {ts_text(i.acknowledged_at)} {TIMES.label()}"
    )


def _incident_tip(i: Any) -> str:
    return f"{i.id}\n{i.detail}\nlocal {i.local_value}, broker {i.broker_value}"


def incident_model(parent: Any = None) -> KeyedTableModel[Any]:
    return KeyedTableModel(INCIDENT_COLUMNS, key=lambda i: i.id, parent=parent)


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    local_qty: Decimal | None
    broker_qty: Decimal | None
    local_avg: Decimal | None
    broker_avg: Decimal | None

    @property
    def qty_differs(self) -> bool:
        return (self.local_qty or Decimal(0)) != (
            self.broker_qty or Decimal(0)
        ) and self.broker_qty is not None

    @property
    def avg_differs(self) -> bool:
        return (
            self.local_avg is not None
            and self.broker_avg is not None
            and self.broker_avg != 0
            and abs(self.local_avg - self.broker_avg) / abs(self.broker_avg) > Decimal("1e-4")
        )


def _qty_bg(r: PositionRow) -> str | None:
    return DIFF_BG if r.qty_differs else None


def _avg_bg(r: PositionRow) -> str | None:
    return DIFF_BG if r.avg_differs else None


POSITION_COLUMNS: list[Column[PositionRow]] = [
    Column("Symbol", lambda r: r.symbol),
    Column("Local qty", lambda r: dec_text(r.local_qty), numeric=True, background=_qty_bg),
    Column("Broker qty", lambda r: dec_text(r.broker_qty), numeric=True, background=_qty_bg,
           header_tip="As of the last reconciliation run"),
    Column("Local avg", lambda r: dec_text(r.local_avg), numeric=True, background=_avg_bg),
    Column("Broker avg", lambda r: dec_text(r.broker_avg), numeric=True, background=_avg_bg,
           header_tip="As of the last reconciliation run"),
]  # fmt: skip


def position_model(parent: Any = None) -> KeyedTableModel[PositionRow]:
    return KeyedTableModel(POSITION_COLUMNS, key=lambda r: r.symbol, parent=parent)


@dataclass(frozen=True, slots=True)
class OrderRow:
    key: str
    client_order_id: str
    symbol: str
    side: str
    qty: str
    local_status: str
    broker_status: str

    @property
    def differs(self) -> bool:
        if self.broker_status == NOT_FETCHED:
            return False
        return DASH in (self.local_status, self.broker_status) or self.local_status != self.broker_status


def _order_bg(r: OrderRow) -> str | None:
    return DIFF_BG if r.differs else None


ORDER_COLUMNS: list[Column[OrderRow]] = [
    Column("Client order id", lambda r: r.client_order_id, tooltip=lambda r: f"broker id {r.key}"),
    Column("Symbol", lambda r: r.symbol),
    Column("Side", lambda r: r.side),
    Column("Qty", lambda r: r.qty, numeric=True),
    Column("Local status", lambda r: r.local_status, background=_order_bg),
    Column("Broker status", lambda r: r.broker_status, background=_order_bg),
]


def order_model(parent: Any = None) -> KeyedTableModel[OrderRow]:
    return KeyedTableModel(ORDER_COLUMNS, key=lambda r: r.key, parent=parent)


def position_rows(reconciler: Any) -> list[PositionRow]:
    """Local positions (the order store) beside the broker's (the reconciler's last run)."""
    local = {s: p for s, p in reconciler.store.positions.items() if p.qty != 0}
    details: dict[str, Any] | None = getattr(reconciler, "broker_position_details", None)
    broker_qty: dict[str, Decimal] = dict(reconciler.broker_positions)
    ran = reconciler.last_run is not None
    rows = []
    for sym in sorted(set(local) | set(broker_qty) | set(details or {})):
        lp = local.get(sym)
        bp = (details or {}).get(sym)
        rows.append(
            PositionRow(
                symbol=sym,
                local_qty=lp.qty if lp else Decimal(0),
                broker_qty=(broker_qty.get(sym, Decimal(0)) if ran else None),
                local_avg=lp.avg_price if lp else None,
                broker_avg=bp.avg_entry_price if bp is not None else None,
            )
        )
    return rows


def order_rows(reconciler: Any) -> list[OrderRow]:
    """Heron's open orders beside the broker's open orders (when the reconciler keeps them)."""
    store = reconciler.store
    broker_orders: list[Any] | None = getattr(reconciler, "broker_open_orders", None)
    rows: dict[str, OrderRow] = {}
    for rec in store.open_orders():
        o = store.view(rec)
        key = o.id or o.client_order_id
        rows[key] = OrderRow(key, o.client_order_id, o.symbol, o.side.value, dec_text(o.qty), o.status.value,
                             DASH if broker_orders is not None else NOT_FETCHED)  # fmt: skip
    for o in broker_orders or []:
        key = o.id
        mine = rows.get(key) or next(
            (r for r in rows.values() if r.client_order_id == o.client_order_id), None
        )
        if mine is not None:
            rows.pop(mine.key)
            rows[key] = OrderRow(key, mine.client_order_id, mine.symbol, mine.side, mine.qty,
                                 mine.local_status, o.status.value)  # fmt: skip
        else:
            rows[key] = OrderRow(key, o.client_order_id, o.symbol, o.side.value, dec_text(o.qty), DASH,
                                 o.status.value)  # fmt: skip
    # unknown-to-Heron broker orders the reconciler reported, when it does not keep the list
    if broker_orders is None:
        for inc in reconciler.incidents.values():
            if inc.kind == "unknown_broker_order" and inc.is_open and inc.subject not in rows:
                parts = inc.broker_value.split()
                side, qty, sym, status = (parts + [DASH] * 4)[:4]
                rows[inc.subject] = OrderRow(inc.subject, DASH, sym, side, qty, DASH, status)
    return list(rows.values())
