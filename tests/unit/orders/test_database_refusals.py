"""A database that refuses a write (locked past its busy timeout, full) never kills the caller of a
replace, a cancel or a trading-state change: found by the chaos runs' ``db_lock`` fault, where
``sqlite3.OperationalError: database is locked`` escaped ``engine.replace`` and the trading state
machine and ended the order script and the start-up task for the rest of the session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.events import TradingStateEvent
from services.domain.models import OrderRequest
from services.orders.transitions import OrderState
from services.risk.trading_state import TradingStateMachine
from tests.unit.orders.conftest import Rig

LOCKED = OperationalError("UPDATE orders ...", {}, Exception("database is locked"))


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def resting_buy(rig: Rig) -> str:
    req = OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(10), limit_price=Decimal(100)
    )
    res = run(rig.engine.submit(req))
    assert res.client_order_id is not None
    return res.client_order_id


def refuse_next_commit(rig: Rig) -> None:
    inner = rig.store.commit
    calls = {"n": 0}

    def commit(*args: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise LOCKED
        inner(*args, **kw)

    rig.store.commit = commit  # type: ignore[method-assign]


@pytest.mark.expected_log(r"^services\.orders\.replacing: \S+ not sent: the replace could not")
def test_a_replace_the_database_refuses_is_not_sent_and_never_raises(rig: Rig) -> None:
    cid = resting_buy(rig)
    refuse_next_commit(rig)
    out = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert out.message.startswith("not sent: the replace could not be journaled")
    assert "replace_order" not in rig.broker.calls
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.ACCEPTED and rec.pending_replace_client_id is None
    again = run(rig.engine.replace(cid, limit_price=Decimal("100.10")))  # the next one goes through
    assert again.message == "replaced", again.message


@pytest.mark.expected_log(r"^services\.orders\.engine: \S+ cancel request not journaled yet \(the")
def test_a_cancel_the_database_refuses_is_still_sent(rig: Rig) -> None:
    cid = resting_buy(rig)
    refuse_next_commit(rig)
    assert run(rig.engine.cancel(cid)) is True
    assert "cancel_order" in rig.broker.calls


class _LockedJournal:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def append(self, kind: str, client_order_id: str | None, source: str, **payload: Any) -> None:
        self.rows.append(kind)

    def flush(self) -> None:
        raise LOCKED

    def last_record(self, kinds: Any) -> None:
        return None


@pytest.mark.expected_log(
    r"^services\.risk\.trading_state: trading state ACTIVE is not journaled yet",
    r"^services\.risk\.trading_state: trading state HALTED is not journaled yet",
)
def test_a_trading_state_change_holds_when_its_journal_write_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[TradingStateEvent] = []
    bus.subscribe(TradingStateEvent, seen.append)
    journal = _LockedJournal()
    tsm = TradingStateMachine(bus, lambda: datetime(2026, 3, 2, 15, tzinfo=UTC), journal)
    with caplog.at_level(logging.ERROR):
        tsm.enable()
        tsm.set(TradingState.HALTED, "operator", source="test")
    assert tsm.state is TradingState.HALTED
    assert [e.state for e in seen] == [TradingState.ACTIVE, TradingState.HALTED]
    assert journal.rows == ["trading_state", "trading_state"]  # queued for the next write
    assert "not journaled yet" in caplog.text and "locked" in caplog.text
