"""Alpaca's entities as JSON, from the venue's typed results: the Order entity (REST answers and
trade updates) and the trade_updates event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.domain.enums import OrderClass
from services.exchange.book import OrderBook
from services.exchange.ledger import dstr, rfc3339
from services.exchange.orders import TradeUpdate, VenueOrder


def order_entity(o: VenueOrder, legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Alpaca's Order JSON: every key, decimals as strings, RFC3339 ``Z`` timestamps."""

    def ts(v: datetime | None) -> str | None:
        return rfc3339(v) if v is not None else None

    return {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": rfc3339(o.created_at),
        "updated_at": rfc3339(o.updated_at),
        "submitted_at": rfc3339(o.submitted_at),
        "filled_at": ts(o.filled_at),
        "expired_at": ts(o.expired_at),
        "expires_at": ts(o.expires_at),
        "canceled_at": ts(o.canceled_at),
        "failed_at": ts(o.failed_at),
        "replaced_at": ts(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": o.asset_id,
        "symbol": o.symbol,
        "asset_class": o.asset_class,
        "notional": dstr(o.notional),
        "qty": dstr(o.qty),
        "filled_qty": dstr(o.filled_qty),
        "filled_avg_price": dstr(o.filled_avg_price),
        "order_class": "" if o.order_class == OrderClass.SIMPLE else o.order_class,
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": o.position_intent,
        "time_in_force": o.time_in_force,
        "limit_price": dstr(o.limit_price),
        "stop_price": dstr(o.stop_price),
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": legs,
        "trail_percent": dstr(o.trail_percent),
        "trail_price": dstr(o.trail_price),
        "hwm": dstr(o.hwm),
        "subtag": None,
        "source": None,
    }


def order_json(book: OrderBook, o: VenueOrder, *, nested: bool = True) -> dict[str, Any]:
    """``o`` as Alpaca's Order; with its legs when ``nested`` and it has any."""
    legs = None
    if o.leg_ids and nested:
        legs = [order_entity(book.orders[i]) for i in o.leg_ids if i in book.orders]
    return order_entity(o, legs)


def trade_update_json(update: TradeUpdate) -> dict[str, Any]:
    """The ``data`` of a trade_updates message."""
    legs = None if update.legs is None else [order_entity(leg) for leg in update.legs]
    data: dict[str, Any] = {
        "event": update.event,
        "timestamp": rfc3339(update.at),
        "order": order_entity(update.order, legs),
    }
    x = update.execution
    if x is not None:
        data.update(
            execution_id=x.execution_id,
            price=dstr(x.price),
            qty=dstr(x.qty),
            position_qty=dstr(x.position_qty),
        )
    return data
