"""A bracket whose entry filled leaves its exits working: the take-profit ``new`` and the stop-loss
``held`` until needed (docs/alpaca-rules.md, "Brackets, OCO, OTO": alpaca-trade-api-js #87). That is
the normal life of a bracket, not an execution in transit, so it must not postpone the position check.

``GET /v2/orders?status=open&nested=true`` does not list a filled parent, and so none of its legs
(alpaca-trade-api-js #80, #87); the local exchange answers the same way. Reading the open orders
nested made every working leg of a filled bracket look "not caught up": the position check was
deferred every cycle, logged every 10 s, and a WARNING came every minute for as long as the bracket
was open."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal

import pytest

from services.broker.base import OrderQuery
from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from services.domain.models import Order, OrderLegSpec, OrderRequest
from services.reconciliation.reconciler import Reconciler
from services.storage import Database
from tests.support.clock import ManualClock
from tests.support.fake_broker import FakeBroker
from tests.unit.orders.conftest import ASSETS, Rig, build

LOGGER = "services.reconciliation.reconciler"


class NestingBroker(FakeBroker):
    """The fake broker, listing open orders as Alpaca does with ``nested``: legs rolled up under
    their parent, and a parent that is no longer open listed with none of its legs."""

    async def list_orders(self, query: OrderQuery) -> list[Order]:
        flat = await super().list_orders(query)
        if not query.nested:
            return flat
        return [o for o in flat if o.id not in self._leg_parent]


def bracket() -> OrderRequest:
    return OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal(5),
        limit_price=Decimal(100),
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(90)),
    )


def filled_bracket(db: Database) -> tuple[Rig, Reconciler]:
    r = build(db, ManualClock(), NestingBroker(ManualClock(), assets=ASSETS))
    r.broker.clock = r.clock
    rc = Reconciler(r.broker, r.store, r.journal, r.trading, r.bus, r.clock, r.db, max_position_deferral_s=60)
    asyncio.run(r.engine.refresh_account())
    assert asyncio.run(rc.startup()).clean
    res = asyncio.run(r.engine.submit(bracket()))
    assert res.client_order_id is not None
    parent = r.broker.orders[r.broker.by_client[res.client_order_id]]
    r.broker.fill(parent.id, Decimal(5), Decimal(100))
    # after the entry fills the stop-loss stays held at Alpaca (the fake activates both legs)
    stop = next(leg for leg in parent.legs if leg.type is OrderType.STOP)
    r.broker.orders[stop.id] = replace(r.broker.orders[stop.id], status=OrderStatus.HELD)
    assert r.store.position_qty("AAPL") == 5
    return r, rc


def test_the_working_legs_of_a_filled_bracket_do_not_postpone_the_position_check(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    r, rc = filled_bracket(db)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for _ in range(20):  # ten minutes of cycles with the bracket open
            r.clock.advance(30)
            before = r.broker.calls.count("get_positions")
            assert asyncio.run(rc.run_cycle()).clean
            assert r.broker.calls.count("get_positions") == before + 1
    logged = [rec.getMessage() for rec in caplog.records if rec.name == LOGGER]
    assert not [m for m in logged if "deferred" in m or "in transit" in m], logged
    assert r.trading.state is TradingState.ACTIVE
    # and a drift is still caught while the bracket is open
    r.broker.set_position("AAPL", Decimal(7), Decimal(100))
    r.clock.advance(30)
    assert not asyncio.run(rc.run_cycle()).clean


@pytest.mark.expected_log(
    r"^services\.reconciliation\.reconciler: positions compared although",
    r"^services\.reconciliation\.reconciler: incident .* closed itself",  # the drift the stuck wait let in
)
def test_a_real_catch_up_is_logged_when_it_starts_and_ends_and_warned_once_when_stuck(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    r, rc = filled_bracket(db)
    r.broker.faults.drop_all_events = True  # the take-profit fills while the stream is down
    tp = next(o for o in r.broker.orders.values() if o.type is OrderType.LIMIT and o.side is OrderSide.SELL)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        r.broker.fill(tp.id, Decimal(2), Decimal(110))
        for _ in range(12):  # six minutes stuck: positions are compared every minute regardless
            r.clock.advance(30)
            asyncio.run(rc.run_cycle())
        r.broker.faults.drop_all_events = False
        asyncio.run(r.engine.poll_once())  # the engine catches up
        for _ in range(4):
            r.clock.advance(30)
            assert asyncio.run(rc.run_cycle()).clean
    records = [rec for rec in caplog.records if rec.name == LOGGER]
    started = [rec for rec in records if "deferred" in rec.getMessage()]
    ended = [rec for rec in records if "resumed" in rec.getMessage()]
    warned = [rec for rec in records if rec.levelno >= logging.WARNING and "in transit" in rec.getMessage()]
    assert len(started) == 1 and started[0].levelno == logging.INFO, [x.getMessage() for x in records]
    assert tp.client_order_id in started[0].getMessage()
    assert len(ended) == 1 and ended[0].levelno == logging.INFO
    assert len(warned) == 1 and tp.client_order_id in warned[0].getMessage()
