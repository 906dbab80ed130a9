from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.events import PositionsEvent
from services.domain.models import OrderRequest, Position
from services.orders.report import build_state_report
from services.reconciliation.reconciler import Reconciler
from services.storage import Database
from tests.support.clock import ManualClock
from tests.support.fake_broker import NoOrdersBroker
from tests.unit.orders.conftest import ASSETS, Rig, build


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def recon(r: Rig) -> Reconciler:
    return Reconciler(r.broker, r.store, r.journal, r.trading, r.bus, r.clock, r.db)


def buy(qty: str = "10") -> OrderRequest:
    return OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty), limit_price=Decimal(100)
    )


def test_clean_startup_enables_trading(db: Database) -> None:
    r = build(db, ManualClock())
    rc = recon(r)
    result = run(rc.startup())
    assert result.clean and r.trading.state is TradingState.ACTIVE


def test_startup_with_drift_stays_disabled_until_adopt(db: Database) -> None:
    r = build(db, ManualClock())
    r.broker.set_position("AAPL", Decimal(7), Decimal("50"))  # bought elsewhere while Heron was off
    rc = recon(r)
    result = run(rc.startup())
    assert not result.clean and r.trading.state is TradingState.DISABLED
    [inc] = rc.open_incidents()
    assert inc.kind == "position_qty" and inc.local_value == "0" and inc.broker_value == "7"
    run(rc.adopt_broker_state(inc.id, "alice"))
    assert r.store.position_qty("AAPL") == 7 and r.store.positions["AAPL"].avg_price == 50
    assert r.trading.state is TradingState.ACTIVE
    kinds = [x["kind"] for x in r.journal.records()]
    assert "operator_adopt_broker_state" in kinds
    # the next cycle is clean and the incident history survives a restart
    assert run(rc.run_cycle()).clean
    rc2 = recon(r.restart())
    assert rc2.incidents[inc.id].resolution == "adopted"


def test_every_broker_position_read_is_passed_on_for_the_positions_panel(db: Database) -> None:
    r = build(db, ManualClock())
    r.broker.set_position("AAPL", Decimal(7), Decimal("50"))
    reports: list[PositionsEvent] = []
    r.bus.subscribe(PositionsEvent, reports.append)
    rc = recon(r)
    run(rc.startup())
    assert [[(p.symbol, p.qty) for p in e.positions] for e in reports] == [[("AAPL", Decimal(7))]]
    r.broker.set_position("AAPL", Decimal(9), Decimal("50"))
    run(rc.run_cycle())
    assert [(p.symbol, p.qty) for p in reports[-1].positions] == [("AAPL", Decimal(9))]
    assert len(reports) == 2


def test_running_drift_halts_until_acknowledged(db: Database) -> None:
    r = build(db, ManualClock())
    rc = recon(r)
    run(rc.startup())
    r.broker.set_position("MSFT", Decimal(-3), Decimal(200))
    r.clock.advance(30)
    res = run(rc.run_cycle())
    assert not res.clean and r.trading.state is TradingState.HALTED
    assert res.calls <= rc.max_calls
    # acknowledging without adopting: trading resumes, the same drift does not reopen
    rc.acknowledge(res.incidents[0].id, "bob", "known manual trade")
    assert r.trading.state is TradingState.ACTIVE
    assert run(rc.run_cycle()).clean


def test_price_drift_beyond_tolerance_is_a_warning_reducing(db: Database) -> None:
    r = build(db, ManualClock())
    rc = recon(r)
    run(rc.startup())
    r.store.book_adjustment("AAPL", Decimal(10), Decimal("100"), "seed")
    r.broker.set_position("AAPL", Decimal(10), Decimal("100.005"))  # within 1e-4 relative
    r.clock.advance(30)
    assert run(rc.run_cycle()).clean
    r.broker.set_position("AAPL", Decimal(10), Decimal("100.02"))
    res = run(rc.run_cycle())
    assert res.incidents[0].kind == "position_price" and r.trading.state is TradingState.REDUCING


def test_quiet_period_after_a_fill_skips_position_check(db: Database) -> None:
    r = build(db, ManualClock())
    asyncio.run(r.engine.refresh_account())
    rc = recon(r)
    run(rc.startup())
    res = run(r.engine.submit(buy()))
    r.broker.fill(r.broker.by_client[res.client_order_id], Decimal(10), Decimal(100))
    calls_before = r.broker.calls.count("get_positions")
    run(rc.run_cycle())
    assert r.broker.calls.count("get_positions") == calls_before


def test_unknown_open_order_at_broker_opens_incident(db: Database) -> None:
    r = build(db, ManualClock())
    r.broker.faults.drop_all_events = True  # placed in another app while Heron was not listening
    r.broker._create(buy(), "outside-app-1")
    rc = recon(r)
    res = run(rc.startup())
    assert [i.kind for i in res.incidents] == ["unknown_broker_order"]


def test_reconciler_never_sends_an_order(db: Database) -> None:
    clock = ManualClock()
    broker = NoOrdersBroker(clock, assets=ASSETS)
    r = build(db, clock, broker)
    broker.set_position("AAPL", Decimal(5), Decimal(10))
    broker.set_position("TSLA", Decimal(-2), Decimal(300))
    rc = recon(r)
    run(rc.startup())
    for inc in list(rc.open_incidents()):
        run(rc.adopt_broker_state(inc.id, "op"))
    clock.advance(60)
    run(rc.run_cycle())
    assert r.store.position_qty("TSLA") == -2
    assert not {"submit_order", "cancel_order", "replace_order", "close_position"} & set(broker.calls)


def test_trade_report_csv_and_state_report(db: Database, tmp_path: Path) -> None:
    r = build(db, ManualClock())
    asyncio.run(r.engine.refresh_account())
    rc = recon(r)
    run(rc.startup())
    a = run(r.engine.submit(buy()))
    r.broker.fill(r.broker.by_client[a.client_order_id], Decimal(10), Decimal(100))
    r.prices.set("AAPL", "109.9", "110.1")
    s = run(
        r.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.SELL,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(4),
                limit_price=Decimal(110),
            )
        )
    )
    r.broker.fill(r.broker.by_client[s.client_order_id], Decimal(4), Decimal(110))
    run(r.engine.submit(buy("1")))
    path = tmp_path / "trades.csv"
    assert rc.export_trade_report(path) == 1
    row = next(csv.DictReader(path.read_text().splitlines()))
    assert row == {
        "symbol": "AAPL",
        "buys": "10",
        "sells": "4",
        "volume": "14",
        "buy_notional": "1000",
        "sell_notional": "440",
        "position": "6",
        "realized_pl": "40",
    }
    r.clock.advance(30)
    run(rc.run_cycle())
    rep = build_state_report(
        mode="local",
        trading_state=r.trading.state,
        store=r.store,
        reconciler=rc,
        connection={"rest": "healthy", "streams": {"trading": "live"}},
    )
    json.dumps(rep)
    assert rep["version"] == 1 and rep["mode"] == "local" and rep["trading_state"] == "ACTIVE"
    assert rep["orders"]["by_status"] == {"filled": 2, "new": 1}
    [open_order] = rep["orders"]["open"]
    assert open_order["source"] == "manual" and open_order["qty"] == "1" and open_order["status"] == "new"
    assert rep["positions"] == {"local": {"AAPL": "6"}, "broker": {"AAPL": "6"}}
    assert rep["reconciliation"]["clean"] is True and rep["reconciliation"]["last_run"].endswith("Z")
    assert "strategies" not in rep and "shadow" not in rep


@settings(max_examples=40, deadline=None)
@given(
    local=st.dictionaries(st.sampled_from(["AAPL", "MSFT", "TSLA"]), st.integers(-50, 50), max_size=3),
    broker=st.dictionaries(st.sampled_from(["AAPL", "MSFT", "TSLA"]), st.integers(-50, 50), max_size=3),
)
def test_property_incident_iff_quantities_differ(
    local: dict[str, int], broker: dict[str, int], tmp_path_factory: Any
) -> None:
    db = Database.open(None, tmp_path_factory.mktemp("p"), [])
    try:
        from services.orders.tables import ORDERS_SCHEMA
        from services.storage import migrate

        migrate(db.engine, [ORDERS_SCHEMA])
        r = build(db, ManualClock())
        for sym, q in local.items():
            r.store.book_adjustment(sym, Decimal(q), Decimal(10), f"seed-{sym}")
        for sym, q in broker.items():
            r.broker.set_position(sym, Decimal(q), Decimal(10))
        rc = recon(r)
        res = run(rc.startup())
        differ = {s for s in set(local) | set(broker) if local.get(s, 0) != broker.get(s, 0)}
        assert {i.subject for i in res.incidents} == differ
        assert res.clean == (not differ)
        # adopting every incident makes the next run clean and never sends an order
        for inc in rc.open_incidents():
            run(rc.adopt_broker_state(inc.id, "op"))
        r.clock.advance(60)
        assert run(rc.run_cycle()).clean
        assert "submit_order" not in r.broker.calls
        _ = Position
    finally:
        db.dispose()


def test_a_skipped_cycle_says_why_until_one_runs(db: Database) -> None:
    """The final reconciliation at quit with the exchange gone: the cycle was skipped at INFO and the
    shutdown ended "clean" with an older report. The reconciler now says a cycle was skipped, and
    why, so the shutdown can say it (and a headless run exit non-zero)."""
    from services.broker.base import BrokerUnavailable

    r = build(db, ManualClock())
    rc = recon(r)
    run(rc.startup())
    assert rc.last_skipped is None
    real = r.broker.list_orders

    async def gone(*_a: Any, **_k: Any) -> Any:
        raise BrokerUnavailable("the local exchange did not answer")

    r.broker.list_orders = gone  # type: ignore[method-assign]
    run(rc.run_cycle())
    assert rc.last_skipped == "the local exchange did not answer"
    r.broker.list_orders = real  # type: ignore[method-assign]
    run(rc.run_cycle())
    assert rc.last_skipped is None
