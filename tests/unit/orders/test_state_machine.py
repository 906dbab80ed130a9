from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.enums import OrderSide, OrderStatus, TradeUpdateKind
from services.orders.records import OrderRecord
from services.orders.state_machine import OrderStateMachine
from services.orders.transitions import (
    ALERT_EVENTS,
    EVENT_TRIGGER,
    FILL_EVENTS,
    REFRESH_EVENTS,
    TRANSITIONS,
    OrderState,
    Trigger,
)
from tests.unit.orders.helpers import T0, order

SM = OrderStateMachine()


def rec(qty: str = "10") -> OrderRecord:
    r = OrderRecord("hr-m-1", "AAPL", OrderSide.BUY, Decimal(qty))
    SM.trigger(r, Trigger.SUBMIT, T0)
    return r


def fill(r: OrderRecord, exec_id: str, qty: str, price: str, cum: str, avg: str, t: int, **kw: object):
    status = OrderStatus.FILLED if Decimal(cum) >= (r.qty or 0) else OrderStatus.PARTIALLY_FILLED
    o = order(filled=cum, avg=avg, status=status, t=t, qty=str(r.qty), **kw)  # type: ignore[arg-type]
    kind = "fill" if status is OrderStatus.FILLED else "partial_fill"
    return SM.apply_update(r, kind, o, T0, execution_id=exec_id, price=Decimal(price), qty=Decimal(qty))


def test_every_state_has_a_row_and_terminal_states_have_no_exits() -> None:
    assert set(TRANSITIONS) == set(OrderState)
    for state in (OrderState.FILLED, OrderState.REJECTED, OrderState.EXPIRED, OrderState.DENIED):
        assert TRANSITIONS[state] == {}


def test_accept_partial_fill_fill() -> None:
    r = rec()
    SM.apply_update(r, "new", order(t=1), T0)
    assert r.state is OrderState.ACCEPTED and r.broker_order_id == "b-1" and r.broker_status == "new"
    res = fill(r, "e1", "4", "100", "4", "100", 2)
    assert r.state is OrderState.PARTIALLY_FILLED and r.filled_qty == 4 and len(res.fills) == 1
    fill(r, "e2", "6", "101", "10", "100.6", 3)
    assert r.state is OrderState.FILLED and r.filled_qty == 10
    assert r.avg_fill_price == Decimal("100.6")


def test_duplicate_fill_is_a_noop() -> None:
    r = rec()
    fill(r, "e1", "4", "100", "4", "100", 2)
    res = fill(r, "e1", "4", "100", "4", "100", 2)
    assert res.duplicate_fills == 1 and not res.fills and r.filled_qty == 4


def test_missed_fill_is_inferred_with_deterministic_id_and_real_one_not_double_counted() -> None:
    r = rec()
    res = fill(r, "e2", "6", "102", "10", "101.2", 3)  # e1 (4 @ 100) was dropped
    assert r.filled_qty == 10 and r.state is OrderState.FILLED
    inferred = [f for f in res.fills if f.execution_id.startswith("inferred:")]
    assert len(inferred) == 1 and inferred[0].qty == 4 and inferred[0].price == Decimal("100")
    assert any(a.kind == "inferred_fill" for a in res.anomalies)
    late = fill(r, "e1", "4", "100", "4", "100", 2)  # the dropped event turns up late
    assert not late.fills and r.filled_qty == 10
    assert ("b-1", "e1") in r.exec_ids


def test_late_fill_after_cancel_is_accepted_without_anomaly() -> None:
    r = rec()
    SM.apply_update(r, "new", order(t=1), T0)
    SM.apply_update(r, "canceled", order(status=OrderStatus.CANCELED, t=2), T0)
    assert r.state is OrderState.CANCELED
    res = fill(r, "e1", "3", "100", "3", "100", 3)
    assert r.filled_qty == 3 and res.fills and not [a for a in res.anomalies if a.kind != "inferred_fill"]
    assert r.state is OrderState.CANCELED


def test_canceled_with_fills_we_never_saw_books_them_first() -> None:
    r = rec()
    res = SM.apply_update(r, "canceled", order(status=OrderStatus.CANCELED, filled="3", avg="99", t=2), T0)
    assert r.filled_qty == 3 and r.state is OrderState.CANCELED and res.fills[0].price == Decimal("99")


def test_invalid_transition_records_anomaly_and_requests_refresh_never_raises() -> None:
    r = rec()
    SM.apply_update(r, "canceled", order(status=OrderStatus.CANCELED, t=2), T0)
    res = SM.apply_update(r, "expired", order(status=OrderStatus.EXPIRED, t=3), T0)
    assert r.state is OrderState.CANCELED
    assert res.refresh and res.anomalies[0].kind == "invalid_transition"


def test_fill_on_filled_order_is_overfill_booked_and_flagged() -> None:
    r = rec("5")
    fill(r, "e1", "5", "100", "5", "100", 1)
    res = fill(r, "e2", "2", "100", "5", "100", 2)
    assert r.filled_qty == 5 and r.overfill_qty == 2
    assert res.fills and res.fills[0].qty == 2  # positions still see the execution
    assert {a.kind for a in res.anomalies} >= {"overfill"} and res.refresh


def test_trade_update_inputs_are_trade_update_kinds() -> None:
    # every event the machine knows is a TradeUpdateKind, and a member and its text act alike
    known = set(EVENT_TRIGGER) | FILL_EVENTS | ALERT_EVENTS | REFRESH_EVENTS
    assert all(isinstance(k, TradeUpdateKind) for k in known)
    assert known == set(TradeUpdateKind)
    by_member, by_text = rec(), rec()
    SM.apply_update(by_member, TradeUpdateKind.STOPPED, order(t=1), T0)
    SM.apply_update(by_text, "stopped", order(t=1), T0)
    assert by_member == by_text and by_member.broker_status == "new"


def test_unknown_event_string_refreshes_without_transition() -> None:
    r = rec()
    res = SM.apply_update(r, "teleported", order(t=1), T0)
    assert r.state is OrderState.SUBMITTED and res.refresh and res.anomalies[0].kind == "unknown_event"


def test_stale_new_after_partial_fill_never_moves_backwards() -> None:
    r = rec()
    fill(r, "e1", "4", "100", "4", "100", 5)
    res = SM.apply_update(r, "new", order(t=1), T0)
    assert r.state is OrderState.PARTIALLY_FILLED and not res.anomalies


def test_pending_cancel_then_cancel_rejected_restores_previous() -> None:
    r = rec()
    SM.apply_update(r, "new", order(t=1), T0)
    fill(r, "e1", "4", "100", "4", "100", 2)
    SM.apply_update(
        r, "pending_cancel", order(status=OrderStatus.PENDING_CANCEL, filled="4", avg="100", t=3), T0
    )
    assert r.state is OrderState.PENDING_CANCEL
    SM.apply_update(
        r, "pending_cancel", order(status=OrderStatus.PENDING_CANCEL, filled="4", avg="100", t=3), T0
    )
    SM.apply_update(
        r, "order_cancel_rejected", order(status=OrderStatus.PARTIALLY_FILLED, filled="4", avg="100", t=4), T0
    )
    assert r.state is OrderState.PARTIALLY_FILLED


def test_pending_cancel_has_no_timeout_edge() -> None:
    for state in (OrderState.PENDING_CANCEL, OrderState.PENDING_UPDATE):
        assert Trigger.LOSE not in TRANSITIONS[state]


def test_done_for_day_is_substatus_only() -> None:
    r = rec()
    SM.apply_update(r, "new", order(t=1), T0)
    SM.apply_update(r, "done_for_day", order(status=OrderStatus.DONE_FOR_DAY, t=2), T0)
    assert r.state is OrderState.ACCEPTED and r.broker_status == "done_for_day" and r.state.is_open


def test_replace_follows_replaced_by() -> None:
    r = rec()
    SM.apply_update(r, "new", order(t=1), T0)
    r.pending_replace_client_id = "hr-m-1-r1"
    SM.trigger(r, Trigger.PENDING_UPDATE, T0)
    SM.apply_update(r, "replaced", order(status=OrderStatus.REPLACED, t=2, replaced_by="b-2"), T0)
    assert r.broker_order_id == "b-2" and r.current_client_order_id == "hr-m-1-r1"
    assert r.state is OrderState.ACCEPTED
    SM.apply_update(r, "new", order(id="b-2", cid="hr-m-1-r1", qty="8", t=3, replaces="b-1"), T0)
    fill(r, "x1", "8", "100", "8", "100", 4, id="b-2", cid="hr-m-1-r1")
    assert r.state is OrderState.FILLED and r.filled_qty == 8


def test_lost_order_still_accepts_ack_and_fills() -> None:
    r = rec()
    SM.trigger(r, Trigger.LOSE, T0)
    assert r.state is OrderState.LOST and r.state.is_terminal
    fill(r, "e1", "10", "100", "10", "100", 1)
    assert r.state is OrderState.FILLED


# --- property test ---------------------------------------------------------------------------

fill_sizes = st.lists(st.integers(min_value=1, max_value=5), min_size=0, max_size=6)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[tuple[str, object]], int, bool]:
    sizes = draw(fill_sizes)
    qty = sum(sizes) + draw(st.integers(min_value=0, max_value=3))
    qty = max(qty, 1)
    cancel = sum(sizes) < qty and draw(st.booleans())
    return qty, sizes, draw(st.integers(min_value=0, max_value=2**32)), cancel


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.data())
def test_property_random_delivery_never_backwards_never_loses_a_fill(scn, data) -> None:  # type: ignore[no-untyped-def]
    qty, sizes, _, cancel = scn
    # the broker's true timeline
    events: list[tuple[str, object, dict[str, object]]] = []
    t = 1
    events.append(("new", order(qty=str(qty), t=t), {}))
    cum = Decimal(0)
    notional = Decimal(0)
    for i, s in enumerate(sizes):
        t += 1
        price = Decimal(100 + i)
        cum += s
        notional += s * price
        full = cum >= qty
        st_ = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
        o = order(qty=str(qty), filled=str(cum), avg=str(notional / cum), status=st_, t=t)
        kw = {"execution_id": f"e{i}", "price": price, "qty": Decimal(s)}
        events.append(("fill" if full else "partial_fill", o, kw))
    final = events[-1][1]
    if cancel:
        t += 1
        final = order(
            qty=str(qty),
            filled=str(cum),
            avg=str(notional / cum) if cum else None,
            status=OrderStatus.CANCELED,
            t=t,
        )
        events.append(("canceled", final, {}))
    # delivery: drop, duplicate, reorder
    delivered = data.draw(
        st.lists(st.sampled_from(range(len(events))), max_size=len(events) * 2), label="delivery"
    )
    r = rec(str(qty))
    booked: list = []
    seen_exec: set[str] = set()
    last_rank_filled = Decimal(0)
    for idx in delivered:
        kind, o, kw = events[idx]
        before_state = r.state
        res = SM.apply_update(r, kind, o, T0, **kw)  # type: ignore[arg-type]
        booked.extend(res.fills)
        if "execution_id" in kw:
            seen_exec.add(str(kw["execution_id"]))
        assert r.filled_qty >= last_rank_filled, "filled_qty moved backwards"
        last_rank_filled = r.filled_qty
        assert r.filled_qty <= qty
        if before_state.is_terminal and before_state is not OrderState.LOST:
            assert r.state.is_terminal, f"left terminal {before_state} for {r.state}"
        assert r.filled_qty == sum((f.qty for f in booked), Decimal(0)) - r.overfill_qty
    # every delivered execution id is known (booked or matched to an inference)
    assert all(("b-1", e) in r.exec_ids for e in seen_exec)
    # the REST refresh settles everything the stream lost
    res = SM.apply_snapshot(r, final, T0)  # type: ignore[arg-type]
    booked.extend(res.fills)
    assert r.filled_qty == cum
    assert sum((f.qty for f in booked), Decimal(0)) == cum, "a fill was double counted or lost"
    if cum:
        total = sum((f.qty * f.price for f in booked), Decimal(0))
        assert abs(total - notional) < Decimal("1e-12")
    if cancel:
        assert r.state is OrderState.CANCELED
    elif cum >= qty:
        assert r.state is OrderState.FILLED
