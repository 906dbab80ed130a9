"""Quitting with working orders or open positions says what stays at the broker and offers to
cancel the orders; with nothing working the window closes without a question.

Alpaca: an open order keeps working at the broker whatever the client does ("Orders" docs: an order
stays open until filled, canceled or expired; a ``gtc`` order until canceled, up to 90 days)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from app.qt.runner import install_quit_guard
from services.domain.enums import Mode, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from services.orders.working import WorkingOrder, WorkingOrders
from tests.widgets import trading_rig
from tests.widgets.test_positions import buy
from tests.widgets.trading_rig import Rig
from widgets.main_window import MainWindow
from widgets.quit_guard import AtBroker, QuitChoice, QuitGuard, QuitGuardDialog

qloop = trading_rig.qloop
rig = trading_rig.rig

SELL = WorkingOrder("AAPL", OrderSide.SELL, Decimal(5), OrderType.LIMIT, limit_price=Decimal("110.5"))
SOME = AtBroker(WorkingOrders((SELL,)), ("AAPL long 10 (avg 100.00)",))


def test_the_dialog_lists_orders_and_positions_and_defaults_to_stay(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = QuitGuardDialog(SOME)
    qtbot.addWidget(dialog)
    text = dialog.findChild(QPlainTextEdit, "quitGuardList").toPlainText()
    assert text.splitlines() == [
        "1 working order(s):",
        "  • AAPL sell 5 limit 110.5",
        "",
        "1 open position(s) (they stay open either way):",
        "  • AAPL long 10 (avg 100.00)",
    ]
    assert dialog.stay.isDefault() and dialog.choice is QuitChoice.STAY
    qtbot.mouseClick(dialog.cancel_orders, Qt.MouseButton.LeftButton)
    assert dialog.choice is QuitChoice.CANCEL_AND_QUIT and dialog.result() == dialog.DialogCode.Accepted


@pytest.mark.expected_log(r"quit: ")
@pytest.mark.parametrize(
    ("choice", "allowed", "policy"),
    [(QuitChoice.STAY, False, []), (QuitChoice.CANCEL_AND_QUIT, True, ["cancel-all"]),
     (QuitChoice.LEAVE_AND_QUIT, True, ["leave"])],
)  # fmt: skip
def test_each_choice_sets_the_policy(choice: QuitChoice, allowed: bool, policy: list[str]) -> None:
    set_to: list[str] = []
    guard = QuitGuard(lambda: SOME, set_to.append)
    guard.ask = lambda _what: choice
    assert guard.allow_quit() is allowed
    assert set_to == policy


def test_nothing_at_the_broker_quits_without_a_question() -> None:
    guard = QuitGuard(lambda: AtBroker(WorkingOrders(()), ()), lambda _p: None)
    guard.ask = lambda _what: pytest.fail("asked although nothing works at the broker")  # type: ignore[assignment]
    assert guard.allow_quit() is True


@pytest.mark.expected_log(r"quit: the 1 working order")
def test_closing_the_window_asks_and_cancel_sets_the_exit_policy(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    res = qloop.run_until_complete(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(4), limit_price=Decimal(120)
    )))  # fmt: skip
    assert res.accepted
    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    window.show()
    ctx = SimpleNamespace(args=SimpleNamespace(on_exit="leave"))
    install_quit_guard(ctx, window, SimpleNamespace(orders=rig.store, reconciler=None))  # type: ignore[arg-type]
    seen: list[AtBroker] = []
    guard = window.close_guard.__self__  # type: ignore[union-attr]
    guard.ask = lambda what: seen.append(what) or QuitChoice.STAY
    assert window.close() is False and window.isVisible()
    assert seen[0].orders.lines() == ["AAPL sell 4 limit 120"]
    assert seen[0].positions == ("AAPL long 10 (avg 100.00)",)
    guard.ask = lambda what: QuitChoice.CANCEL_AND_QUIT
    assert window.close() is True and not window.isVisible()
    assert ctx.args.on_exit == "cancel-all"


def _quit_question(qtbot, rig: Rig, reconciler: object) -> AtBroker:  # type: ignore[no-untyped-def]
    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    window.show()
    install_quit_guard(SimpleNamespace(args=SimpleNamespace(on_exit="leave")), window,  # type: ignore[arg-type]
                       SimpleNamespace(orders=rig.store, reconciler=reconciler))  # fmt: skip
    seen: list[AtBroker] = []
    guard = window.close_guard.__self__  # type: ignore[union-attr]
    guard.ask = lambda what: seen.append(what) or QuitChoice.STAY
    assert window.close() is False
    return seen[0]


def test_the_quit_question_lists_what_the_broker_holds_drift_included(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """NVDA bought in another app (no trade update reaches Heron, as with a trade placed before
    Heron started, Alpaca docs "Streaming": trade updates are only for a live connection) stays at
    the broker after Heron quits: the question names it, from the broker's position report."""
    from services.reconciliation.reconciler import Reconciler

    buy(rig, qloop)
    rig.broker.set_position("NVDA", Decimal(3), Decimal(120))
    rc = Reconciler(rig.broker, rig.store, rig.journal, rig.trading, rig.bus, rig.clock, rig.db)
    qloop.run_until_complete(rc.startup())

    what = _quit_question(qtbot, rig, rc)

    assert what.positions == (
        "AAPL long 10 (avg 100.00)",
        "NVDA long 3 (avg 120.00) (not in Heron's book: opened outside Heron)",
    )
    assert what.note.startswith("As the broker reported at ")
    assert "NVDA long 3" in what.text()


def test_without_a_broker_report_the_question_says_it_is_the_local_view(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    skipped = SimpleNamespace(last_run=rig.clock(), last_skipped="connection refused",
                              broker_position_details={}, broker_open_orders=[])  # fmt: skip
    what = _quit_question(qtbot, rig, skipped)
    assert what.note.startswith("broker not reachable: local view (connection refused)")
    assert what.positions == ("AAPL long 10 (avg 100.00)",)
    assert what.text().startswith("broker not reachable: local view")


def test_orders_in_the_broker_report_are_listed_unless_heron_knows_them(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """An order placed in another app is named; an order of Heron's canceled since the report is
    not (Heron's book is newer than the last reconciliation)."""
    from dataclasses import replace

    res = qloop.run_until_complete(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(2), limit_price=Decimal(90)
    )))  # fmt: skip
    mine = rig.broker.orders[rig.broker.by_client[res.client_order_id]]
    outside = replace(mine, id="ext-1", client_order_id="ext-c1", symbol="NVDA", qty=Decimal(3))
    assert qloop.run_until_complete(rig.engine.cancel(str(res.client_order_id)))
    report = SimpleNamespace(last_run=rig.clock(), last_skipped=None, broker_position_details={},
                             broker_open_orders=[mine, outside])  # fmt: skip
    what = _quit_question(qtbot, rig, report)
    assert what.orders.lines() == ["NVDA buy 3 limit 90 (placed outside Heron)"]
