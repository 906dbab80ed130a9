"""The drift banner: a red (critical) or amber (warning) strip across the top of the main window
while any reconciliation incident is open. Clicking it (or "Review") asks for the reconciliation
panel. It follows the reconciler's :class:`~services.domain.events.IncidentsChangedEvent`: the
count, the worst severity and the summary are decided in services
(:mod:`services.reconciliation.drift`); the banner computes nothing.

Signals:
    reviewRequested(): the person wants to see the reconciliation panel.
    incidentsShown(int): after every change, the number of open incidents shown (0: hidden).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QWidget

from services.domain.bus import EventBus, Subscription
from services.domain.enums import IncidentSeverity
from services.domain.events import IncidentsChangedEvent
from widgets import theme
from widgets.lifetime import cancel_on_destroy
from widgets.message_label import MessageLabel
from widgets.models.common import named

_STYLE = {  # background, text and border
    IncidentSeverity.CRITICAL: (theme.DRIFT_CRITICAL_BG, theme.DOWN),
    IncidentSeverity.WARNING: (theme.DRIFT_WARNING_BG, theme.WARN),
}


class DriftBanner(QFrame):
    """objectName ``driftBanner``; children ``driftBannerText``, ``driftBannerReview``. GUI thread."""

    reviewRequested = Signal()
    incidentsShown = Signal(int)
    _changed = Signal(object)  # an IncidentsChangedEvent from the bus, delivered on the GUI thread

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("driftBanner")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.text = named(MessageLabel(elide=True), "driftBannerText")
        review = named(QPushButton("Review…"), "driftBannerReview")
        review.setCursor(Qt.CursorShape.PointingHandCursor)
        review.clicked.connect(self.reviewRequested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 5, 8, 5)
        lay.addWidget(self.text, 1)
        lay.addWidget(review)
        self.severity: IncidentSeverity | None = None
        self.count = 0
        self._changed.connect(self.show_incidents)
        self.set_incidents(0, None, "")

    def follow(self, bus: EventBus) -> Subscription:
        """Show every :class:`IncidentsChangedEvent` published on ``bus`` (published on any thread,
        shown on the GUI thread). The subscription ends when the banner is destroyed."""
        sub = bus.subscribe(IncidentsChangedEvent, self._changed.emit)
        cancel_on_destroy(self, [sub])
        return sub

    def show_incidents(self, event: IncidentsChangedEvent) -> None:
        """Show the reconciler's open incidents as the event states them."""
        self.set_incidents(event.count, event.worst, event.summary)

    def set_incidents(self, count: int, severity: IncidentSeverity | None, summary: str) -> None:
        """``count`` open incidents; ``severity`` is the worst open one's."""
        self.count = count
        self.severity = severity if count else None
        if count == 0:
            self.text.setText("")
            self.setVisible(False)
            self.incidentsShown.emit(0)
            return
        bg, fg = _STYLE.get(self.severity or IncidentSeverity.WARNING, _STYLE[IncidentSeverity.WARNING])
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
        self.incidentsShown.emit(count)

    def mousePressEvent(self, event: Any) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.reviewRequested.emit()
        super().mousePressEvent(event)
