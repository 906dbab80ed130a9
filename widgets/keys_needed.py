"""What a paper or live window shows when it has no usable API keys: what is wrong, what to do,
and a button to the settings' Alpaca keys (when keys can be stored here). It stands in for the
trading panels, which would otherwise be half built around services that never started.

Every text wraps: a long keyring message never widens the window.

Signals:
    settingsRequested(): the person wants File → Settings → Alpaca keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from widgets import theme
from widgets.models.common import named


def _wrapped(text: str, name: str) -> QLabel:
    label = named(QLabel(text), name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # wrapped labels take the width they are given, never the width of their text on one line
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    return label


class KeysNeededPanel(QFrame):
    """objectName ``keysNeeded``; children ``keysNeededTitle``, ``keysNeededReason``,
    ``keysNeededStep<n>`` and ``keysNeededSettings`` (absent when keys cannot be stored). GUI thread."""

    settingsRequested = Signal()

    def __init__(
        self,
        title: str,
        reason: str,
        steps: Sequence[str],
        *,
        can_store_keys: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("keysNeeded")
        self.title = _wrapped(title, "keysNeededTitle")
        self.title.setStyleSheet(f"color: {theme.WARN}; font-size: 16pt; font-weight: 600;")
        self.reason = _wrapped(f"Why: {reason}.", "keysNeededReason")
        self.reason.setStyleSheet(f"color: {theme.MUTED};")
        self.steps = [_wrapped(f"{n}. {step}", f"keysNeededStep{n}") for n, step in enumerate(steps, 1)]
        column = QVBoxLayout()
        column.setSpacing(12)
        column.addWidget(self.title)
        column.addWidget(self.reason)
        column.addSpacing(6)
        for label in self.steps:
            column.addWidget(label)
        self.settings_button: QPushButton | None = None
        if can_store_keys:
            button = named(QPushButton("Open Settings → Alpaca keys…"), "keysNeededSettings")
            button.clicked.connect(self.settingsRequested)
            row = QHBoxLayout()
            row.addWidget(button)
            row.addStretch(1)
            column.addSpacing(6)
            column.addLayout(row)
            self.settings_button = button
        body = named(QWidget(), "keysNeededBody")
        body.setLayout(column)
        body.setMaximumWidth(760)
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(body, 6)
        centred.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(32, 32, 32, 32)
        outer.addStretch(1)
        outer.addLayout(centred)
        outer.addStretch(2)

    def text(self) -> str:
        """Everything the panel says, in reading order."""
        return "\n".join(w.text() for w in (self.title, self.reason, *self.steps))
