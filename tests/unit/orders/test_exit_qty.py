"""An exit for shares a bracket's working exits already hold is refused before it is sent.

Alpaca holds the shares of working sells (the position's ``held_for_orders``; alpaca-py
``Position.qty_available``: "Total number of shares available minus open orders") and refuses a sell
for more than is available: 403 "insufficient qty available for order (requested: 10, available: 0)"
(docs/alpaca-protocol.md, error codes). A bracket's two exits hold the shares once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.orders.transitions import OrderState
from tests.unit.orders.conftest import Rig

D = Decimal


def test_an_oco_exit_of_shares_held_by_a_bracket_is_refused_by_the_pre_check(rig: Rig) -> None:
    entry = asyncio.run(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=D(10), limit_price=D(100),
        order_class=OrderClass.BRACKET, take_profit=OrderLegSpec(limit_price=D(110)),
        stop_loss=OrderLegSpec(stop_price=D(90)),
    )))  # fmt: skip
    rig.broker.fill(rig.broker.by_client[entry.client_order_id], D(10), D(100))
    oco = OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=D(10), limit_price=D(112),
        order_class=OrderClass.OCO, take_profit=OrderLegSpec(limit_price=D(112)),
        stop_loss=OrderLegSpec(stop_price=D(92)),
    )  # fmt: skip
    asset = asyncio.run(rig.engine._asset("AAPL"))
    preview = rig.engine.risk.preview(oco, rig.engine.risk_context(oco, asset))
    assert not preview.passed
    assert [c.name for c in preview.failures] == ["qty_available"], preview.explain()
    assert "available=0" in preview.explain() and "held_for_orders=10" in preview.explain()
    sent = len(rig.broker.orders)
    res = asyncio.run(rig.engine.submit(oco))
    assert res.state is OrderState.DENIED and len(rig.broker.orders) == sent
