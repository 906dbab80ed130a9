"""The stored order record keeps what the request asked for: its class (bracket, OCO, OTO) and its
exit legs' prices, so a view shows them before the broker answered, when it refused, and after a
restart (the broker's view of an order is not kept across a restart).

Alpaca's OCO body has no top-level ``limit_price``: its order is the take-profit limit with the
stop-loss as its leg (docs/alpaca-rules.md, "Brackets, OCO, OTO": [ORD "OCO Orders"]).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.orders.tables import orders_table
from services.orders.transitions import OrderState
from tests.unit.orders.conftest import Rig


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def oco_exit() -> OrderRequest:
    return OrderRequest("AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(5),
                        order_class=OrderClass.OCO, take_profit=OrderLegSpec(limit_price=Decimal("110.5")),
                        stop_loss=OrderLegSpec(stop_price=Decimal("95.25")))  # fmt: skip


def test_an_oco_exit_the_broker_refused_keeps_its_class_and_prices_through_a_restart(rig: Rig) -> None:
    # an exit needs a position to exit (Heron's qty_available rule refuses it before the broker)
    entry = run(rig.engine.submit(OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY,
                                               qty=Decimal(5), limit_price=Decimal(100))))  # fmt: skip
    rig.broker.fill(rig.broker.by_client[entry.client_order_id], Decimal(5), Decimal(100))
    rig.broker.faults.reject_submit.append("potential wash trade detected")
    res = run(rig.engine.submit(oco_exit()))
    assert res.state is OrderState.REJECTED and res.client_order_id is not None
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.snapshot is None  # the broker never reported the order
    shown = rig.store.view(rec)
    assert shown.status is OrderStatus.REJECTED and shown.order_class is OrderClass.OCO
    assert (shown.limit_price, shown.stop_price) == (Decimal("110.5"), Decimal("95.25"))
    rig.store.flush()
    new = rig.restart()
    run(new.engine.recover())
    again = new.store.find(client_order_id=res.client_order_id)
    assert again is not None
    shown = new.store.view(again)
    assert shown.order_class is OrderClass.OCO and shown.type is OrderType.LIMIT
    assert (shown.limit_price, shown.stop_price) == (Decimal("110.5"), Decimal("95.25"))
    meta = new.store.meta(again.client_order_id)
    assert meta is not None and meta.stop_loss == OrderLegSpec(stop_price=Decimal("95.25"))


def test_a_bracket_parent_is_a_bracket_after_a_restart(rig: Rig) -> None:
    req = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(5),
                       limit_price=Decimal(100), order_class=OrderClass.BRACKET,
                       take_profit=OrderLegSpec(limit_price=Decimal(105)),
                       stop_loss=OrderLegSpec(Decimal("94.5"), Decimal(95)))  # fmt: skip
    res = run(rig.engine.submit(req))
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(5), Decimal(100))
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rig.store.view(rec).order_class is OrderClass.BRACKET
    rig.store.flush()
    new = rig.restart()
    run(new.engine.recover())
    again = new.store.find(client_order_id=res.client_order_id)
    assert again is not None
    shown = new.store.view(again)
    assert shown.order_class is OrderClass.BRACKET and shown.limit_price == Decimal(100)
    assert shown.stop_price is None  # a bracket's own order is its entry: the exits are its legs
    meta = new.store.meta(again.client_order_id)
    assert meta is not None and meta.take_profit == OrderLegSpec(limit_price=Decimal(105))
    assert meta.stop_loss == OrderLegSpec(limit_price=Decimal("94.5"), stop_price=Decimal(95))


def test_a_row_written_before_the_class_was_kept_still_reads(rig: Rig) -> None:
    res = run(rig.engine.submit(OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY,
                                             qty=Decimal(1), limit_price=Decimal(100))))  # fmt: skip
    rig.store.flush()
    with rig.db.connect() as conn:
        blob = json.loads(conn.execute(select(orders_table.c.legs)).scalar_one())
    for key in ("order_class", "take_profit", "stop_loss"):
        del blob["meta"][key]
    with rig.db.begin() as conn:
        conn.execute(update(orders_table).values(legs=json.dumps(blob)))
    new = rig.restart()
    run(new.engine.recover())
    again = new.store.find(client_order_id=res.client_order_id)
    assert again is not None and new.store.view(again).order_class is OrderClass.SIMPLE
