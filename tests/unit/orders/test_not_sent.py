"""A submit the broker client never sent (suspended while the local exchange restarts, so that no
key reaches whatever holds its port): the outcome is known, not placed. It was held as "outcome
unknown", pending_new for the rest of the run with reconciliation deferred, and settled as rejected
only by the next start."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.broker.base import BrokerNotSent
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from services.orders.transitions import OrderState
from tests.unit.orders.conftest import Rig


def test_a_submit_that_never_left_is_rejected_as_not_sent_not_left_in_flight(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def suspended(_request: OrderRequest) -> None:
        raise BrokerNotSent("submit_order: not sent: the local exchange (pid 1) ended")

    monkeypatch.setattr(rig.broker, "submit_order", suspended)
    req = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1),
                       limit_price=Decimal(100))  # fmt: skip
    res = asyncio.run(rig.engine.submit(req))
    assert not res.accepted and "not sent" in res.message
    assert res.client_order_id is not None
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.state is OrderState.REJECTED and not rec.ambiguous
    assert not rig.journal.in_flight()
