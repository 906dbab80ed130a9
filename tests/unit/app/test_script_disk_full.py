"""An order script keeps running through a full disk: every order is sent or refused with a message,
and the script's task lives to its last entry.

The regression: with the disk full for 12 s, ``submit`` raised OperationalError ("database or disk
is full") into the script's task, which died; 42 of 60 orders were never sent, with only a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.script import ScriptedOrder, run_script
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.orders.records import SubmitResult
from services.orders.tables import ORDERS_SCHEMA
from services.orders.transitions import OrderState
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import build
from tests.unit.orders.test_disk_errors import FullDisk


def _limit(n: int) -> ScriptedOrder:
    # a new price each time: the risk gate refuses a repeat of the same order within seconds
    price = Decimal(100) - Decimal(n) / 10
    return ScriptedOrder(
        "AAPL", OrderSide.BUY, Decimal(1), OrderType.LIMIT, TimeInForce.DAY, price, None, 1.0
    )


@pytest.mark.expected_log(
    r"^services\.orders\.engine: \S+ not sent: the order could not",
    r"^app\.script: script order \S+ buy \S+ AAPL \->",
    r"^services\.orders\.writes: database writes work again on",
    r"^services\.orders\.writes: database writes refused: disk full \(database or",
)
def test_a_script_runs_to_its_end_through_a_full_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    try:
        clock = ManualClock()
        rig = build(db, clock)
        asyncio.run(rig.engine.refresh_account())
        rig.trading.enable()
        disk = FullDisk(db)
        elapsed = 0.0

        async def sleep(seconds: float) -> None:
            """Script time: the disk is full from 5 s to 12 s; fills arrive while it is."""
            nonlocal elapsed
            elapsed += seconds
            clock.advance(seconds)
            disk.full = 5.0 <= elapsed < 12.0
            if disk.full:
                for cid in list(rig.broker.submits_received):
                    order = rig.broker.orders[rig.broker.by_client[cid]]
                    if not order.status.is_terminal:
                        rig.broker.fill(order.id, order.qty or Decimal(0), order.limit_price or Decimal(0))
                        break
            await asyncio.sleep(0)

        orders = [_limit(n) for n in range(20)]
        with caplog.at_level(logging.INFO):
            results: list[SubmitResult] = asyncio.run(
                run_script(orders, rig.engine, rig.trading, sleep=sleep)
            )
        assert disk.refused > 0  # the fault really happened
        assert len(results) == len(orders)  # the task lived to the end
        refused = [r for r in results if not r.accepted]
        assert refused and all("disk full" in r.message for r in refused)
        sent = [r for r in results if r.accepted]
        assert [r.client_order_id for r in sent] == rig.broker.submits_received
        assert results[-1].accepted  # space returned: trading went on
        for cid in rig.broker.submits_received:  # no order without its journal entry
            assert rig.journal.has_intent(cid)
        assert rig.bus.handler_errors == 0
        assert "Traceback" not in caplog.text
        # no fill lost: what the broker filled is what a restart books
        rig.engine.flush()
        filled = sum((o.filled_qty for o in rig.broker.orders.values()), Decimal(0))
        assert filled > 0
        again = rig.restart()
        again.store.load()
        assert again.store.positions["AAPL"].qty == filled
    finally:
        db.dispose()


class _RaisingEngine:
    """An engine whose submit raises something unforeseen once: the script says so and goes on."""

    def __init__(self, prices: Any) -> None:
        self.prices = prices
        self.calls = 0

    async def submit(self, request: Any, source: str) -> SubmitResult:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("something nobody foresaw")
        return SubmitResult(f"cid-{self.calls}", OrderState.ACCEPTED, None, "accepted")


@pytest.mark.expected_log(r"^app\.script: script order \S+ failed: submit raised RuntimeError:")
def test_an_unforeseen_error_in_one_entry_is_logged_and_the_script_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.unit.orders.conftest import FakePrices

    clock = ManualClock()
    prices = FakePrices(clock)
    prices.set("AAPL", "99.9", "100.1")
    engine = _RaisingEngine(prices)

    class Active:
        from services.domain.enums import TradingState

        state = TradingState.ACTIVE
        reason = ""

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    orders = [_limit(n) for n in range(3)]
    with caplog.at_level(logging.ERROR, logger="app.script"):
        results = asyncio.run(run_script(orders, engine, Active(), sleep=sleep))  # type: ignore[arg-type]
    assert engine.calls == 3
    assert [r.accepted for r in results] == [True, False, True]
    assert "script order 2" in results[1].message or "something nobody foresaw" in results[1].message
    assert "script order 2 failed" in caplog.text and "something nobody foresaw" in caplog.text
