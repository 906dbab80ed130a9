"""The drift banner: a red (critical) or amber (warning) strip across the top of the main window
while any reconciliation incident is open. Clicking it (or "Review") asks for the reconciliation
panel. It shows only what the reconciliation panel reports; it computes nothing.

Signals:
    reviewRequested(): the person wants to see the reconciliation panel.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from widgets.models.common import named

_STYLE = {
    "critical": ("#4a1518", "#ef5350"),
    "warning": ("#47360c", "#ffb300"),
}


class DriftBanner(QFrame):
    """objectName ``driftBanner``; children ``driftBannerText``, ``driftBannerReview``. GUI thread."""

    reviewRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("driftBanner")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.text = named(QLabel(), "driftBannerText")
        self.text.setWordWrap(False)
        review = named(QPushButton("Review…"), "driftBannerReview")
        review.setCursor(Qt.CursorShape.PointingHandCursor)
        review.clicked.connect(self.reviewRequested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 5, 8, 5)
        lay.addWidget(self.text, 1)
        lay.addWidget(review)
        self.severity = ""
        self.count = 0
        self.set_incidents(0, "", "")

    def set_incidents(self, count: int, severity: str, summary: str) -> None:
        """``count`` open incidents; ``severity`` is "critical" or "warning" (the worst open one)."""
        self.count = count
        self.severity = severity if count else ""
        if count == 0:
            self.text.setText("")
            self.setVisible(False)
            return
        bg, fg = _STYLE.get(severity, _STYLE["warning"])
        self.setStyleSheet(
            f"QFrame#driftBanner {{ background: {bg}; border-bottom: 2px solid {fg}; }}"
            f" QLabel#driftBannerText {{ color: {fg}; font-weight: 600; }}"
            f" QPushButton#driftBannerReview {{ color: {fg}; border: 1px solid {fg}; padding: 2px 10px;"
            " background: transparent; border-radius: 3px; }"
        )
        noun = "incident" if count == 1 else "incidents"
        self.text.setText(f"⚠ Reconciliation drift: {count} open {noun} — {summary}")
        self.text.setToolTip(
            "Heron and the broker disagree. Trading is restricted until an operator reviews it."
        )
        self.setVisible(True)

    def mousePressEvent(self, event: Any) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.reviewRequested.emit()
        super().mousePressEvent(event)
