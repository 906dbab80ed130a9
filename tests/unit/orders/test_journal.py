from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy.exc import IntegrityError

from services.domain.enums import JournalKind, OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.orders.journal import (
    IntentStatus,
    OrderJournal,
    replace_client_id,
    request_from_json,
    request_to_json,
    source_from_client_id,
)
from services.orders.tables import ORDERS_SCHEMA, metadata
from services.storage import Database, schema_drift
from tests.support.clock import ManualClock


def test_migrated_tables_match_live_definitions(db: Database) -> None:
    assert schema_drift(db.engine, metadata) == []
    assert ORDERS_SCHEMA.latest == 1


def test_client_ids_carry_source_and_are_unique_and_short(db: Database) -> None:
    j = OrderJournal(db, ManualClock())
    ids = [
        j.new_client_order_id(s) for s in ("manual", "kill-switch", "strategy:SMA Crossover Extra Long Name!")
    ] * 1
    ids += [j.new_client_order_id("manual") for _ in range(100)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= 43 and re.fullmatch(r"hr-[a-z0-9-]+", i) for i in ids)
    assert (
        ids[0].startswith("hr-m-")
        and ids[1].startswith("hr-k-")
        and ids[2].startswith("hr-s-smacrossoverextr")
    )
    assert [source_from_client_id(i) for i in ids[:3]] == [
        "manual",
        "kill-switch",
        "strategy:smacrossoverextr",
    ]
    assert source_from_client_id("from-another-app") == "external"


def test_replace_ids_are_deterministic_and_bounded() -> None:
    base = "hr-m-abc-1"
    assert replace_client_id(base, base) == "hr-m-abc-1-r1"
    assert replace_client_id("hr-m-abc-1-r1", base) == "hr-m-abc-1-r2"
    long = "x" * 48
    assert len(replace_client_id(long + "-r9", long)) <= 48


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes refused: UNIQUE constraint failed: order_intents\.",
    # the same refusal in PostgreSQL's words (the CI's PostgreSQL run)
    r"^services\.orders\.writes: database writes refused: duplicate key value violates unique",
    r"^services\.orders\.writes: database writes work again on",
)
def test_intent_is_committed_and_unique(db: Database) -> None:
    clock = ManualClock()
    j = OrderJournal(db, clock)
    r = OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal("1.5"),
        limit_price=Decimal("100.25"),
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(90)),
        client_order_id="hr-m-x-1",
    )
    j.record_intent(r, "manual")
    # visible from a separate journal object (another connection): it was committed
    other = OrderJournal(db, clock)
    [row] = other.in_flight()
    assert row.request == r and row.post_deadline > row.created_at
    with pytest.raises(IntegrityError):
        j.record_intent(r, "manual")
    j.settle("hr-m-x-1", "acked", broker_order_id="b1")
    # after-the-wire records are queued (recoverable from the broker) and commit together
    assert len(other.in_flight()) == 1 and j.batch.pending == 2
    j.flush()
    assert other.in_flight() == [] and not j.is_in_flight("hr-m-x-1")
    with pytest.raises(ValueError):
        j.record_intent(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.MARKET,
                TimeInForce.DAY,
                qty=Decimal(1),
                client_order_id="y" * 49,
            ),
            "manual",
        )


def test_request_json_roundtrip_is_exact() -> None:
    r = OrderRequest(
        "BTC/USD",
        OrderSide.SELL,
        OrderType.STOP_LIMIT,
        TimeInForce.GTC,
        qty=Decimal("0.000123"),
        limit_price=Decimal("60000.01"),
        stop_price=Decimal("60010"),
        client_order_id="c",
    )
    assert request_from_json(request_to_json(r)) == r


def test_journal_kinds_and_intent_statuses_keep_their_stored_values(db: Database) -> None:
    # databases written before the enums hold these exact strings: a value never changes
    assert [k.value for k in JournalKind] == [
        "intent", "acked", "rejected", "resolved", "lost", "not_found", "ambiguous", "denied",
        "adopted", "fill", "state", "cancel_queued", "cancel_requested", "cancel_rejected",
        "cancel_ambiguous", "close_result", "kill_switch", "kill_switch_done", "trading_state",
        "halt_released", "incident_opened", "incident_acknowledged", "incident_resolved",
        "operator_adopt_broker_state", "journal_rollback_accepted",
    ]  # fmt: skip
    assert [s.value for s in IntentStatus] == ["in_flight", "acked", "rejected", "resolved", "lost"]
    j = OrderJournal(db, ManualClock())
    j.record_intent(
        OrderRequest("AAPL", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, qty=Decimal(1),
                     client_order_id="hr-m-k-1"), "manual",
    )  # fmt: skip
    j.append(JournalKind.CANCEL_REQUESTED, "hr-m-k-1", "manual")
    j.settle("hr-m-k-1", IntentStatus.ACKED, broker_order_id="b1")
    kinds = [r["kind"] for r in j.records()]
    assert kinds == ["intent", "cancel_requested", "acked"]
    assert all(type(k) is str for k in kinds)
    assert j.intent("hr-m-k-1").status == "acked"  # type: ignore[union-attr]
    assert j.last_record((JournalKind.CANCEL_REQUESTED,))["kind"] == "cancel_requested"  # type: ignore[index]


def test_in_flight_follows_intents_recorded_and_settled_without_rereading_an_empty_table(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine asks for in-flight intents every poll. Once read, the journal knows them: an idle
    terminal's poll runs no query, an intent recorded since is in flight at once, a settled one is not,
    and a row written behind this journal's back is seen at the next periodic read."""
    from services.orders import journal as journal_module

    clock = ManualClock()
    j = OrderJournal(db, clock)
    assert j.in_flight() == []
    queries: list[str] = []
    from sqlalchemy import event

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            queries.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert j.in_flight() == [] and queries == []
        request = OrderRequest("AAPL", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, qty=Decimal(1),
                               client_order_id="hr-m-a-1")  # fmt: skip
        j.record_intent(request, "manual")
        assert [r.client_order_id for r in j.in_flight()] == ["hr-m-a-1"]
        j.settle("hr-m-a-1", IntentStatus.ACKED, broker_order_id="b1")
        j.flush()
        assert j.in_flight() == []
        queries.clear()
        assert j.in_flight() == [] and queries == []
        # another writer (a second journal object on the same database)
        other = OrderRequest("MSFT", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, qty=Decimal(1),
                             client_order_id="hr-m-b-1")  # fmt: skip
        OrderJournal(db, clock).record_intent(other, "manual")
        assert j.in_flight() == []  # not read again yet
        monkeypatch.setattr(journal_module, "REREAD_S", 0.0)
        assert [r.client_order_id for r in j.in_flight()] == ["hr-m-b-1"]
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
