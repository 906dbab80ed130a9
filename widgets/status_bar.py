"""The status bar: mode badge, connection, trading state, latency, message rate, exchange.

Every field shows "—" until a service reports a value: the bar never shows an invented number.
All methods run on the GUI thread.
"""

from __future__ import annotations

import time
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QStatusBar, QWidget

from services.broker.health import LinkState
from services.broker.latency import LatencyState
from services.broker.status import HealthStatus
from services.domain.enums import ConnectionState, Mode, TradingState
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.common import TIMES, TRADING_STATE_COLORS, fmt_clock, in_display_zone
from widgets.pinned_line import hold_width

UNKNOWN = "—"

#: A HALTED / REDUCING text is cut to this width in the bar (the whole in the tooltip), so a long
#: reason never makes the window wider than the screen.
TRADING_MAX_PX = 480
TRADING_MIN_PX = 260

#: Pixels left free between a temporary message's "…" and the first field on its right (the badge).
MESSAGE_ROOM = 24
#: Where QStatusBar paints a temporary message: this far from its left edge, and two pixels short
#: of the first permanent widget (QStatusBarPrivate::messageRect).
MESSAGE_LEFT, MESSAGE_GAP = 6, 2

#: States an operator may lift with "Resume trading…".
RESUMABLE = (TradingState.HALTED, TradingState.REDUCING)

#: Badge colours (background, text). LIVE is red on purpose: real money.
BADGE_COLORS = {
    "LOCAL": (theme.MODE_LOCAL, theme.ON_ACCENT),
    "PAPER": (theme.MODE_PAPER, theme.ON_ACCENT),
    "LIVE": (theme.MODE_LIVE, theme.ON_ACCENT),
}

_STATE_COLORS = TRADING_STATE_COLORS

_CONNECTION_COLORS = {
    ConnectionState.LIVE: theme.UP,
    ConnectionState.CONNECTING: theme.WARN,
    ConnectionState.RECONNECTING: theme.WARN,
    ConnectionState.SAFE_MODE: theme.WARN,
    ConnectionState.FAILED: theme.DOWN,
    ConnectionState.STOPPED: theme.MUTED,
}


_LINK_COLORS = {
    LinkState.LIVE: theme.UP,
    LinkState.CONNECTING: theme.WARN,
    LinkState.SLOW: theme.WARN,
    LinkState.RECONNECTING: theme.WARN,
    LinkState.SAFE_MODE: theme.WARN,
    LinkState.UNRESPONSIVE: theme.DOWN,
    LinkState.FAILING: theme.DOWN,
    LinkState.FAILED: theme.DOWN,
    LinkState.STOPPED: theme.MUTED,
}

_LATENCY_COLORS = {
    LatencyState.UNKNOWN: "",
    LatencyState.OK: "",
    LatencyState.SLOW: f"color: {theme.WARN}; font-weight: 600;",
    LatencyState.FAILING: f"color: {theme.DOWN}; font-weight: 600;",
}


#: what the fields that change every second are sized for at least (:func:`_hold`)
LATENCY_SAMPLE = "Latency: 9,999 ms"
RATE_SAMPLE = "Msgs/s: 99,999"


def _label(name: str, text: str, tip: str) -> QLabel:
    # a long reason (an exchange that failed to start) is cut with "…" rather than widen the window
    label = QLabel(text) if name == "modeBadge" else MessageLabel(text, elide=True)
    label.setObjectName(name)
    label.setToolTip(tip)
    label.setAccessibleName(tip)
    return label


class HeronStatusBar(QStatusBar):
    """objectName ``statusBar``; children ``modeBadge``, ``connectionLabel``, ``tradingStateLabel``,
    ``latencyLabel``, ``messageRateLabel``, ``stalenessLabel``, ``exchangeLabel`` and the
    ``resumeTradingButton`` shown while trading is HALTED or REDUCING.

    A HALT is unmistakable: white on red, with its reason and since when (in the window's display
    zone, :data:`~widgets.models.common.TIMES`, like the clock beside it); ``resume_requested`` is
    emitted when the trader asks to resume (the composition root asks for the reason).

    A temporary message (:meth:`notify`) is cut with "…" short of the fields on its right, the
    whole message in the bar's tooltip while it shows."""

    resume_requested = Signal()
    #: True while trading is HALTED or REDUCING (the Resume button shown), False otherwise
    resumable_changed = Signal(bool)

    def __init__(self, mode: Mode, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statusBar")
        self.mode_badge = _label("modeBadge", "", "Trading mode")
        self.connection_label = _label("connectionLabel", f"Connection: {UNKNOWN}", "Broker connection")
        self.trading_state_label = _label(
            "tradingStateLabel", f"Trading: {UNKNOWN}", "Whether new orders may be sent"
        )
        self.latency_label = _label("latencyLabel", f"Latency: {UNKNOWN}", "Broker round-trip latency")
        self.message_rate_label = _label("messageRateLabel", f"Msgs/s: {UNKNOWN}", "Market data messages")
        self.staleness_label = _label("stalenessLabel", f"Data: {UNKNOWN}", "Market data freshness")
        self.exchange_label = _label("exchangeLabel", f"Exchange: {UNKNOWN}", "Local exchange")
        # the short fields keep the width of what they say: read at a glance, never cut (a long
        # exchange address is cut instead)
        for label in (
            self.connection_label,
            self.latency_label,
            self.message_rate_label,
            self.staleness_label,
        ):
            label.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
        self.resume_button = QPushButton("Resume trading…")
        self.resume_button.setObjectName("resumeTradingButton")
        self.resume_button.setToolTip("Lift the HALT (or REDUCING) with a reason that is journaled")
        self.resume_button.clicked.connect(self.resume_requested.emit)
        self.resume_button.setVisible(False)
        self.trading_state: TradingState | None = None
        self._since: datetime | None = None
        self._trading: tuple[TradingState, str, str, str] | None = None  # state, shown, reason, colour
        self._message = ""  # the whole temporary message while it shows
        self._message_until = 0.0  # time.monotonic() when it goes
        self.messageChanged.connect(self._message_changed)
        TIMES.changed.connect(self._zone_changed)
        self._connections: dict[str, ConnectionState] = {}
        #: True once the services' derivation (show_health) drives the labels: single events no
        #: longer overwrite what it says.
        self._derived = False
        # All permanent: a temporary message (showMessage) hides ordinary status-bar widgets, and
        # the mode badge must never disappear.
        for widget in (
            self.mode_badge,
            self.exchange_label,
            self.connection_label,
            self.trading_state_label,
            self.resume_button,
            self.latency_label,
            self.message_rate_label,
            self.staleness_label,
        ):
            self.addPermanentWidget(widget)
        hold_width(self.latency_label, LATENCY_SAMPLE)  # styled as the bar's fields from here on
        hold_width(self.message_rate_label, RATE_SAMPLE)
        self.set_mode(mode)

    def set_mode(self, mode: Mode) -> None:
        badge = mode.badge
        bg, fg = BADGE_COLORS[badge]
        self.mode_badge.setText(badge)
        self.mode_badge.setProperty("mode", badge.lower())
        self.mode_badge.setStyleSheet(
            f"QLabel#modeBadge {{ background: {bg}; color: {fg}; font-weight: 700; "
            "padding: 1px 10px; border-radius: 3px; }"
        )

    def show_health(self, status: HealthStatus, since: datetime | None = None) -> None:
        """Connection, data, trading and latency as :func:`services.broker.status.derive_status`
        says: the same words as the state report. ``since``: when the trading state began."""
        self._derived = True
        link = status.connection
        self.connection_label.setText(f"Connection: {link.state.value}")
        self.connection_label.setToolTip(link.reason)
        self.connection_label.setStyleSheet(f"color: {_LINK_COLORS[link.state]};")
        color = _STATE_COLORS[status.trading_state] if status.orders_possible else theme.DOWN
        self._show_trading(status.trading_state, status.trading, status.trading_reason, color, since)
        self.staleness_label.setText(f"Data: {status.data}")
        self.staleness_label.setToolTip(status.data_reason)
        self.staleness_label.setStyleSheet(
            f"color: {theme.UP};"
            if status.data_fresh
            else ("" if status.data == UNKNOWN else f"color: {theme.WARN}; font-weight: 600;")
        )
        if status.latency is not None:
            view = status.latency
            self.latency_label.setText(f"Latency: {view.text}")
            self.latency_label.setToolTip(view.detail)
            self.latency_label.setStyleSheet(_LATENCY_COLORS[view.state])
            hold_width(self.latency_label, LATENCY_SAMPLE)

    def set_connection(self, channel: str, state: ConnectionState, reason: str = "") -> None:
        self._connections[channel] = state
        if self._derived:
            return
        worst = self._worst()
        parts = ", ".join(f"{ch} {st.value}" for ch, st in sorted(self._connections.items()))
        self.connection_label.setText(f"Connection: {worst.value}")
        self.connection_label.setToolTip(parts + (f"\n{reason}" if reason else ""))
        self.connection_label.setStyleSheet(f"color: {_CONNECTION_COLORS.get(worst, theme.PENDING)};")

    def _worst(self) -> ConnectionState:
        order = [
            ConnectionState.FAILED,
            ConnectionState.SAFE_MODE,
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTING,
            ConnectionState.STOPPED,
            ConnectionState.LIVE,
        ]
        states = set(self._connections.values())
        return next(s for s in order if s in states)

    def set_trading_state(self, state: TradingState, reason: str = "", since: datetime | None = None) -> None:
        if self._derived:
            return
        self._show_trading(state, state.value, reason, _STATE_COLORS[state], since)

    def _show_trading(
        self, state: TradingState, shown: str, reason: str, color: str, since: datetime | None
    ) -> None:
        """ACTIVE, DISABLED: the word in its colour. HALTED (white on red) and REDUCING (amber) also
        say why and since when, and show the Resume button."""
        if state is not self.trading_state or since is not None:
            self._since = since
        self.trading_state = state
        self._trading = (state, shown, reason, color)
        tip = reason or "Whether new orders may be sent"
        if state not in RESUMABLE:
            self.trading_state_label.setText(f"Trading: {shown}")
            self.trading_state_label.setMinimumWidth(0)
            self.trading_state_label.setToolTip(tip)
            self.trading_state_label.setStyleSheet(f"color: {color}; font-weight: 600;")
            self._set_resumable(False)
            return
        when = ""
        if self._since is not None:  # in the zone of the window's other times (and its clock)
            when = f" since {fmt_clock(self._since)} {TIMES.label()}"
            tip = f"{state.value}{when} ({in_display_zone(self._since):%Y-%m-%d}): {reason}"
        full = f"Trading: {shown}{when} — {reason}"
        # cut to a width, never widening the window (the whole text is in the tooltip)
        bold = QFont(self.trading_state_label.font())
        bold.setBold(True)  # as the style sheet below draws it
        elided = QFontMetrics(bold).elidedText(full, Qt.TextElideMode.ElideRight, self.trading_width())
        self.trading_state_label.setText(elided)
        # the bar gives the cut text its whole width (and its padding): never cut a second time
        self.trading_state_label.setMinimumWidth(QFontMetrics(bold).horizontalAdvance(elided) + 2 * 8 + 4)
        self.trading_state_label.setToolTip(tip)
        style = (
            f"background: {theme.DANGER_BG}; color: {theme.ON_ACCENT};"
            if state is TradingState.HALTED
            else f"color: {theme.WARN};"
        )
        self.trading_state_label.setStyleSheet(f"QLabel {{ {style} font-weight: 700; padding: 1px 8px; }}")
        self._set_resumable(True)

    def _set_resumable(self, resumable: bool) -> None:
        if self.resume_button.isVisibleTo(self) != resumable:
            self.resume_button.setVisible(resumable)
            self.resumable_changed.emit(resumable)

    def set_latency_ms(self, ms: float | None) -> None:
        self.latency_label.setText(f"Latency: {UNKNOWN if ms is None else f'{ms:.0f} ms'}")
        hold_width(self.latency_label, LATENCY_SAMPLE)

    def set_message_rate(self, per_second: float | None) -> None:
        self.message_rate_label.setText(f"Msgs/s: {UNKNOWN if per_second is None else f'{per_second:,.0f}'}")
        hold_width(self.message_rate_label, RATE_SAMPLE)

    def set_staleness(self, stale: dict[str, str], watched: int) -> None:
        """``stale``: symbol → reason for every watched symbol whose data is stale (the verdict of
        the market-data staleness guard); ``watched``: how many symbols are watched."""
        if watched == 0:
            self.staleness_label.setText(f"Data: {UNKNOWN}")
            self.staleness_label.setToolTip("No symbols watched")
            self.staleness_label.setStyleSheet("")
            return
        if not stale:
            self.staleness_label.setText("Data: fresh")
            self.staleness_label.setToolTip(f"All {watched} watched symbols have recent market data")
            self.staleness_label.setStyleSheet(f"color: {theme.UP};")
            return
        self.staleness_label.setText(f"Data: {len(stale)}/{watched} stale")
        self.staleness_label.setToolTip("\n".join(f"{sym}: {why}" for sym, why in sorted(stale.items())))
        self.staleness_label.setStyleSheet(f"color: {theme.WARN}; font-weight: 600;")

    def set_exchange(self, text: str, ok: bool | None, detail: str = "") -> None:
        """``ok``: True (reachable), False (failed: shown in red), None (not applicable/unknown)."""
        self.exchange_label.setText(f"Exchange: {text}")
        self.exchange_label.setToolTip(detail or "Local exchange")
        color = theme.ok_color(ok)
        self.exchange_label.setStyleSheet(f"color: {color};")

    def trading_width(self) -> int:
        """The most a HALTED / REDUCING text takes: a quarter of the bar (at least the state and
        since when), so latency, message rate and data keep their values on a 1366 px screen."""
        if not self.isVisible():  # no width yet: cut again when shown (resizeEvent)
            return TRADING_MAX_PX
        return max(min(TRADING_MAX_PX, self.width() // 4), TRADING_MIN_PX)

    def _zone_changed(self) -> None:
        if self._trading is not None:
            state, shown, reason, color = self._trading
            self._show_trading(state, shown, reason, color, None)

    def notify(self, level: str, message: str, timeout_ms: int = 10000) -> None:
        prefix = {"error": "Error: ", "warning": "Warning: "}.get(level, "")
        full = " ".join((prefix + message).split())
        self._message = full
        self._message_until = time.monotonic() + timeout_ms / 1000
        self.showMessage(self._elided(full), timeout_ms)
        self.setToolTip(full)

    def message_width(self) -> int:
        """The width a temporary message may take: up to the first field on its right, with room."""
        right = self.width() - 12
        for widget in self.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if widget.isVisible() and widget.x() > MESSAGE_LEFT:
                right = min(right, widget.x() - MESSAGE_GAP)
        return max(right - MESSAGE_LEFT - MESSAGE_ROOM, 0)

    def _elided(self, text: str) -> str:
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, self.message_width())

    def _message_changed(self, text: str) -> None:
        if not text:
            self._message = ""
            self.setToolTip("")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width() and self.trading_state in RESUMABLE:
            self._zone_changed()  # the HALT text cut again for the new width
        left_ms = round((self._message_until - time.monotonic()) * 1000)
        if self._message and self.currentMessage() and left_ms > 0:
            self.showMessage(self._elided(self._message), left_ms)  # cut again at the new width
