"""Builders shared by the order tests: broker Order snapshots (the clocks are in tests/support/clock.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Order
from tests.support.clock import T0


def order(
    *,
    id: str = "b-1",
    cid: str = "hr-m-1",
    qty: str = "10",
    filled: str = "0",
    avg: str | None = None,
    status: OrderStatus = OrderStatus.NEW,
    t: int = 0,
    symbol: str = "AAPL",
    side: OrderSide = OrderSide.BUY,
    **kw: object,
) -> Order:
    ts = T0 + timedelta(seconds=t)
    o = Order(
        id=id,
        client_order_id=cid,
        symbol=symbol,
        side=side,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        status=status,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal(avg) if avg is not None else None,
        limit_price=Decimal("100"),
        created_at=T0,
        updated_at=ts,
        submitted_at=T0,
    )
    return replace(o, **kw) if kw else o  # type: ignore[arg-type]
