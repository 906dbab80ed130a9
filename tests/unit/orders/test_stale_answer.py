"""Alpaca answers ``POST /v2/orders`` with the order as accepted (``accepted``, ``pending_new`` or
``new``) and the fills arrive later as ``trade_updates`` events (Alpaca API docs, "Orders"; noted in
docs/alpaca-rules.md, "Order lifecycle"). When that answer is applied after the stream's
fill, it shows ``filled_qty`` 0 below the booked quantity: an older view, not an anomaly to push at
the trader on every fill."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import OrderRequest
from tests.unit.orders.conftest import Rig


def test_the_post_answer_applied_after_the_fill_changes_nothing_and_warns_no_one(rig: Rig) -> None:
    req = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(10),
                       limit_price=Decimal(100))  # fmt: skip
    res = asyncio.run(rig.engine.submit(req))
    assert res.client_order_id is not None
    order_id = rig.broker.by_client[res.client_order_id]
    answer = dataclasses.replace(rig.broker.orders[order_id])  # as answered, before any fill
    rig.broker.fill(order_id, Decimal(10), Decimal(100))
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rig.store.positions["AAPL"].qty == Decimal(10)
    assert answer.filled_qty == 0 and answer.status is not OrderStatus.FILLED
    before = len(rig.events)
    rig.engine._apply_snapshot(rec, answer)
    assert rig.store.positions["AAPL"].qty == Decimal(10)
    assert not [e for e in rig.events[before:] if isinstance(e, NotificationEvent)]
