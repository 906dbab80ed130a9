"""Regressions for bugs the chaos runs found (each names the fault that showed it)."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import OrderRequest
from services.orders.state_machine import OrderState
from services.orders.tables import ORDERS_SCHEMA
from services.storage import Database
from tests.unit.orders.conftest import build
from tests.unit.orders.helpers import ManualClock


def test_locked_database_refuses_the_order_with_a_reason_and_sends_nothing(tmp_path: Path) -> None:
    """db_lock held past the busy timeout: the journal write failed and ``submit`` raised
    OperationalError into the order script, whose task died and never sent its other orders."""
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA], busy_timeout_s=0.05)
    try:
        rig = build(db, ManualClock())
        asyncio.run(rig.engine.refresh_account())
        rig.trading.enable()
        [path] = [p for p in tmp_path.rglob("*.db")]
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        request = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1),
                               limit_price=Decimal(100))
        try:
            res = asyncio.run(rig.engine.submit(request, source="script"))
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert not res.accepted and res.state is OrderState.DENIED
        assert "not sent" in res.message and "locked" in res.message
        assert "submit_order" not in rig.broker.calls  # journal before wire: no journal, no wire
        assert any(isinstance(e, NotificationEvent) and "not sent" in e.message for e in rig.events)
        # the lock is gone: the next order goes through (after the risk gate's duplicate window)
        rig.clock.advance(5)
        ok = asyncio.run(rig.engine.submit(request, source="script"))
        assert ok.accepted and rig.broker.submits_received == [ok.client_order_id]
    finally:
        db.dispose()
