from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.broker.base import BrokerUnavailable, ReplaceRequest
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from services.domain.events import FillEvent, OrderChangedEvent, TradingStateEvent
from services.domain.models import Order, OrderRequest
from services.orders.transitions import OrderState
from services.risk.kill_switch import KillSwitch
from tests.unit.orders.conftest import Rig
from tests.unit.orders.test_closing import timeline


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def limit_buy(qty: str = "10", price: str = "100") -> OrderRequest:
    return OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty), limit_price=Decimal(price)
    )


def test_submit_journals_before_post_then_fills_and_books_position(rig: Rig) -> None:
    res = run(rig.engine.submit(limit_buy()))
    assert res.accepted and res.state is OrderState.ACCEPTED
    cid = res.client_order_id
    assert cid is not None and cid.startswith("hr-m-") and len(cid) <= 48
    # the fake broker asserted the intent row existed when the POST arrived
    assert rig.broker.submits_received == [cid]
    kinds = [r["kind"] for r in rig.journal.records() if r["client_order_id"] == cid]
    assert kinds.index("intent") < kinds.index("acked")
    oid = rig.broker.by_client[cid]
    rig.broker.fill(oid, Decimal(4), Decimal("99.5"))
    rig.broker.fill(oid, Decimal(6), Decimal("100"))
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.FILLED and rec.filled_qty == 10
    assert rig.store.position_qty("AAPL") == 10
    assert rig.store.positions["AAPL"].avg_price == Decimal("99.8")
    assert sum(isinstance(e, FillEvent) for e in rig.events) == 2
    assert any(isinstance(e, OrderChangedEvent) and e.order.status is OrderStatus.FILLED for e in rig.events)
    assert rig.journal.in_flight() == []


def test_risk_denial_sends_nothing(rig: Rig) -> None:
    res = run(rig.engine.submit(limit_buy(qty="1000000")))
    assert not res.accepted and res.state is OrderState.DENIED
    assert res.report is not None and "max_order_qty" in res.message
    assert "submit_order" not in rig.broker.calls


def test_definitive_reject_settles_rejected(rig: Rig) -> None:
    rig.broker.faults.reject_submit.append("insufficient buying power")
    res = run(rig.engine.submit(limit_buy()))
    assert res.state is OrderState.REJECTED and "insufficient" in res.message
    assert rig.journal.in_flight() == []


def test_timeout_after_accept_stays_in_flight_then_resolves_by_client_id_without_duplicate(rig: Rig) -> None:
    rig.broker.faults.unavailable_after_submit = 1
    rig.broker.faults.drop_all_events = True
    res = run(rig.engine.submit(limit_buy()))
    assert res.state is OrderState.SUBMITTED and "unknown" in res.message
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.ambiguous
    assert [r.client_order_id for r in rig.journal.in_flight()] == [res.client_order_id]
    rig.clock.advance(6)
    run(rig.engine.poll_once())
    assert rec.state is OrderState.ACCEPTED and not rec.ambiguous
    assert rig.journal.in_flight() == []
    assert len(rig.broker.orders) == 1 and rig.broker.submits_received == [res.client_order_id]


def test_5xx_before_apply_not_found_twice_ten_seconds_apart_then_lost_then_late_ack(rig: Rig) -> None:
    rig.broker.faults.unavailable_before_submit = 1
    res = run(rig.engine.submit(limit_buy()))
    cid = res.client_order_id
    assert cid is not None and res.state is OrderState.SUBMITTED
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None
    rig.clock.advance(6)  # before the POST deadline: not counted
    run(rig.engine.resolve_intent(cid))
    assert rig.journal.intent(cid).not_found_count == 0  # type: ignore[union-attr]
    rig.clock.advance(5)
    run(rig.engine.resolve_intent(cid))
    rig.clock.advance(4)  # less than 10 s after the first "not found": not counted
    run(rig.engine.resolve_intent(cid))
    assert rec.state is OrderState.SUBMITTED
    rig.clock.advance(7)
    assert run(rig.engine.resolve_intent(cid)) is True
    assert rec.state is OrderState.LOST
    # the broker turns out to have it after all: a late ack and fill are still accepted
    order = rig.broker._create(limit_buy(), cid)
    rig.broker.fill(order.id, Decimal(10), Decimal(100))
    assert rec.state is OrderState.FILLED and rig.store.position_qty("AAPL") == 10


def test_startup_resolves_in_flight_intent_after_crash(rig: Rig) -> None:
    rig.broker.faults.unavailable_after_submit = 1
    rig.broker.faults.drop_all_events = True
    res = run(rig.engine.submit(limit_buy()))
    rig.broker.faults.drop_all_events = False
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(3), Decimal(100))  # while "down"
    new = rig.restart()
    unresolved = run(new.engine.recover())
    assert unresolved == []
    rec = new.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.state is OrderState.PARTIALLY_FILLED and rec.filled_qty == 3
    assert new.store.position_qty("AAPL") == 3
    assert new.trading.state is TradingState.DISABLED  # only reconciliation enables trading
    assert len(rig.broker.orders) == 1


def test_restart_rebuilds_positions_and_open_orders_from_database(rig: Rig) -> None:
    res = run(rig.engine.submit(limit_buy()))
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(4), Decimal(100))
    new = rig.restart()
    run(new.engine.recover())
    assert new.store.position_qty("AAPL") == 4
    rec = new.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.state is OrderState.PARTIALLY_FILLED
    # a replayed fill after restart is a duplicate, not a second execution
    replay = rig.broker.emitted[-1]
    new.bus.publish(replay)
    assert new.store.position_qty("AAPL") == 4


def test_replace_follows_new_broker_id_with_deterministic_client_id(rig: Rig) -> None:
    res = run(rig.engine.submit(limit_buy()))
    cid = res.client_order_id
    assert cid is not None
    out = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert out.message == "replaced", out.message
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.current_client_order_id == cid + "-r1"
    new_id = rig.broker.by_client[cid + "-r1"]
    assert rec.broker_order_id == new_id and rec.state is OrderState.ACCEPTED
    rig.broker.fill(new_id, Decimal(10), Decimal("100.05"))
    assert rec.state is OrderState.FILLED


def test_pending_cancel_never_times_out(rig: Rig) -> None:
    rig.broker.faults.pending_cancel = True
    res = run(rig.engine.submit(limit_buy()))
    cid = res.client_order_id
    assert cid is not None
    assert run(rig.engine.cancel(cid))
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.PENDING_CANCEL
    for _ in range(5):
        rig.clock.advance(3600)
        run(rig.engine.poll_once())
    assert rec.state is OrderState.PENDING_CANCEL
    rig.broker.confirm_cancel(rig.broker.by_client[cid])
    assert rec.state is OrderState.CANCELED


def test_polling_fallback_catches_fills_the_stream_dropped_within_probe_budget(rig: Rig) -> None:
    ids = [run(rig.engine.submit(limit_buy(qty="1", price=str(100 - i)))).client_order_id for i in range(15)]
    rig.broker.faults.drop_all_events = True
    for cid in ids:
        rig.broker.fill(rig.broker.by_client[cid], Decimal(1), Decimal(99))
    rig.clock.advance(60)
    before = len(rig.broker.calls)
    calls = run(rig.engine.poll_once())
    assert calls == 10 and len(rig.broker.calls) - before == 10
    run(rig.engine.poll_once())
    assert rig.store.position_qty("AAPL") == 15


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_kill_switch_halts_cancels_and_flattens(rig: Rig) -> None:
    a = run(rig.engine.submit(limit_buy()))
    b = run(rig.engine.submit(limit_buy(qty="5", price="99")))
    rig.broker.fill(rig.broker.by_client[a.client_order_id], Decimal(10), Decimal(100))
    timeline(rig)  # the closing market order fills while the flatten waits
    ks = KillSwitch(rig.trading, rig.engine, rig.journal)
    out = run(ks.trigger(operator="alice", flatten=True))
    assert rig.trading.state is TradingState.HALTED
    assert out.canceled == 1 and out.flatten is not None and out.flatten.all_flat
    rec_b = rig.store.find(client_order_id=b.client_order_id)
    assert rec_b is not None and rec_b.state is OrderState.CANCELED
    closing = [r for r in rig.store.orders() if r.source == "kill-switch"]
    assert len(closing) == 1 and closing[0].client_order_id.startswith("hr-k-")
    assert closing[0].side is OrderSide.SELL and closing[0].qty == 10
    kinds = [r["kind"] for r in rig.journal.records()]
    assert "kill_switch" in kinds and "kill_switch_done" in kinds
    assert any(isinstance(e, TradingStateEvent) and e.state is TradingState.HALTED for e in rig.events)
    # HALTED: a new manual order is refused
    assert run(rig.engine.submit(limit_buy())).state is OrderState.DENIED


def test_bracket_legs_become_child_orders(rig: Rig) -> None:
    from services.domain.enums import OrderClass
    from services.domain.models import OrderLegSpec

    req = OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal(5),
        limit_price=Decimal(100),
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal(105)),
        stop_loss=OrderLegSpec(stop_price=Decimal(95)),
    )
    res = run(rig.engine.submit(req))
    children = [r for r in rig.store.orders() if r.parent_client_order_id == res.client_order_id]
    assert len(children) == 2 and all(c.broker_status == "held" for c in children)


def test_export_ndjson(rig: Rig, tmp_path: Path) -> None:
    run(rig.engine.submit(limit_buy()))
    path = tmp_path / "journal.ndjson"
    n = rig.journal.export_ndjson(path)
    lines = path.read_text().splitlines()
    assert n == len(lines) > 0
    assert json.loads(lines[0])["kind"] in ("trading_state", "intent")


def test_crash_after_ack_loses_only_recoverable_writes(rig: Rig) -> None:
    async def before_crash() -> tuple[str, int]:
        res = await rig.engine.submit(limit_buy())
        assert res.client_order_id is not None
        rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(10), Decimal(100))
        pending = rig.journal.batch.pending  # ack, state and fill rows not yet committed...
        rig.journal.batch._pending.clear()  # ...when the process is SIGKILLed
        return res.client_order_id, pending

    cid, pending = run(before_crash())
    assert pending > 0
    new = rig.restart()  # only committed rows and the broker remain
    assert run(new.engine.recover()) == []
    rec = new.store.find(client_order_id=cid)
    assert rec is not None and rec.state is OrderState.FILLED and rec.filled_qty == 10
    assert new.store.position_qty("AAPL") == 10
    assert new.journal.in_flight() == [] and len(rig.broker.orders) == 1


def test_a_replace_while_the_previous_replace_is_unresolved_is_refused(rig: Rig) -> None:
    """PATCH /v2/orders/{order_id} (docs.alpaca.markets/reference; Alpaca docs "Orders"
    lifecycle): an order in ``pending_replace`` cannot be replaced again. While Heron's own replace
    has an unknown outcome it must refuse the next one plainly, never reuse the replacement's
    client id (a crash on the journal's unique key) nor send a second PATCH."""
    res = run(rig.engine.submit(limit_buy()))
    cid = res.client_order_id
    assert cid is not None
    real = rig.broker.replace_order
    sent: list[str | None] = []

    async def applied_then_timed_out(order_id: str, request: ReplaceRequest) -> Order:
        sent.append(request.client_order_id)
        await real(order_id, request)
        raise BrokerUnavailable("read timeout")

    rig.broker.faults.drop_all_events = True  # the stream does not tell how the first replace went
    rig.broker.replace_order = applied_then_timed_out  # type: ignore[method-assign]
    first = run(rig.engine.replace(cid, limit_price=Decimal("100.05")))
    assert "unknown" in first.message
    second = run(rig.engine.replace(cid, limit_price=Decimal("100.10")))
    assert "pending" in second.message and second.client_order_id == cid
    assert sent == [cid + "-r1"]


def test_an_account_refresh_after_the_broker_closed_is_quiet_and_keeps_the_last_account(caplog) -> None:  # type: ignore[no-untyped-def]
    """A panel's last timer may ask for the account while Heron shuts down: the closed client says
    so (nothing was sent); that is no failure to warn the trader about, and the last account stays."""
    import logging

    from services.broker.base import BrokerClosed
    from services.orders.engine import ExecutionEngine

    class Closed:
        async def get_account(self) -> None:
            raise BrokerClosed("the broker connection is closed")

    engine = ExecutionEngine.__new__(ExecutionEngine)  # only what refresh_account reads
    engine.broker = Closed()  # type: ignore[assignment]
    engine.account = None
    with caplog.at_level(logging.DEBUG, logger="services.orders.engine"):
        assert asyncio.run(engine.refresh_account()) is None
    assert [r.levelno for r in caplog.records if r.name == "services.orders.engine"] == [logging.DEBUG]
