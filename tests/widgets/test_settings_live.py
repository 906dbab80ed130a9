"""Saved settings are in force at once: a lower max order notional refuses the next pre-check and
order without a restart, the ticket's confirmation follows the checkbox, and what needs a restart
is said so in the dialog."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.context import Services
from app.logging_setup import SecretRedactor
from app.paths import prepare, resolve_paths
from app.qt.settings_access import open_settings
from app.settings import load
from services.domain.enums import Mode, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig
from widgets.main_window import MainWindow
from widgets.order_ticket import OrderTicket

qloop = trading_rig.qloop
rig = trading_rig.rig


def _session(qtbot: Any, rig: Rig, tmp_path: Path) -> tuple[Any, MainWindow, OrderTicket]:
    paths = prepare(resolve_paths("default", tmp_path / "data"))
    ctx = SimpleNamespace(settings=load(paths.settings_file), paths=paths, redactor=SecretRedactor())
    services = Services(mode=Mode.LOCAL, risk=rig.risk, secret_store=None, exchange=None)
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    ticket = OrderTicket(rig.engine, mode=Mode.LOCAL, confirm_orders=True)
    ticket._assets["AAPL"] = rig.broker._assets["AAPL"]
    win.add_panel(ticket, "orderTicket", "Order ticket", "left")
    win.trading_panels = SimpleNamespace(ticket=ticket)  # type: ignore[attr-defined]
    dialog = open_settings(win, ctx, services, show=False)
    qtbot.addWidget(dialog)
    return dialog, win, ticket


def _buy(qty: str) -> OrderRequest:
    return OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty),
                        limit_price=Decimal("100.00"))  # fmt: skip


def test_a_lower_max_notional_refuses_the_next_order_without_restart(
    qtbot: Any, rig: Rig, tmp_path: Path, qloop: Any
) -> None:
    dialog, _win, ticket = _session(qtbot, rig, tmp_path)
    ticket.symbol_edit.setText("AAPL")
    ticket.amount_edit.setText("20")
    ticket.type_combo.setCurrentText("limit")
    ticket.limit_edit.setText("100.00")
    report = ticket.run_precheck()
    assert report is not None and report.passed  # 2,000 USD under the default limit
    dialog.risk_fields["max_order_notional"][0].setText("1000")
    assert dialog.apply() is not None
    report = ticket.run_precheck()
    assert report is not None and not report.passed
    assert [c.name for c in report.failures] == ["max_order_notional"]
    assert not ticket.submit_button.isEnabled()
    result = qloop.run_until_complete(rig.engine.submit(_buy("20")))
    assert not result.accepted and result.report is not None
    assert "max_order_notional" in result.report.explain()
    assert not rig.broker.orders  # nothing reached the broker
    assert "in force now" in dialog.error.text()


def test_confirmation_follows_the_saved_checkbox_and_restart_items_are_named(
    qtbot: Any, rig: Rig, tmp_path: Path
) -> None:
    dialog, _win, ticket = _session(qtbot, rig, tmp_path)
    assert ticket.needs_confirmation()
    dialog.confirm_orders.setChecked(False)
    dialog.theme.setCurrentText("light")
    assert dialog.apply() is not None
    assert not ticket.needs_confirmation()
    assert "Changes to the theme take effect after a restart" in dialog.error.text()


def test_limits_the_gate_would_refuse_are_not_saved(qtbot: Any, rig: Rig, tmp_path: Path) -> None:
    dialog, _win, _ticket = _session(qtbot, rig, tmp_path)
    before = dialog.path.read_text()
    dialog.risk_fields["max_order_notional"][0].setText("0")
    assert dialog.apply() is None
    assert "max_order_notional" in dialog.error.text() and dialog.path.read_text() == before
    assert rig.risk.limits.max_order_notional == Decimal(50_000)
