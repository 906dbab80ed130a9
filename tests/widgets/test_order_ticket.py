"""Order ticket: validation, the live pre-check (every check, with numbers), submit gating,
confirmation, submission through the real ExecutionEngine (fake broker), hotkeys."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PySide6.QtCore import Qt

from services.domain.enums import Mode, OrderClass, OrderSide, OrderStatus, OrderType, TradingState
from services.orders.transitions import OrderState
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, run_until_idle, settle_until
from widgets.order_ticket import OrderTicket
from widgets.order_ticket.form import AmountKind, TrailKind

qloop = trading_rig.qloop
rig = trading_rig.rig


def make(qtbot, rig: Rig, **kw) -> OrderTicket:  # type: ignore[no-untyped-def]
    t = OrderTicket(rig.engine, **kw)
    qtbot.addWidget(t)
    t._assets["AAPL"] = rig.broker._assets["AAPL"]  # instrument data as if already loaded
    t._assets["MSFT"] = rig.broker._assets["MSFT"]
    return t


def answered(t: OrderTicket) -> bool:
    """The engine answered the ticket's last submit (its "sending …" line is replaced)."""
    return not t.result_label.text().startswith("sending")


def fill_form(
    t: OrderTicket, symbol: str = "AAPL", qty: str = "10", otype: str = "market", **kw: str
) -> None:
    t.symbol_edit.setText(symbol)
    t.amount_edit.setText(qty)
    assert t.set_order_type(OrderType(otype))
    for name, value in kw.items():
        getattr(t, name).setText(value)


def test_invalid_fields_show_errors_keep_text_and_block_submit(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, symbol="aa pl!", qty="ten", otype="limit", limit_edit="-3")
    t.run_precheck()
    assert t.last_state is not None and t.last_state.request is None
    assert "not a valid symbol" in t.errors["symbol"].text()
    assert "not a number" in t.errors["amount"].text()
    assert "greater than zero" in t.errors["limit"].text()
    assert not t.submit_button.isEnabled()
    assert "Submit disabled" in t.blocked_reason
    # nothing typed is lost
    assert t.symbol_edit.text() == "aa pl!" and t.amount_edit.text() == "ten" and t.limit_edit.text() == "-3"
    # fixing the fields clears the errors
    fill_form(t, symbol="aapl", qty="10", otype="limit", limit_edit="100.00")
    t.run_precheck()
    assert t.last_state.request is not None and t.last_state.request.symbol == "AAPL"
    assert not t.errors["symbol"].isVisible() and t.errors["symbol"].text() == ""


def test_precheck_lists_every_check_with_numbers(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="10", otype="limit", limit_edit="100.05")
    report = t.run_precheck()
    assert report is not None and report.passed
    names = [t.precheck_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(t.precheck_list.count())]
    assert names == [c.name for c in report.checks]
    assert {"trading_state", "price_band", "buying_power", "max_order_notional", "duplicate_order"} <= set(
        names
    )
    texts = [t.precheck_list.item(i).text() for i in range(t.precheck_list.count())]
    band = next(x for x in texts if "price_band" in x)
    assert band.startswith("PASS") and "ask=100.1" in band and "limit_price=100.05" in band
    assert t.submit_button.isEnabled()


def test_failing_check_disables_submit_with_the_reason(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="10", otype="limit", limit_edit="150")  # 50% through the ask: fat finger
    report = t.run_precheck()
    assert report is not None and not report.passed
    assert not t.submit_button.isEnabled()
    assert "price_band" in t.blocked_reason and "fat finger" in t.blocked_reason
    fail = [
        t.precheck_list.item(i).text()
        for i in range(t.precheck_list.count())
        if "FAIL" in t.precheck_list.item(i).text()
    ]
    assert len(fail) == 1 and "max=105.10" in fail[0]  # the highest limit on the tick inside the band
    assert t.submit() is False  # the hotkey path is gated too
    assert rig.broker.submits_received == []


def test_precheck_has_no_side_effects_on_the_gate(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="10")
    for _ in range(50):  # typing: many pre-checks, more than the per-minute order limit
        assert t.run_precheck().passed  # type: ignore[union-attr]
    assert len(rig.risk._recent) == 0 and len(rig.risk._last_orders) == 0


def test_debounced_precheck_follows_typing(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="10")
    qtbot.waitUntil(lambda: t.last_report is not None and t.last_report.passed, timeout=1000)
    t.amount_edit.setText("1000000")  # notional way above the limit
    qtbot.waitUntil(lambda: not t.submit_button.isEnabled(), timeout=1000)
    assert "max_order_notional" in t.blocked_reason


def test_halted_trading_shows_in_precheck(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    rig.trading.set(TradingState.HALTED, "test halt", source="test")
    t = make(qtbot, rig)
    fill_form(t, qty="1")
    t.run_precheck()
    assert "HALTED" in t.blocked_reason


def test_submit_confirmed_goes_through_engine_as_manual(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, mode=Mode.LOCAL, confirm_orders=True)
    asked: list[str] = []
    t.ask = lambda title, text: asked.append(text) or True  # type: ignore[func-returns-value]
    fill_form(t, qty="5", otype="limit", limit_edit="100")
    with qtbot.waitSignal(t.submitted, timeout=2000):
        assert t.submit() is True
        settle_until(qloop, "the submit answered", lambda: answered(t))
    assert asked and "BUY 5 AAPL" in asked[0] and "limit 100" in asked[0]
    cid = t.last_client_order_id
    rec = rig.store.find(client_order_id=cid)
    assert rec is not None and rec.source == "manual"
    assert rig.store.status_of(rec) is OrderStatus.NEW
    assert t.result_label.text().startswith("ACCEPTED")


def test_declined_confirmation_sends_nothing(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, confirm_orders=True)
    t.ask = lambda title, text: False
    fill_form(t, qty="5")
    assert t.submit() is False
    run_until_idle(qloop)
    assert rig.broker.submits_received == []
    assert "declined" in t.result_label.text()


def test_live_always_confirms_and_paper_can_skip(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    assert make(qtbot, rig, mode=Mode.LIVE, confirm_orders=False).needs_confirmation()
    assert not make(qtbot, rig, mode=Mode.PAPER, confirm_orders=False).needs_confirmation()
    assert make(qtbot, rig, mode=Mode.PAPER, confirm_orders=True).needs_confirmation()


def test_broker_rejection_is_shown(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, confirm_orders=False)
    rig.broker.faults.reject_submit.append("insufficient buying power")
    fill_form(t, qty="5")
    t.submit()
    settle_until(qloop, "the submit answered", lambda: answered(t))
    assert "REJECTED" in t.result_label.text() and "insufficient buying power" in t.result_label.text()


@pytest.mark.parametrize(
    ("setup", "field", "message"),
    [
        (dict(otype="limit", limit_edit=""), "limit", "limit price is required"),
        (dict(otype="stop_limit", limit_edit="100"), "stop", "stop price is required"),
        (dict(otype="trailing_stop"), "trail", "trail is required"),
    ],
)
def test_type_specific_validation(qtbot, rig: Rig, setup: dict, field: str, message: str) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, **setup)
    t.run_precheck()
    assert t.errors[field].text() == ""  # an empty field nobody typed in is not shouted at
    assert t.submit() is False  # trying to send shows what is missing, on its field
    assert message in t.errors[field].text()


def test_bracket_and_trailing_requests(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="2", otype="limit", limit_edit="100")
    t.set_order_class(OrderClass.BRACKET)
    t.ask = lambda title, text: False
    assert t.submit() is False
    assert "take-profit limit is required" in t.errors["take_profit"].text()
    t.tp_edit.setText("90")
    t.sl_stop_edit.setText("95")
    t.run_precheck()
    # each leg's problem on its own field: a buy bracket's take-profit above the entry
    assert "take-profit must be above the entry (100)" in t.errors["take_profit"].text()
    assert t.errors["stop_loss"].text() == ""
    t.tp_edit.setText("110")
    t.run_precheck()
    req = t.last_state.request  # type: ignore[union-attr]
    assert req is not None and req.order_class.value == "bracket"
    assert req.take_profit.limit_price == Decimal("110") and req.stop_loss.stop_price == Decimal("95")  # type: ignore[union-attr]
    t.set_order_class(OrderClass.SIMPLE)
    t.set_order_type(OrderType.TRAILING_STOP)
    t.set_trail_kind(TrailKind.PERCENT)
    t.trail_edit.setText("1.5")
    t.run_precheck()
    req = t.last_state.request  # type: ignore[union-attr]
    assert req is not None and req.trail_percent == Decimal("1.5") and req.limit_price is None


def test_notional_needs_market(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    fill_form(t, qty="250", otype="limit", limit_edit="100")
    t.set_amount_kind(AmountKind.NOTIONAL)
    t.run_precheck()
    assert "market order" in t.errors["amount"].text()
    t.set_order_type(OrderType.MARKET)
    t.run_precheck()
    assert t.last_state.request is not None and t.last_state.request.notional == Decimal(250)  # type: ignore[union-attr]


def test_trade_commands_buy_sell_cancel(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    from app.qt.panels.trading import _order_commands
    from widgets.main_window import MainWindow
    from widgets.shortcuts import Command

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    t = OrderTicket(rig.engine, confirm_orders=False)
    window.add_panel(t, "orderTicket", "Order ticket", "left")
    t._assets["AAPL"] = rig.broker._assets["AAPL"]
    _order_commands(window, t)
    keys = {c: a.shortcut().toString() for c, a in window.commands.items()}
    assert keys[Command.SELL] == "Ctrl+Shift+S" and keys[Command.BUY] == "Ctrl+Shift+B"
    assert "Ctrl+S" not in keys.values() and "F2" not in keys.values()  # no surprise order keys
    fill_form(t, qty="3", otype="limit", limit_edit="100")
    window.commands[Command.SELL].trigger()
    settle_until(qloop, "the sell submit answered", lambda: answered(t))
    assert t.side() is OrderSide.SELL
    rec = rig.store.find(client_order_id=t.last_client_order_id)
    assert rec is not None and rec.side is OrderSide.SELL
    window.commands[Command.CANCEL_LAST].trigger()
    settle_until(qloop, "the cancel requested", lambda: rec.cancel_requested)
    assert rec.cancel_requested
    # cancel all asks first; declining sends nothing
    t.ask = lambda title, text: False
    calls = len(rig.broker.calls)
    assert t.cancel_all() is False and t.flatten_all() is False
    run_until_idle(qloop)
    assert len(rig.broker.calls) == calls


def test_prefill_from_order(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, confirm_orders=False)
    fill_form(t, symbol="MSFT", qty="7", otype="limit", limit_edit="199")
    t.submit()
    settle_until(qloop, "the submit answered", lambda: answered(t))
    order = rig.store.view(rig.store.find(client_order_id=t.last_client_order_id))
    other = make(qtbot, rig)
    other.prefill(order)
    assert other.symbol_edit.text() == "MSFT" and other.amount_edit.text() == "7"
    assert other.order_type() is OrderType.LIMIT and other.limit_edit.text() == "199"
    assert rig.broker.submits_received.count(t.last_client_order_id) == 1
    assert rig.store.find(client_order_id=t.last_client_order_id).state is OrderState.ACCEPTED  # type: ignore[union-attr]


def test_precheck_is_redone_as_time_passes(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """The duplicate-order guard blocks the same order only within its window (2 s); the ticket
    must not stay blocked with "just sent" once the window is over, nor keep showing trading as
    ACTIVE after the kill switch HALTed it, until the trader happens to edit a field."""
    t = make(qtbot, rig)
    t.ask = lambda title, text: True
    fill_form(t, qty="5", otype="limit", limit_edit="99")
    assert t.submit() is True
    settle_until(qloop, "the submit answered", lambda: answered(t))
    t.run_precheck()  # what the ticket does right after the submit
    assert "duplicate_order" in t.blocked_reason and not t.submit_button.isEnabled()
    assert t._recheck.isActive()
    rig.clock.advance(3)
    t._recheck.timeout.emit()
    assert t.blocked_reason == "" and t.submit_button.isEnabled()
    rig.trading.set(TradingState.HALTED, "kill switch", source="test")
    t._recheck.timeout.emit()
    assert "HALTED" in t.blocked_reason and not t.submit_button.isEnabled()
