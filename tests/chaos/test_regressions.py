"""Regressions for bugs the chaos runs found (each names the fault that showed it)."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import OrderRequest
from services.orders.tables import ORDERS_SCHEMA
from services.orders.transitions import OrderState
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import build


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes (refused|work again)",
    r"^services\.orders\.engine: .* not sent: the order could not be journaled",
)
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
        request = OrderRequest(
            "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1), limit_price=Decimal(100)
        )
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


def test_a_fill_heron_has_not_heard_of_defers_the_position_check_instead_of_opening_drift(
    tmp_path: Path,
) -> None:
    """exchange_kill right after a fill: the trade update was lost with the connection, the broker's
    position already held the fill, and the next reconciliation cycle opened a critical
    ``position_qty`` incident (local -50, broker -49) a second before the engine's refresh booked
    the fill. The incident outlived the restart and kept trading DISABLED."""
    from services.domain.enums import TradingState
    from services.reconciliation.reconciler import Reconciler

    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    try:
        rig = build(db, ManualClock())
        asyncio.run(rig.engine.refresh_account())
        rc = Reconciler(rig.broker, rig.store, rig.journal, rig.trading, rig.bus, rig.clock, rig.db)
        asyncio.run(rc.startup())
        assert rig.trading.state is TradingState.ACTIVE
        request = OrderRequest(
            "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1), limit_price=Decimal(100)
        )
        res = asyncio.run(rig.engine.submit(request))
        rig.clock.advance(30)
        rig.broker.faults.drop_all_events = True  # the stream is down when the fill happens
        assert res.client_order_id is not None
        rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(1), Decimal(100))
        rig.clock.advance(30)
        cycle = asyncio.run(rc.run_cycle())
        assert cycle.clean and rc.open_incidents() == []
        assert rig.trading.state is TradingState.ACTIVE
        # the engine's refresh catches up; the next cycle compares positions and they agree
        asyncio.run(rig.engine.poll_once())
        rig.clock.advance(30)
        calls = rig.broker.calls.count("get_positions")
        assert asyncio.run(rc.run_cycle()).clean
        assert rig.broker.calls.count("get_positions") == calls + 1
        assert rig.store.position_qty("AAPL") == 1
        # a real drift is still caught at once
        rig.broker.set_position("MSFT", Decimal(-3), Decimal(200))
        rig.clock.advance(30)
        drift = asyncio.run(rc.run_cycle())
        assert not drift.clean and rig.trading.state is TradingState.HALTED
    finally:
        db.dispose()


def _lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes (refused|work again)",
    r"^services\.orders\.engine: .* not sent: a database write failed after the intent",
)
def test_database_locked_after_the_intent_never_raises_and_settles_by_lookup(tmp_path: Path) -> None:
    """db_lock taken right after the intent committed: a later write raised OperationalError into
    the script task (which died); when the POST had not gone out, restart settled the intent LOST
    but its order stayed INITIALIZED, reported open as pending_new for ever (no LOSE transition
    from INITIALIZED)."""
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA], busy_timeout_s=0.05)
    try:
        rig = build(db, ManualClock())
        asyncio.run(rig.engine.refresh_account())
        rig.trading.enable()
        [path] = [p for p in tmp_path.rglob("*.db")]
        held: list[sqlite3.Connection] = []
        real_add = rig.store.add

        def add_under_lock(*args: object) -> None:
            held.append(_lock(path))
            real_add(*args)  # type: ignore[arg-type]
            rig.journal.flush()  # the order row is written now, as with the store's own batch

        rig.store.add = add_under_lock  # type: ignore[method-assign,assignment]
        request = OrderRequest(
            "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1), limit_price=Decimal(100)
        )
        res = asyncio.run(rig.engine.submit(request, source="script"))
        held.pop().execute("ROLLBACK")
        rig.store.add = real_add  # type: ignore[method-assign]
        assert res.state is OrderState.DENIED and "not sent" in res.message
        assert "submit_order" not in rig.broker.calls
        cid = res.client_order_id
        assert cid is not None and [r.client_order_id for r in rig.journal.in_flight()] == [cid]
        rig.clock.advance(30)  # past the POST deadline
        assert not asyncio.run(rig.engine.resolve_intent(cid))  # first "not found"
        rig.clock.advance(11)
        assert asyncio.run(rig.engine.resolve_intent(cid))  # second, spaced: LOST
        rec = rig.store.find(client_order_id=cid)
        assert rec is not None and rec.state is OrderState.LOST
        assert cid not in {r.client_order_id for r in rig.store.open_orders()}

        # locked after the POST: nothing raises, the order is at the broker once, a lookup settles it
        real_post = rig.broker.submit_order

        async def post_then_lock(req: OrderRequest) -> object:
            out = await real_post(req)
            held.append(_lock(path))
            return out

        rig.broker.submit_order = post_then_lock  # type: ignore[method-assign,assignment]
        rig.clock.advance(5)
        res2 = asyncio.run(rig.engine.submit(request, source="script"))
        held.pop().execute("ROLLBACK")
        assert res2.accepted and rig.broker.submits_received == [res2.client_order_id]  # and no raise
        assert res2.client_order_id is not None
        assert asyncio.run(rig.engine.resolve_intent(res2.client_order_id))
        assert rig.broker.submits_received == [res2.client_order_id]  # no second order
    finally:
        db.dispose()


@pytest.mark.expected_log(
    r"^services\.reconciliation\.reconciler: positions compared although executions still look in transit"
)
def test_a_position_check_is_deferred_for_a_stuck_order_but_never_for_ever(tmp_path: Path) -> None:
    """The deferral above must not let an order stuck out of sync silence drift: after
    ``max_position_deferral_s`` positions are compared anyway and the drift opens an incident."""
    from services.domain.enums import TradingState
    from services.reconciliation.reconciler import Reconciler

    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    try:
        rig = build(db, ManualClock())
        asyncio.run(rig.engine.refresh_account())
        rc = Reconciler(
            rig.broker,
            rig.store,
            rig.journal,
            rig.trading,
            rig.bus,
            rig.clock,
            rig.db,
            max_position_deferral_s=60,
        )
        asyncio.run(rc.startup())
        request = OrderRequest(
            "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(2), limit_price=Decimal(100)
        )
        res = asyncio.run(rig.engine.submit(request))
        assert res.client_order_id is not None
        rig.clock.advance(30)
        rig.broker.faults.drop_all_events = True
        rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(2), Decimal(100))
        # the engine never catches up (no polling): the first cycles defer, they do not cry drift
        for _ in range(2):
            rig.clock.advance(30)
            assert asyncio.run(rc.run_cycle()).clean
            assert rig.trading.state is TradingState.ACTIVE
        # past the limit the positions are compared: local 0 against the broker's 2 is drift
        rig.clock.advance(30)
        late = asyncio.run(rc.run_cycle())
        assert not late.clean
        assert any(inc.subject == "AAPL" for inc in rc.open_incidents())
        assert rig.trading.state in (TradingState.REDUCING, TradingState.HALTED)
    finally:
        db.dispose()
