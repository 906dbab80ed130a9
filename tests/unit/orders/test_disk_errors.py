"""A full disk under the order database (SQLite's "database or disk is full") refuses orders with a
message that says so, never raises into the caller's task, never sends an order without its journal
entry, never loses a fill, and lets trading go on once space returns.

Found by the chaos runs' disk-full fault: 42 of 60 script orders were never sent after a 12 s full
disk, because ``has_intent`` (which commits the queued rows first) raised into the script's task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.events import NotificationEvent
from services.domain.models import OrderRequest
from services.orders.transitions import OrderState
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import Rig, build


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class FullDisk:
    """Makes every write transaction of ``db`` fail the way SQLite does when the disk is full, while
    ``full`` is set; reads keep working (as they do on a real full disk)."""

    def __init__(self, db: Database) -> None:
        self.full = False
        self.refused = 0
        inner = db.begin

        @contextmanager
        def begin(*, write_lock: bool = False) -> Iterator[Connection]:
            if self.full:
                self.refused += 1
                raise OperationalError(
                    "INSERT INTO order_journal ...", {}, Exception("database or disk is full")
                )
            with inner(write_lock=write_lock) as conn:
                yield conn

        db.begin = begin  # type: ignore[method-assign]


def limit_buy(price: str = "100", qty: str = "10", symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(symbol, OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty),
                        limit_price=Decimal(price))  # fmt: skip


def every_sent_order_was_journaled(rig: Rig) -> None:
    """The core rule, checked against the database after the fact too."""
    for cid in rig.broker.submits_received:
        assert rig.journal.has_intent(cid), f"{cid} reached the broker without its journal entry"


@pytest.fixture(params=["shared-batch", "own-batch"])
def rig(db: Database, request: pytest.FixtureRequest) -> Rig:
    """Both wirings of the order store: sharing the journal's write batch, and with its own batch
    as app/subsystems/orders.py builds it. The production wiring committed each order and fill row at once
    and raised out of a fill on a full disk (the chaos runs: a fill booked twice, local 2 against
    the broker's 1)."""
    r = build(db, ManualClock(), shared_batch=request.param == "shared-batch")
    asyncio.run(r.engine.refresh_account())
    r.trading.enable()
    return r


@pytest.fixture
def disk(rig: Rig) -> FullDisk:
    return FullDisk(rig.db)


@pytest.mark.expected_log(
    r"^services\.orders\.engine: \S+ not sent: the order could not",
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_an_order_on_a_full_disk_is_refused_saying_disk_full_and_the_next_one_goes(
    rig: Rig, disk: FullDisk
) -> None:
    disk.full = True
    res = run(rig.engine.submit(limit_buy()))
    assert not res.accepted and res.state is OrderState.DENIED
    assert "disk full" in res.message and "not sent" in res.message
    assert rig.db.display_url in res.message  # names the file
    assert rig.broker.submits_received == []
    assert any(isinstance(e, NotificationEvent) and "disk full" in e.message for e in rig.events)
    disk.full = False
    rig.clock.advance(5)
    ok = run(rig.engine.submit(limit_buy()))
    assert ok.accepted and rig.broker.submits_received == [ok.client_order_id]
    every_sent_order_was_journaled(rig)


@pytest.mark.expected_log(
    r"^services\.orders\.engine: \S+ not sent: the order could not",
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_queued_rows_on_a_full_disk_never_make_the_next_submit_raise(rig: Rig, disk: FullDisk) -> None:
    """``has_intent`` commits the queued rows first: with a fill queued and the disk full it raised
    OperationalError out of ``submit`` (the script's task died)."""
    first = run(rig.engine.submit(limit_buy()))
    assert first.accepted and first.client_order_id is not None
    disk.full = True
    order_id = rig.broker.by_client[first.client_order_id]
    rig.broker.fill(order_id, Decimal(4), Decimal(100))  # booked in memory, its rows queued
    assert rig.store.positions["AAPL"].qty == Decimal(4)
    assert rig.journal.batch.pending > 0
    rig.clock.advance(5)
    res = run(rig.engine.submit(limit_buy("99")))
    assert not res.accepted and "disk full" in res.message
    assert rig.broker.submits_received == [first.client_order_id]
    # another fill while still full: booked, nothing raised
    rig.broker.fill(order_id, Decimal(6), Decimal("100.5"))
    assert rig.store.positions["AAPL"].qty == Decimal(10)
    disk.full = False
    rig.clock.advance(5)
    ok = run(rig.engine.submit(limit_buy("98")))
    assert ok.accepted
    assert rig.journal.batch.pending == 0
    every_sent_order_was_journaled(rig)
    # nothing lost: a restart on the same database books both fills from the fills table
    again = rig.restart()
    again.store.load()
    assert again.store.positions["AAPL"].qty == Decimal(10)
    rec = again.store.find(client_order_id=first.client_order_id)
    assert rec is not None and rec.state is OrderState.FILLED


@pytest.mark.expected_log(
    r"^services\.orders\.replacing: \S+ not sent: the replace could not",
    r"^services\.orders\.engine: \S+ cancel request not journaled yet \(disk",
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_replace_on_a_full_disk_is_refused_saying_disk_full_and_cancel_still_goes(
    rig: Rig, disk: FullDisk
) -> None:
    first = run(rig.engine.submit(limit_buy()))
    second = run(rig.engine.submit(limit_buy("95", symbol="MSFT")))
    assert first.client_order_id is not None and second.client_order_id is not None
    disk.full = True
    rig.broker.fill(rig.broker.by_client[first.client_order_id], Decimal(1), Decimal(100))
    out = run(rig.engine.replace(first.client_order_id, limit_price=Decimal("100.05")))
    assert "not sent" in out.message and "disk full" in out.message
    assert "replace_order" not in rig.broker.calls
    assert run(rig.engine.cancel(second.client_order_id))  # a cancel only reduces risk: sent
    disk.full = False
    rig.clock.advance(5)
    again = run(rig.engine.replace(first.client_order_id, limit_price=Decimal("100.05")))
    assert again.message == "replaced"
    run(rig.engine.poll_once())
    assert rig.journal.batch.pending == 0


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_a_fill_matched_to_an_inferred_fill_on_a_full_disk_is_not_lost(rig: Rig, disk: FullDisk) -> None:
    """A fill booked from a snapshot, then its real execution report, both while the disk is full:
    the position holds the fill once, and after space returns a restart agrees."""
    first = run(rig.engine.submit(limit_buy(qty="5")))
    assert first.client_order_id is not None
    disk.full = True
    order_id = rig.broker.by_client[first.client_order_id]
    held: list[Any] = []
    rig.broker.sink = held.append  # the stream is late with this execution report
    rig.broker.fill(order_id, Decimal(5), Decimal("99.5"))
    rig.broker.sink = rig.bus.publish
    rig.clock.advance(60)
    run(rig.engine.poll_once())  # the snapshot says filled: an inferred fill
    assert rig.store.positions["AAPL"].qty == Decimal(5)
    for event in held:  # the real execution arrives: it replaces the inferred fill
        rig.bus.publish(event)
    assert rig.bus.handler_errors == 0
    assert rig.store.positions["AAPL"].qty == Decimal(5)
    disk.full = False
    run(rig.engine.poll_once())
    assert rig.journal.batch.pending == 0
    again = rig.restart()
    again.store.load()
    assert again.store.positions["AAPL"].qty == Decimal(5)
    assert again.store.positions["AAPL"].avg_price == Decimal("99.5")


@pytest.mark.expected_log(r"^services\.orders\.engine: AAPL buy order refused: not sent: the")
def test_a_database_that_refuses_reads_refuses_the_order_without_raising(rig: Rig) -> None:
    """Reads may fail too (an I/O error): the order is refused with a reason, nothing is sent."""
    inner = rig.db.connect

    @contextmanager
    def connect() -> Iterator[Connection]:
        raise OperationalError("SELECT ...", {}, Exception("disk I/O error"))
        with inner() as conn:  # pragma: no cover
            yield conn

    rig.db.connect = connect  # type: ignore[method-assign]
    res = run(rig.engine.submit(limit_buy()))
    assert not res.accepted and "not sent" in res.message and "disk" in res.message
    assert rig.broker.submits_received == []


@pytest.mark.expected_log(
    r"^services\.orders\.engine: \S+ not sent: the order could not",
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_a_full_disk_is_named_in_the_log_once_per_outage_not_as_a_traceback(
    rig: Rig, disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    first = run(rig.engine.submit(limit_buy()))
    assert first.client_order_id is not None
    disk.full = True
    with caplog.at_level(logging.INFO):
        rig.broker.fill(rig.broker.by_client[first.client_order_id], Decimal(1), Decimal(100))
        rig.clock.advance(5)
        run(rig.engine.submit(limit_buy("99")))
        run(rig.engine.poll_once())
        disk.full = False
        run(rig.engine.poll_once())
    assert "disk full" in caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert "database writes work again" in caplog.text


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
    r"^services\.orders\.recovery: recovery's records are kept in memory until",
    r"^services\.orders\.writes: database writes work again on",
)
def test_recovery_on_a_full_disk_books_what_happened_and_commits_it_when_space_returns(
    rig: Rig, disk: FullDisk
) -> None:
    """A terminal restarted while the disk is full: recovery learns a fill that happened while it was
    down; the start-up task died on the commit (the chaos runs: "background task startup failed")."""
    first = run(rig.engine.submit(limit_buy(qty="3")))
    assert first.client_order_id is not None
    order_id = rig.broker.by_client[first.client_order_id]
    rig.engine.flush()
    again = rig.restart()
    again.store.load()
    again.broker.sink = lambda _event: None  # the fill happens while no terminal listens
    again.broker.fill(order_id, Decimal(3), Decimal(100))
    again.broker.sink = again.bus.publish
    disk.full = True
    run(again.engine.recover())  # must not raise
    assert again.store.positions["AAPL"].qty == Decimal(3)
    disk.full = False
    again.engine._flush()
    third = again.restart()
    third.store.load()
    assert third.store.positions["AAPL"].qty == Decimal(3)


@pytest.mark.expected_log(
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_rows_still_queued_at_exit_are_said_not_dropped_in_silence(rig: Rig, disk: FullDisk) -> None:
    """The disk stays full to the end: the rows kept in memory end with the process. The shutdown
    step says how many and why (and a headless run then exits non-zero); it used to end clean."""
    from services.orders.writes import UnwrittenRecords

    first = run(rig.engine.submit(limit_buy()))
    assert first.client_order_id is not None
    disk.full = True
    rig.broker.fill(rig.broker.by_client[first.client_order_id], Decimal(4), Decimal(100))
    with pytest.raises(UnwrittenRecords, match=r"\d+ order record\(s\) .*disk full") as raised:
        rig.engine.flush_at_exit()
    assert raised.value.expected
    disk.full = False
    rig.engine.flush_at_exit()  # space is back: everything committed, nothing raised
