"""An order as the venue keeps it (:class:`VenueOrder`), the status sets the engine works with, and
the order's two written forms: its SQLite record (``to_record`` / ``from_record``) and Alpaca's Order
entity (``to_json``, the body of REST answers and trade updates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.exchange.ledger import dstr, rfc3339

ZERO = Decimal(0)
OPEN_STATUSES = frozenset({
    OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW,
    OrderStatus.HELD, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE,
})  # fmt: skip
CANCELABLE = OPEN_STATUSES - {OrderStatus.PENDING_CANCEL}
# PATCH /v2/orders/{id}: never while accepted / pending_new / pending_cancel / pending_replace; a
# partially filled order can be replaced (alpaca-rules.md "Replace (PATCH)").
REPLACEABLE = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.HELD})

_DECIMAL_FIELDS = {
    "qty",
    "notional",
    "notional_qty",
    "filled_qty",
    "filled_avg_price",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "hwm",
    "reserved",
}
_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "side": OrderSide,
    "type": OrderType,
    "time_in_force": TimeInForce,
    "order_class": OrderClass,
    "status": OrderStatus,
}
_TIME_FIELDS = {
    "created_at",
    "updated_at",
    "submitted_at",
    "filled_at",
    "expired_at",
    "expires_at",
    "canceled_at",
    "failed_at",
    "replaced_at",
    "eligible_at",
}


@dataclass(slots=True)
class VenueOrder:
    """One order as the venue keeps it. Mutable; only the engine changes it."""

    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    asset_class: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass  # simple, bracket, oco or oto
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    qty: Decimal | None = None
    notional: Decimal | None = None
    # A notional order's quantity, fixed at its first execution (notional / price). ``qty`` stays
    # null as Alpaca documents for notional orders (Order entity; Alpaca-API #191).
    notional_qty: Decimal | None = None
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    expires_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    position_intent: str | None = None
    parent_id: str | None = None
    leg_ids: list[str] = field(default_factory=list)
    oco_ids: list[str] = field(default_factory=list)
    triggered: bool = False
    opens_short: bool = False
    eligible_at: datetime | None = None
    reserved: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def work_qty(self) -> Decimal | None:
        """The quantity the order works: ``qty``, or for a notional order the quantity its notional
        bought at its first execution (None until then)."""
        return self.qty if self.qty is not None else self.notional_qty

    @property
    def remaining(self) -> Decimal:
        work = self.work_qty
        if work is None:
            return Decimal(1)  # an unpriced notional order: something is still to trade
        return work - self.filled_qty

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Decimal):
                v = str(v)
            elif isinstance(v, datetime):
                v = v.isoformat()
            out[f.name] = v
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> VenueOrder:
        kw: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for k, v in rec.items():
            if k not in names:
                continue
            if v is not None and k in _DECIMAL_FIELDS:
                v = Decimal(v)
            elif v is not None and k in _TIME_FIELDS:
                v = datetime.fromisoformat(v)
            elif k in _ENUM_FIELDS:
                v = _ENUM_FIELDS[k](v)
            kw[k] = v
        return cls(**kw)

    def to_json(self, legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Alpaca's Order JSON: every key, decimals as strings, RFC3339 ``Z`` timestamps."""

        def ts(v: datetime | None) -> str | None:
            return rfc3339(v) if v is not None else None

        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "submitted_at": rfc3339(self.submitted_at),
            "filled_at": ts(self.filled_at),
            "expired_at": ts(self.expired_at),
            "expires_at": ts(self.expires_at),
            "canceled_at": ts(self.canceled_at),
            "failed_at": ts(self.failed_at),
            "replaced_at": ts(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": dstr(self.notional),
            "qty": dstr(self.qty),
            "filled_qty": dstr(self.filled_qty),
            "filled_avg_price": dstr(self.filled_avg_price),
            "order_class": "" if self.order_class == OrderClass.SIMPLE else self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": dstr(self.limit_price),
            "stop_price": dstr(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": legs,
            "trail_percent": dstr(self.trail_percent),
            "trail_price": dstr(self.trail_price),
            "hwm": dstr(self.hwm),
            "subtag": None,
            "source": None,
        }
