"""HALTED is unmistakable in the status bar (white on red, why and since when), and "Resume
trading…" asks for a typed reason, refuses an empty one, and resumes through the trading state
machine, which journals the operator and the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from services.domain.bus import EventBus
from services.domain.enums import Mode, TradingState
from services.risk.trading_state import TradingStateMachine
from tests.support.clock import ManualClock
from widgets import theme
from widgets.resume_trading import ResumeTrading, ResumeTradingDialog
from widgets.status_bar import TRADING_MAX_PX, HeronStatusBar

SINCE = datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC)


def _halted_machine() -> TradingStateMachine:
    trading = TradingStateMachine(EventBus(), ManualClock())
    trading.enable()
    trading.escalate(TradingState.HALTED, "daily loss limit breached: -2,150.00 < -2,000.00", source="risk")
    return trading


def test_halted_is_red_with_why_and_when_and_offers_resume(qtbot) -> None:  # type: ignore[no-untyped-def]
    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.resize(1920, 24)  # a full-width bar: the HALT text takes up to a quarter of it
    bar.show()
    button = bar.findChild(QPushButton, "resumeTradingButton")
    assert button is not None and not button.isVisible()
    bar.set_trading_state(TradingState.HALTED, "kill switch (account panel) (operator alice)", since=SINCE)
    label = bar.findChild(QLabel, "tradingStateLabel")
    assert label.text().startswith(
        "Trading: HALTED since 10:04:05 ET — kill switch (account panel)"
    )  # ET: the display zone
    assert "kill switch (account panel) (operator alice)" in label.toolTip()
    assert theme.DANGER_BG in label.styleSheet() and theme.ON_ACCENT in label.styleSheet()
    assert "2026-03-02" in label.toolTip()
    assert button.isVisible()
    with qtbot.waitSignal(bar.resume_requested):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    bar.set_trading_state(TradingState.ACTIVE, "operator resumed")
    assert label.text() == "Trading: ACTIVE" and not button.isVisible()


def test_a_long_reason_is_cut_in_the_bar_and_whole_in_the_tooltip(qtbot) -> None:  # type: ignore[no-untyped-def]
    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    reason = "reconciliation drift: " + "x" * 300
    bar.set_trading_state(TradingState.REDUCING, reason, since=SINCE)
    label = bar.findChild(QLabel, "tradingStateLabel")
    assert label.text().startswith("Trading: REDUCING since 10:04:05 ET — reconciliation drift: x")
    assert label.text().endswith("…") and label.sizeHint().width() <= TRADING_MAX_PX + 24  # + padding
    assert reason in label.toolTip()


def test_the_dialog_refuses_an_empty_reason(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = ResumeTradingDialog(TradingState.HALTED, "kill switch", SINCE)
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()
    qtbot.keyClicks(dialog.reason, "   ")
    assert not dialog.ok.isEnabled()
    dialog.accept()  # Enter in a blank field
    assert dialog.result() != dialog.DialogCode.Accepted
    dialog.reason.setText("positions checked")
    assert dialog.ok.isEnabled()


@pytest.mark.expected_log(r"resume trading by bob")
def test_resume_lifts_the_halt_through_the_state_machine(qtbot) -> None:  # type: ignore[no-untyped-def]
    trading = _halted_machine()
    resume = ResumeTrading(trading, "bob")
    asked: list[tuple[TradingState, str]] = []
    resume.ask_reason = lambda state, why, since: asked.append((state, why)) or "loss reviewed, limit kept"
    assert resume.run() is True
    assert asked == [(TradingState.HALTED, "daily loss limit breached: -2,150.00 < -2,000.00")]
    assert trading.state is TradingState.ACTIVE
    assert "loss reviewed, limit kept" in trading.reason and "bob" in trading.reason


@pytest.mark.expected_log(r"resume trading refused: resuming trading needs a reason")
def test_an_empty_reason_is_refused_loudly(qtbot) -> None:  # type: ignore[no-untyped-def]
    trading = _halted_machine()
    resume = ResumeTrading(trading, "bob")
    errors: list[str] = []
    resume.ask_reason = lambda *_: "  "
    resume.show_error = errors.append
    assert resume.run() is False
    assert trading.state is TradingState.HALTED
    assert errors == ["Trading was not resumed: resuming trading needs a reason"]


def test_declining_changes_nothing(qtbot) -> None:  # type: ignore[no-untyped-def]
    trading = _halted_machine()
    resume = ResumeTrading(trading, "bob")
    resume.ask_reason = lambda *_: None
    assert resume.run() is False and trading.state is TradingState.HALTED


@pytest.mark.expected_log(r"resume trading by ")
def test_file_menu_resume_follows_the_state_and_resumes(qtbot) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from PySide6.QtGui import QAction

    from app.qt.status import wire_resume
    from widgets.main_window import MainWindow

    trading = _halted_machine()
    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    resume = wire_resume(window, SimpleNamespace(trading=trading))  # type: ignore[arg-type]
    action = window.findChild(QAction, "resumeTradingAction")
    assert action is not None and not action.isEnabled()
    window.heron_status.set_trading_state(TradingState.HALTED, trading.reason, since=SINCE)
    assert action.isEnabled()
    resume.ask_reason = lambda *_: "reviewed the loss"
    action.trigger()
    assert trading.state is TradingState.ACTIVE
    window.heron_status.set_trading_state(TradingState.ACTIVE, trading.reason)
    assert not action.isEnabled()
