"""Resume trading after a HALT (the kill switch, the loss limit, reconciliation drift) or REDUCING.

:class:`ResumeTradingDialog` says what holds trading and since when, and asks for a typed reason:
Resume stays disabled while the reason is empty. :class:`ResumeTrading` runs it: the trading state
machine releases a kill-switch HALT and lifts the state (``TradingStateMachine.resume``, which
journals the operator and the reason); the outcome goes to the log at WARNING (it changes what
Heron may send), a refusal to a message box and the log at ERROR. GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import TradingState

log = logging.getLogger("heron.trading")


class ResumableTrading(Protocol):
    state: TradingState
    reason: str

    def halted_since(self) -> datetime: ...

    def resume(self, operator: str, reason: str) -> str: ...


class ResumeTradingDialog(QDialog):
    """objectName ``resumeTradingDialog``; the reason field ``resumeReason``."""

    def __init__(self, state: TradingState, why: str, since: datetime, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resumeTradingDialog")
        self.setWindowTitle("Resume trading")
        text = QLabel(
            f"Trading is {state.value} since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC:\n{why}\n\n"
            "Resuming lets Heron send new orders again. Type why (it is journaled with your name).",
            self,
        )
        text.setWordWrap(True)
        text.setMaximumWidth(640)
        self.reason = QLineEdit(self)
        self.reason.setObjectName("resumeReason")
        self.reason.setPlaceholderText("reason, e.g. checked positions after the loss; limits unchanged")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Resume trading")
        self.ok.setEnabled(False)
        self.reason.textChanged.connect(lambda t: self.ok.setEnabled(bool(t.strip())))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(text)
        lay.addWidget(self.reason)
        lay.addWidget(self.buttons)

    def accept(self) -> None:
        if not self.reason.text().strip():  # Enter in an empty field: refused
            return
        super().accept()


class ResumeTrading:
    """The guarded "Resume trading…" action. ``ask_reason(state, why, since) -> str | None`` (None:
    the trader declined) and ``show_error(text)`` are the dialog and a message box by default."""

    def __init__(self, trading: ResumableTrading, operator: str, parent: QWidget | None = None) -> None:
        self.trading = trading
        self.operator = operator
        self.parent = parent
        self.ask_reason: Callable[[TradingState, str, datetime], str | None] = self._dialog
        self.show_error: Callable[[str], None] = self._message_box

    def _dialog(self, state: TradingState, why: str, since: datetime) -> str | None:
        dialog = ResumeTradingDialog(state, why, since, self.parent)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.reason.text()

    def _message_box(self, text: str) -> None:
        QMessageBox.critical(self.parent, "Resume trading", text)

    def run(self) -> bool:
        """Ask for the reason and resume; True when trading was lifted (or released)."""
        trading = self.trading
        reason = self.ask_reason(trading.state, trading.reason, trading.halted_since())
        if reason is None:
            return False
        try:
            done = trading.resume(self.operator, reason)
        except (ValueError, PermissionError) as refused:
            log.error("resume trading refused: %s", refused)
            self.show_error(f"Trading was not resumed: {refused}")
            return False
        log.warning("resume trading by %s (%s): %s", self.operator, reason.strip(), done)
        return True
