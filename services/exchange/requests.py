"""Typed order requests the venue accepts: the HTTP layer (services/exchange/http/order_requests.py)
turns Alpaca's JSON bodies into these; the matching engine never sees JSON."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.exchange.contracts import Instrument


@dataclass(frozen=True, slots=True)
class TakeProfit:
    """A bracket/OCO/OTO ``take_profit`` object (``limit_price`` None when the object was empty)."""

    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopLoss:
    """A bracket/OCO/OTO ``stop_loss`` object."""

    stop_price: Decimal | None = None
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """POST /v2/orders, its fields parsed: the instrument is known and tradable, the enums are
    members, the numbers are in range, the client order id is new."""

    instrument: Instrument
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass
    client_order_id: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    """PATCH /v2/orders/{order_id}, its fields parsed; None keeps the replaced order's value."""

    client_order_id: str
    time_in_force: TimeInForce
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
