"""The status bar: mode badge, connection, trading state, latency, message rate, exchange.

Every field shows "—" until a service reports a value: the bar never shows an invented number.
All methods run on the GUI thread.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from services.broker.health import LinkState
from services.broker.latency import LatencyState
from services.broker.status import HealthStatus
from services.domain.enums import ConnectionState, Mode, TradingState
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.common import TRADING_STATE_COLORS

UNKNOWN = "—"

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


def _label(name: str, text: str, tip: str) -> QLabel:
    # a long reason (an exchange that failed to start) is cut with "…" rather than widen the window
    label = QLabel(text) if name == "modeBadge" else MessageLabel(text, elide=True)
    label.setObjectName(name)
    label.setToolTip(tip)
    label.setAccessibleName(tip)
    return label


class HeronStatusBar(QStatusBar):
    """objectName ``statusBar``; children ``modeBadge``, ``connectionLabel``, ``tradingStateLabel``,
    ``latencyLabel``, ``messageRateLabel``, ``stalenessLabel``, ``exchangeLabel``."""

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
            self.latency_label,
            self.message_rate_label,
            self.staleness_label,
        ):
            self.addPermanentWidget(widget)
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

    def show_health(self, status: HealthStatus) -> None:
        """Connection, data, trading and latency as :func:`services.broker.status.derive_status`
        says: the same words as the state report."""
        self._derived = True
        link = status.connection
        self.connection_label.setText(f"Connection: {link.state.value}")
        self.connection_label.setToolTip(link.reason)
        self.connection_label.setStyleSheet(f"color: {_LINK_COLORS[link.state]};")
        self.trading_state_label.setText(f"Trading: {status.trading}")
        self.trading_state_label.setToolTip(status.trading_reason or "Whether new orders may be sent")
        color = _STATE_COLORS[status.trading_state] if status.orders_possible else theme.DOWN
        if status.trading_state is not TradingState.ACTIVE:
            color = _STATE_COLORS[status.trading_state]
        self.trading_state_label.setStyleSheet(f"color: {color}; font-weight: 600;")
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

    def set_trading_state(self, state: TradingState, reason: str = "") -> None:
        if self._derived:
            return
        self.trading_state_label.setText(f"Trading: {state.value}")
        self.trading_state_label.setToolTip(reason or "Whether new orders may be sent")
        self.trading_state_label.setStyleSheet(f"color: {_STATE_COLORS[state]}; font-weight: 600;")

    def set_latency_ms(self, ms: float | None) -> None:
        self.latency_label.setText(f"Latency: {UNKNOWN if ms is None else f'{ms:.0f} ms'}")

    def set_message_rate(self, per_second: float | None) -> None:
        self.message_rate_label.setText(f"Msgs/s: {UNKNOWN if per_second is None else f'{per_second:,.0f}'}")

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

    def notify(self, level: str, message: str, timeout_ms: int = 10000) -> None:
        prefix = {"error": "Error: ", "warning": "Warning: "}.get(level, "")
        self.showMessage(prefix + message, timeout_ms)
