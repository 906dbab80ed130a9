"""Reconciliation against positions as Alpaca reports them.

Alpaca is the source of truth for positions: "Treat Alpaca as the source of truth and your DB as a
cache that must converge to it" (Alpaca's own guidance, alpacahq/alpaca-skills,
skills/broker-api/reconciliation-idempotency/SKILL.md). The reconciler compares Heron's books with
``GET /v2/positions`` and never the reverse (docs/alpaca-rules.md "Positions, shorting, buying power").
Further sources are named per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.events import NotificationEvent
from services.domain.models import OrderRequest
from services.orders.transitions import OrderState
from services.reconciliation.reconciler import Reconciler
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import Rig, build

D = Decimal


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def rig_with_recon(db: Database) -> tuple[Rig, Reconciler]:
    r = build(db, ManualClock())
    run(r.engine.refresh_account())
    rc = Reconciler(r.broker, r.store, r.journal, r.trading, r.bus, r.clock, r.db)
    r.engine.reduce_only_qty = rc.reduce_only_qty  # as the composition root wires it
    assert run(rc.startup()).clean
    return r, rc


def request(symbol: str, side: OrderSide, qty: str, price: str) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.LIMIT, TimeInForce.DAY, qty=D(qty), limit_price=D(price))


def trade(r: Rig, side: OrderSide, qty: str, price: str, symbol: str = "AAPL") -> None:
    """A Heron order filled in full at ``price`` (the stream delivers its fill)."""
    p = D(price)
    r.prices.set(symbol, str(p - D("0.01")), str(p + D("0.01")))
    res = run(r.engine.submit(request(symbol, side, qty, price)))
    assert res.accepted, res.message
    r.broker.fill(r.broker.by_client[res.client_order_id], D(qty), p)


def next_day(r: Rig) -> None:
    r.clock.now += timedelta(days=1)


def test_an_overnight_partial_sell_is_not_price_drift(db: Database) -> None:
    """Alpaca docs, "Position Average Entry Price Calculation", compressed FIFO example 1: day 1 buy
    100 @ 10 and 50 @ 12, day 2 buy 30 @ 15, day 3 sell 120; Alpaca's average entry price is
    770/60 = $12.83 (day 1's lots go first). Heron's plain weighted average (11.39) called this a
    price drift and put trading in REDUCING."""
    r, rc = rig_with_recon(db)
    trade(r, OrderSide.BUY, "100", "10")
    trade(r, OrderSide.BUY, "50", "12")
    next_day(r)
    trade(r, OrderSide.BUY, "30", "15")
    next_day(r)
    trade(r, OrderSide.SELL, "120", "20")
    r.clock.advance(30)
    # the broker reports Alpaca's figure (its avg_entry_price string carries more digits than the docs)
    r.broker.set_position("AAPL", D(60), D("12.8333333333"))
    assert run(rc.run_cycle()).clean  # during day 3 (the docs leave open which figure shows)
    next_day(r)
    res = run(rc.run_cycle())
    assert res.clean and not rc.open_incidents() and r.trading.state is TradingState.ACTIVE
    pos = r.store.positions["AAPL"]
    assert pos.cost_basis == D(770) and pos.realized_pl == 120 * D(20) - D(1280)


@pytest.mark.expected_log(
    r"^services\.reconciliation\.reconciler: incident \S+ closed itself: MSFT matches the",
)
def test_an_outside_fill_seen_in_positions_before_its_trade_update_closes_itself(db: Database) -> None:
    """An order placed from another app fills; Alpaca's positions already hold it while its
    ``trade_updates`` fill is still on its way (Alpaca's own trade_updates example is a fill of an
    order the client never saw; docs/alpaca-rules.md "Order lifecycle"). The drift halts trading, and once
    the update is booked and local equals broker again the incident closes itself, with a journal
    record and a notification, and trading resumes."""
    r, rc = rig_with_recon(db)
    notes: list[NotificationEvent] = []
    r.bus.subscribe(NotificationEvent, notes.append)
    sink, r.broker.sink, r.broker.journal_check = r.broker.sink, None, None
    web = replace(request("MSFT", OrderSide.BUY, "5", "200"), client_order_id="web-1")
    outside = run(r.broker.submit_order(web))
    r.broker.fill(outside.id, D(5), D(200))
    r.clock.advance(30)
    res = run(rc.run_cycle())
    [inc] = res.incidents
    assert inc.kind == "position_qty" and r.trading.state is TradingState.HALTED
    # the trade update arrives
    r.broker.sink = sink
    for event in list(r.broker.emitted):
        r.bus.publish(event)
    assert r.store.position_qty("MSFT") == 5
    r.clock.advance(30)
    res = run(rc.run_cycle())
    assert res.clean and not rc.open_incidents()
    assert rc.incidents[inc.id].resolution == "resolved"
    assert r.trading.state is TradingState.ACTIVE
    resolved = [x["payload"] for x in r.journal.records() if x["kind"] == "incident_resolved"]
    assert [p["incident"] for p in resolved] == [inc.id]
    assert any("matches the broker again" in n.message for n in notes)


def test_an_acknowledged_phantom_cannot_open_a_real_short(db: Database) -> None:
    """Heron believes it holds 3 MSFT; Alpaca holds none (the broker is the truth). After the drift
    is acknowledged without adopting, a sell of the 3 would be a short sale at Alpaca (Alpaca docs
    "Margin and Short Selling"): MSFT stays reduce-only at the broker's quantity, 0, until adopted.
    Adopt stays available for the acknowledged incident and lifts the restriction."""
    r, rc = rig_with_recon(db)
    r.store.book_adjustment("MSFT", D(3), D(200), "phantom")
    r.clock.advance(30)
    [inc] = run(rc.run_cycle()).incidents
    assert (inc.kind, inc.local_value, inc.broker_value) == ("position_qty", "3", "0")
    rc.acknowledge(inc.id, "bob", "checked")
    assert r.trading.state is TradingState.ACTIVE
    sell = run(r.engine.submit(request("MSFT", OrderSide.SELL, "3", "200")))
    assert sell.state is OrderState.DENIED and r.broker.position_qty("MSFT") == 0
    assert sell.report is not None and "reduce_only" in sell.report.explain()
    assert rc.reduce_only_qty("MSFT") == 0
    buy = run(r.engine.submit(request("MSFT", OrderSide.BUY, "1", "200")))
    assert buy.state is OrderState.DENIED
    assert run(rc.run_cycle()).clean  # the acknowledged drift is not reported again
    # other symbols trade normally
    assert run(r.engine.submit(request("AAPL", OrderSide.BUY, "1", "100"))).accepted
    run(rc.adopt_broker_state(inc.id, "bob"))
    assert rc.incidents[inc.id].resolution == "adopted" and rc.reduce_only_qty("MSFT") is None
    assert r.store.position_qty("MSFT") == 0
    assert run(r.engine.submit(request("MSFT", OrderSide.BUY, "1", "200"))).accepted


def test_an_acknowledged_outside_buy_trades_on_the_broker_quantity(db: Database) -> None:
    """Alpaca holds 5 MSFT, Heron 3 (2 bought elsewhere). Acknowledged: sells up to the broker's 5
    reduce, a sell of 6 would open a short at Alpaca and is refused; Heron's own sell moves both
    sides alike, so the known drift is not reported again, and the reduce-only quantity follows."""
    r, rc = rig_with_recon(db)
    trade(r, OrderSide.BUY, "3", "200", "MSFT")
    r.broker.set_position("MSFT", D(5), D(200))
    r.clock.advance(30)
    [inc] = run(rc.run_cycle()).incidents
    rc.acknowledge(inc.id, "bob")
    assert rc.reduce_only_qty("MSFT") == 5
    assert run(r.engine.submit(request("MSFT", OrderSide.SELL, "6", "200"))).state is OrderState.DENIED
    trade(r, OrderSide.SELL, "1", "200", "MSFT")
    assert r.store.position_qty("MSFT") == 2 and r.broker.position_qty("MSFT") == 4
    assert rc.reduce_only_qty("MSFT") == 4
    r.clock.advance(30)
    assert run(rc.run_cycle()).clean and r.trading.state is TradingState.ACTIVE


def test_a_restart_rebuilds_the_same_lots_and_keeps_the_restriction(db: Database) -> None:
    """Positions are rebuilt from the stored fills on start-up: the fills' own times place them in
    their New York trading days, so the compressed FIFO lots (Alpaca docs, "Position Average Entry
    Price Calculation", example 1: cost basis $770) come out the same. An acknowledged quantity drift
    keeps its symbol reduce-only across the restart, and the state is not reported clean."""
    r, rc = rig_with_recon(db)
    trade(r, OrderSide.BUY, "100", "10")
    trade(r, OrderSide.BUY, "50", "12")
    next_day(r)
    trade(r, OrderSide.BUY, "30", "15")
    next_day(r)
    trade(r, OrderSide.SELL, "120", "20")
    r.broker.set_position("AAPL", D(60), D("12.8333333333"))
    r.broker.set_position("MSFT", D(2), D(200))  # bought elsewhere
    next_day(r)
    [inc] = run(rc.run_cycle()).incidents
    rc.acknowledge(inc.id, "bob")
    assert rc.last_clean is False  # MSFT differs: acknowledged, not clean
    r2 = r.restart()
    r2.store.load()
    rc2 = Reconciler(r2.broker, r2.store, r2.journal, r2.trading, r2.bus, r2.clock, r2.db)
    r2.engine.reduce_only_qty = rc2.reduce_only_qty
    assert rc2.reduce_only_qty("MSFT") == 2
    assert run(rc2.startup()).clean and r2.trading.state is TradingState.ACTIVE
    pos = r2.store.positions["AAPL"]  # rolled into today by the comparison, as the broker's BOD job does
    assert pos.qty == 60 and pos.cost_basis == D(770)
    assert pos.realized_pl == 120 * D(20) - D(1280)
    assert rc2.last_clean is False
    buy = run(r2.engine.submit(request("MSFT", OrderSide.BUY, "1", "200")))
    assert buy.state is OrderState.DENIED
