"""How the order store's rows are written and read back: ``orders`` rows (an order with its legs and
meta as JSON) and ``order_fills`` rows. Reading refuses what Heron would not have written.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import Fill, OrderLegSpec
from services.orders.journal import STORED_MAX, sane_amount
from services.orders.records import BrokerLeg, OrderMeta, OrderRecord
from services.orders.tables import fills_table
from services.orders.transitions import OrderState


def order_row(rec: OrderRecord, meta: OrderMeta, updated_at: datetime) -> dict[str, Any]:
    """The ``orders`` row of one order: its columns, and its legs and meta as JSON."""
    legs = {
        k: {
            "client_order_id": v.client_order_id,
            "qty": None if v.qty is None else format(v.qty, "f"),
            "filled_qty": format(v.filled_qty, "f"),
            "notional_filled": format(v.notional_filled, "f"),
            "inferred_open": format(v.inferred_open, "f"),
        }
        for k, v in rec.legs.items()
    }
    extra = {
        "type": meta.type.value,
        "time_in_force": meta.time_in_force.value,
        "limit_price": None if meta.limit_price is None else format(meta.limit_price, "f"),
        "stop_price": None if meta.stop_price is None else format(meta.stop_price, "f"),
        "pending_replace_client_id": rec.pending_replace_client_id,
        "cancel_requested": rec.cancel_requested,
        "order_class": meta.order_class.value,
        "take_profit": _leg_json(meta.take_profit),
        "stop_loss": _leg_json(meta.stop_loss),
    }
    values: dict[str, Any] = {
        "client_order_id": rec.client_order_id,
        "current_client_order_id": rec.current_client_order_id,
        "broker_order_id": rec.broker_order_id,
        "parent_client_order_id": rec.parent_client_order_id,
        "symbol": rec.symbol,
        "side": rec.side.value,
        "qty": rec.qty,
        "filled_qty": rec.filled_qty,
        "avg_fill_price": rec.avg_fill_price,
        "overfill_qty": rec.overfill_qty,
        "state": rec.state.value,
        "previous_state": rec.previous_state.value,
        "broker_status": rec.broker_status,
        "source": rec.source,
        "created_at": meta.created_at,
        "updated_at": updated_at,
        "legs": json.dumps({"legs": legs, "meta": extra}),
    }
    return values


def _price(v: Decimal | None) -> str | None:
    return None if v is None else format(v, "f")


def _leg_json(leg: OrderLegSpec | None) -> dict[str, str | None] | None:
    return (
        None
        if leg is None
        else {"limit_price": _price(leg.limit_price), "stop_price": _price(leg.stop_price)}
    )


def _dec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


def _leg_of(v: Any) -> OrderLegSpec | None:
    """An exit leg's prices as stored (absent in rows written before Heron kept them)."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError(f"leg {v!r} is not a JSON object")
    leg = OrderLegSpec(_dec(v.get("limit_price")), _dec(v.get("stop_price")))
    sane_amount("leg limit_price", leg.limit_price)
    sane_amount("leg stop_price", leg.stop_price)
    return leg


def order_from_row(m: Any) -> tuple[OrderRecord, OrderMeta]:
    """One ``orders`` row; raises one of ``ROW_ERRORS`` for anything Heron would not have written."""
    state = OrderState(m["state"])
    blob = json.loads(m["legs"])
    if (
        not isinstance(blob, dict)
        or not isinstance(blob.get("legs"), dict)
        or not isinstance(blob.get("meta"), dict)
    ):
        raise ValueError("legs is not a JSON object with 'legs' and 'meta' objects")
    sane_amount("qty", m["qty"])
    for name in ("filled_qty", "overfill_qty"):
        value = m[name]
        if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= STORED_MAX:
            raise ValueError(f"{name} {value!r} is not a sane amount")
    sane_amount("avg_fill_price", m["avg_fill_price"])
    rec = OrderRecord(
        client_order_id=m["client_order_id"],
        symbol=m["symbol"],
        side=OrderSide(m["side"]),
        qty=m["qty"],
        source=m["source"],
        state=state,
        previous_state=OrderState(m["previous_state"]),
        broker_status=m["broker_status"],
        broker_order_id=m["broker_order_id"],
        current_client_order_id=m["current_client_order_id"],
        filled_qty=m["filled_qty"],
        avg_fill_price=m["avg_fill_price"],
        overfill_qty=m["overfill_qty"],
        parent_client_order_id=m["parent_client_order_id"],
        pending_replace_client_id=blob["meta"].get("pending_replace_client_id"),
        cancel_requested=bool(blob["meta"].get("cancel_requested")),
    )
    for bid, leg in blob["legs"].items():
        rec.legs[bid] = BrokerLeg(
            bid,
            leg["client_order_id"],
            None if leg["qty"] is None else Decimal(leg["qty"]),
            Decimal(leg["filled_qty"]),
            Decimal(leg["notional_filled"]),
            Decimal(leg["inferred_open"]),
        )
    meta = OrderMeta(
        created_at=m["created_at"],
        type=OrderType(blob["meta"]["type"]),
        time_in_force=TimeInForce(blob["meta"]["time_in_force"]),
        limit_price=_dec(blob["meta"].get("limit_price")),
        stop_price=_dec(blob["meta"].get("stop_price")),
        # rows written before Heron kept the class read as simple: what their view always showed
        order_class=OrderClass(blob["meta"].get("order_class", OrderClass.SIMPLE.value)),
        take_profit=_leg_of(blob["meta"].get("take_profit")),
        stop_loss=_leg_of(blob["meta"].get("stop_loss")),
    )
    sane_amount("limit_price", meta.limit_price)
    sane_amount("stop_price", meta.stop_price)
    return rec, meta


def fill_row(fill: Fill, logical_id: str, *, inferred: bool) -> Any:
    """The fills-table insert of one booked fill."""
    return insert(fills_table).values(
        order_id=fill.order_id,
        execution_id=fill.execution_id,
        client_order_id=fill.client_order_id,
        logical_id=logical_id,
        symbol=fill.symbol,
        side=fill.side.value,
        qty=fill.qty,
        price=fill.price,
        ts=fill.ts,
        inferred=inferred,
    )


def fill_from_row(m: Any) -> Fill:
    """One ``order_fills`` row as the fill it books."""
    return Fill(m["execution_id"], m["order_id"], m["client_order_id"], m["symbol"], OrderSide(m["side"]),
                m["qty"], m["price"], m["ts"])  # fmt: skip
