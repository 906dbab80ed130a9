"""An order as the venue keeps it (:class:`VenueOrder`), the status sets the engine works with, the
order's SQLite record (``to_record`` / ``from_record``), and the trade updates the engine queues
(:class:`TradeUpdate`; services/exchange/http/entities.py writes both as Alpaca's JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradeUpdateKind

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


@dataclass(frozen=True, slots=True)
class Execution:
    """What a fill executed: its id, price and quantity, and the position after it."""

    execution_id: str
    price: Decimal
    qty: Decimal
    position_qty: Decimal


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """One event on trade_updates, with the order (and its legs) as they were when it happened."""

    event: TradeUpdateKind
    at: datetime
    order: VenueOrder
    legs: tuple[VenueOrder, ...] | None = None
    execution: Execution | None = None
