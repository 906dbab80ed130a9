"""Close position, Flatten all and the kill switch's flatten against Alpaca's rules.

Alpaca behaviour encoded here, with its sources:
- Working orders hold the shares they would sell; a closing order that needs held shares is refused
  with 403 "insufficient qty available for order (requested: X, available: Y)"
  (alpaca-trade-api-python #129; alpaca-trade-api-csharp #247: cancel the open orders and wait
  before selling; Alpaca-API #119: an open OCO leg blocks liquidation).
- ``pending_cancel``: "The order is waiting to be canceled" (Alpaca docs "Understand Orders", order
  lifecycle); its shares stay held until ``canceled`` arrives, and a fill can still arrive.
- Bracket / OCO: "If any one of the orders is canceled, any remaining open order in the group is
  canceled" (same page, "Bracket Orders").
- Crypto: "We only support gtc and ioc time in force options for crypto orders" (Alpaca docs
  "Crypto Trading", Supported Orders).

Time is a manual clock; waiting goes through an injected sleep that moves it (no real sleeping).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import pytest

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from services.domain.events import NotificationEvent
from services.domain.models import Asset, OrderLegSpec, OrderRequest
from services.orders.report import build_state_report
from services.risk.kill_switch import KillSwitch
from tests.unit.orders.conftest import Rig

INSUFFICIENT = "insufficient qty available for order"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class Timeline:
    """The closer's sleep: moves the manual clock and runs what the test scheduled for that time."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.start = rig.clock()
        self.actions: list[tuple[float, Callable[[], None]]] = []
        self.fill_closing_orders = True
        self.slept = 0.0
        self.submits_at_confirm: int | None = None

    def at(self, seconds: float, action: Callable[[], None]) -> None:
        self.actions.append((seconds, action))

    def elapsed(self) -> float:
        return (self.rig.clock() - self.start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.rig.clock.advance(seconds)
        due = [a for a in self.actions if a[0] <= self.elapsed()]
        self.actions = [a for a in self.actions if a[0] > self.elapsed()]
        for _, action in due:
            action()
        if self.fill_closing_orders:
            fill_market_orders(self.rig)


def fill_market_orders(rig: Rig) -> None:
    """The market: working market orders fill at 100 (they are the closing orders here)."""
    for o in list(rig.broker.orders.values()):
        if o.type is OrderType.MARKET and not o.status.is_terminal and o.qty is not None:
            rig.broker.fill(o.id, o.qty - o.filled_qty, Decimal(100))


def timeline(rig: Rig, deadline_s: float = 30.0) -> Timeline:
    t = Timeline(rig)
    rig.engine.closer.sleep = t.sleep
    rig.engine.closer.deadline_s = deadline_s
    return t


def long_aapl(rig: Rig, qty: str = "10") -> None:
    res = run(rig.engine.submit(
        OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty),
                     limit_price=Decimal(100))
    ))  # fmt: skip
    rig.broker.fill(rig.broker.by_client[res.client_order_id], Decimal(qty), Decimal(100))


def working_sell(rig: Rig, qty: str = "10", price: str = "110") -> str:
    res = run(rig.engine.submit(
        OrderRequest("AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(qty),
                     limit_price=Decimal(price))
    ))  # fmt: skip
    assert res.accepted, res.message
    return str(res.client_order_id)


def rejected_closes(rig: Rig) -> list[dict[str, Any]]:
    return [r for r in rig.journal.records() if r["kind"] == "rejected"]


def test_flatten_with_working_bracket_legs_cancels_them_first_and_ends_flat(rig: Rig) -> None:
    entry = run(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(10), limit_price=Decimal(100),
        order_class=OrderClass.BRACKET, take_profit=OrderLegSpec(limit_price=Decimal(110)),
        stop_loss=OrderLegSpec(stop_price=Decimal(90)),
    )))  # fmt: skip
    parent = rig.broker.orders[rig.broker.by_client[entry.client_order_id]]
    rig.broker.fill(parent.id, Decimal(10), Decimal(100))
    legs = [rig.broker.orders[leg.id] for leg in parent.legs]
    assert all(not leg.status.is_terminal for leg in legs)  # the exits hold the 10 shares
    timeline(rig)

    report = run(rig.engine.flatten_all(source="manual"))

    assert rig.broker.position_qty("AAPL") == 0
    assert all(rig.broker.orders[leg.id].status is OrderStatus.CANCELED for leg in legs)
    assert rejected_closes(rig) == []  # the close was sent only once the legs were gone
    assert report.all_flat and [r.symbol for r in report.results] == ["AAPL"]
    assert report.results[0].flat and report.results[0].remaining_qty == 0
    assert "AAPL flat" in report.summary() and "closing orders sent" not in report.summary()


def test_close_waits_for_a_cancel_held_in_pending_cancel(rig: Rig) -> None:
    long_aapl(rig)
    working_sell(rig)
    rig.broker.faults.pending_cancel = True
    t = timeline(rig)
    submits_before = len(rig.broker.submits_received)

    def confirm() -> None:
        t.submits_at_confirm = len(rig.broker.submits_received)
        for o in list(rig.broker.orders.values()):
            if o.status is OrderStatus.PENDING_CANCEL:
                rig.broker.confirm_cancel(o.id)

    t.at(3.0, confirm)  # the cancel stays pending_cancel for 3 s

    result = run(rig.engine.close_position("AAPL", source="manual"))

    assert t.submits_at_confirm == submits_before  # nothing was sent while the shares were held
    assert len(rig.broker.submits_received) == submits_before + 1
    assert rejected_closes(rig) == []
    assert rig.broker.position_qty("AAPL") == 0
    assert result.flat and result.symbol == "AAPL" and result.canceled == 1


@pytest.mark.expected_log(r"^services\.orders\.closing: close AAPL: closing order refused by the")
def test_a_refused_close_is_retried_until_flat(rig: Rig) -> None:
    long_aapl(rig)
    timeline(rig)
    refusal = f"{INSUFFICIENT} (requested: 10, available: 0)"
    rig.broker.faults.reject_submit = [refusal, refusal]

    report = run(rig.engine.flatten_all(source="manual"))

    assert rig.broker.position_qty("AAPL") == 0
    assert report.all_flat and report.results[0].attempts == 3
    assert len(rejected_closes(rig)) == 2


@pytest.mark.expected_log(r"^services\.orders\.closing: close AAPL \(manual\): AAPL STILL OPEN")
def test_deadline_reports_the_symbol_still_open_loudly(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    long_aapl(rig)
    working_sell(rig)
    rig.broker.faults.pending_cancel = True  # and never confirmed
    t = timeline(rig, deadline_s=10.0)
    caplog.set_level(logging.INFO)

    report = run(rig.engine.flatten_all(source="manual"))

    assert t.elapsed() <= 10.0 + 1.0  # bounded: it stopped at its deadline
    assert rig.broker.position_qty("AAPL") == 10
    assert not report.all_flat
    (res,) = report.results
    assert not res.flat and res.remaining_qty == 10 and "pending_cancel" in res.reason
    assert "AAPL STILL OPEN 10" in report.summary()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "AAPL" in r.getMessage()]
    assert loud and loud[0].levelno >= logging.ERROR
    notes = [e for e in rig.events if isinstance(e, NotificationEvent) and "AAPL" in e.message]
    assert any(n.level == "error" and "still open" in n.message.lower() for n in notes)
    state = build_state_report(
        mode="local", trading_state=TradingState.ACTIVE, store=rig.store, closing=rig.engine.closer
    )
    section = state["closing"]["AAPL"]
    assert section["flat"] is False and section["remaining_qty"] == "10"
    assert "pending_cancel" in section["reason"]


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_kill_switch_flatten_reports_per_symbol_not_orders_sent(rig: Rig) -> None:
    long_aapl(rig)
    working_sell(rig)
    timeline(rig)
    out = run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=True))
    assert rig.trading.state is TradingState.HALTED
    assert rig.broker.position_qty("AAPL") == 0 and rejected_closes(rig) == []
    assert out.flatten is not None and out.flatten.all_flat
    assert "AAPL flat" in out.summary() and "closing orders sent" not in out.summary()


def test_closing_crypto_uses_gtc_never_day(rig: Rig) -> None:
    rig.broker._assets["BTC/USD"] = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True, marginable=False)
    rig.prices.set("BTC/USD", "59990", "60010")
    buy = run(rig.engine.submit(OrderRequest(
        "BTC/USD", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal("0.5"),
        limit_price=Decimal(60000),
    )))  # fmt: skip
    assert buy.accepted, buy.message
    rig.broker.fill(rig.broker.by_client[buy.client_order_id], Decimal("0.5"), Decimal(60000))
    timeline(rig)

    result = run(rig.engine.close_position("BTC/USD", source="manual"))

    closes = [o for o in rig.broker.orders.values() if o.symbol == "BTC/USD" and o.side is OrderSide.SELL]
    assert len(closes) == 1 and closes[0].qty == Decimal("0.5")
    assert closes[0].time_in_force in (TimeInForce.GTC, TimeInForce.IOC)
    assert result.flat and rig.broker.position_qty("BTC/USD") == 0


def test_partial_close_closes_only_what_was_asked(rig: Rig) -> None:
    long_aapl(rig)
    timeline(rig)
    result = run(rig.engine.close_position("AAPL", qty=Decimal(4), source="manual"))
    assert result.complete and not result.flat
    assert rig.broker.position_qty("AAPL") == 6 and result.remaining_qty == 6


def test_close_of_no_position_says_so(rig: Rig) -> None:
    timeline(rig)
    result = run(rig.engine.close_position("AAPL", source="manual"))
    assert result.flat and "no AAPL position" in result.message
    assert "submit_order" not in rig.broker.calls


@pytest.mark.expected_log(
    r"^services\.orders\.closing: close AAPL \(manual\): AAPL STILL OPEN",
    r"^services\.orders\.closing: flatten \(manual\): NOT FLAT: the broker's positions",
)
def test_flatten_says_so_when_the_positions_cannot_be_read(rig: Rig) -> None:
    from services.broker.base import BrokerUnavailable

    long_aapl(rig)
    timeline(rig)

    async def down() -> list[Any]:
        raise BrokerUnavailable("HTTP 503 from the broker (fake)")

    rig.broker.get_positions = down  # type: ignore[method-assign]
    report = run(rig.engine.flatten_all(source="manual"))
    assert not report.all_flat and "NOT FLAT" in report.summary() and "503" in report.summary()
    assert any(isinstance(e, NotificationEvent) and e.level == "error" for e in rig.events)
    # the position Heron knows of is named in the state report, not only a flatten-wide error
    section = build_state_report(
        mode="local", trading_state=TradingState.HALTED, store=rig.store, closing=rig.engine.closer
    )["closing"]["AAPL"]
    assert section["complete"] is False and "could not be read" in section["reason"]


@pytest.mark.expected_log(
    r"^services\.orders\.closing: flatten \(kill\-switch\): NOT FLAT: the broker's positions",
)
def test_flatten_retries_unreadable_positions_until_the_deadline(rig: Rig) -> None:
    """A burst of 5xx answers (a chaos run: 19 of them, REST health in preservation) must not end
    a flatten at the first unreadable positions read: it is retried until the deadline."""
    from services.broker.base import BrokerUnavailable

    long_aapl(rig)
    timeline(rig)
    inner = rig.broker.get_positions
    failures = {"left": 3}

    async def flaky() -> list[Any]:
        if failures["left"]:
            failures["left"] -= 1
            raise BrokerUnavailable("HTTP 503 from the broker (fake)")
        return await inner()

    rig.broker.get_positions = flaky  # type: ignore[method-assign]
    report = run(rig.engine.flatten_all(source="kill-switch"))
    assert report.all_flat and rig.broker.position_qty("AAPL") == 0, report.summary()


def test_a_working_order_placed_elsewhere_is_canceled_before_the_close(rig: Rig) -> None:
    """An order from another app (never seen on Heron's stream) holds the shares just the same."""
    long_aapl(rig)
    rig.broker.faults.drop_all_events = True
    check, rig.broker.journal_check = rig.broker.journal_check, None  # not Heron's order: no intent
    outside = run(rig.broker.submit_order(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(10), limit_price=Decimal(120),
        client_order_id="web-1",
    )))  # fmt: skip
    rig.broker.faults.drop_all_events = False
    rig.broker.journal_check = check
    assert rig.store.find(broker_order_id=outside.id) is None
    timeline(rig)

    result = run(rig.engine.close_position("AAPL", source="manual"))

    assert rig.broker.orders[outside.id].status is OrderStatus.CANCELED
    assert result.flat and result.canceled == 1 and rejected_closes(rig) == []
    assert any(
        r["kind"] == "cancel_requested" and r["payload"]["broker_order_id"] == outside.id
        for r in rig.journal.records()
    )


def test_a_position_read_that_lags_the_fill_never_sends_a_second_close(rig: Rig) -> None:
    """The close's fill is on the stream, the positions read still shows the old quantity."""
    from services.domain.models import Position

    long_aapl(rig)
    timeline(rig)
    real = rig.broker.get_position
    stale_reads = []

    async def lagging(symbol: str) -> Position | None:
        closed = any(
            o.type is OrderType.MARKET and o.status is OrderStatus.FILLED for o in rig.broker.orders.values()
        )
        if closed and len(stale_reads) < 5:  # the positions read lags the fill for a while
            stale_reads.append(symbol)
            return Position(symbol, Decimal(10), Decimal(100))
        return await real(symbol)

    rig.broker.get_position = lagging  # type: ignore[method-assign]
    result = run(rig.engine.close_position("AAPL", source="manual"))
    sells = [o for o in rig.broker.orders.values() if o.side is OrderSide.SELL]
    assert stale_reads and len(sells) == 1
    assert result.flat and rig.broker.position_qty("AAPL") == 0


@pytest.mark.expected_log(r"^services\.orders\.closing: close AAPL \(kill\-switch\): AAPL STILL OPEN")
def test_a_flatten_stopped_by_shutdown_names_each_symbol_still_open(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A shutdown (SIGTERM, quit) while a flatten waits for a cancel held in pending_cancel (Alpaca
    "Orders" lifecycle: the shares stay held until ``canceled``) must not end silently: the symbol is
    reported still open, loudly, before the cancellation goes through (a chaos run found a flatten cut
    short this way with nothing in the state report)."""
    long_aapl(rig)
    working_sell(rig)
    rig.broker.faults.pending_cancel = True  # never confirmed while the terminal runs
    timeline(rig, deadline_s=30.0)
    caplog.set_level(logging.INFO)
    waiting = asyncio.Event()

    async def wait_for_the_broker(seconds: float) -> None:  # the closer is waiting when shutdown comes
        waiting.set()
        await asyncio.Event().wait()

    rig.engine.closer.sleep = wait_for_the_broker

    async def flatten_then_quit() -> None:
        task = asyncio.ensure_future(rig.engine.flatten_all(source="kill-switch"))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(flatten_then_quit())
    assert rig.broker.position_qty("AAPL") == 10
    section = build_state_report(
        mode="local", trading_state=TradingState.HALTED, store=rig.store, closing=rig.engine.closer
    )["closing"]["AAPL"]
    assert section["complete"] is False and "shutting down" in section["reason"]
    assert any(r.levelno >= logging.ERROR and "AAPL" in r.getMessage() for r in caplog.records)
    assert any(r["kind"] == "close_result" for r in rig.journal.records())


def test_flatten_closes_what_an_order_in_pending_cancel_fills_meanwhile(rig: Rig) -> None:
    """Alpaca "Orders", order lifecycle: an order in ``pending_cancel`` can still fill. A flatten
    that read the positions before such a fill left the position it opened open and reported
    nothing (a chaos run: the kill switch flattened an account that was flat at the read, then a
    buy held in pending_cancel filled). Every working order is settled first, then positions are
    read and closed, and read again."""
    res = run(rig.engine.submit(
        OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(6),
                     limit_price=Decimal(100))
    ))  # fmt: skip
    oid = rig.broker.by_client[res.client_order_id]
    rig.broker.faults.pending_cancel = True
    t = timeline(rig)
    t.at(1.0, lambda: rig.broker.fill(oid, Decimal(6), Decimal(100)))  # fills while pending_cancel

    report = run(rig.engine.flatten_all(source="kill-switch"))

    assert rig.broker.position_qty("AAPL") == 0
    assert [(r.symbol, r.flat) for r in report.results] == [("AAPL", True)]
