"""Enumerations shared by every part of Heron. Values are Alpaca's wire spellings."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    LOCAL = "local"
    PAPER = "alpaca-paper"
    LIVE = "alpaca-live"

    @property
    def badge(self) -> str:
        return {"local": "LOCAL", "alpaca-paper": "PAPER", "alpaca-live": "LIVE"}[self.value]


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderClass(StrEnum):
    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"
    MLEG = "mleg"


class OrderStatus(StrEnum):
    """Alpaca's 18 order statuses."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    HELD = "held"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return not self.is_terminal


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
    }
)


class TradeUpdateKind(StrEnum):
    """Events on Alpaca's ``trade_updates`` stream (unknown strings are kept as raw text)."""

    NEW = "new"
    FILL = "fill"
    PARTIAL_FILL = "partial_fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    DONE_FOR_DAY = "done_for_day"
    REPLACED = "replaced"
    REJECTED = "rejected"
    PENDING_NEW = "pending_new"
    STOPPED = "stopped"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CALCULATED = "calculated"
    SUSPENDED = "suspended"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"
    ACCEPTED = "accepted"
    RESTATED = "restated"


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class TradingState(StrEnum):
    """Whether new orders may be sent. DISABLED: before start-up reconciliation is clean."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
    DISABLED = "DISABLED"


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    SAFE_MODE = "safe_mode"
    STOPPED = "stopped"


class Timeframe(StrEnum):
    """Bar timeframes in Alpaca's spelling."""

    MIN_1 = "1Min"
    MIN_5 = "5Min"
    MIN_15 = "15Min"
    HOUR_1 = "1Hour"
    DAY_1 = "1Day"

    @property
    def seconds(self) -> int:
        return {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}[self.value]


class IncidentSeverity(StrEnum):
    """How bad a reconciliation incident is: a quantity drift is critical (trading HALTED), the rest
    warn (trading REDUCING)."""

    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Higher is worse."""
        return 1 if self is IncidentSeverity.CRITICAL else 0


class Channel(StrEnum):
    """The links Heron reports a connection state for (``ConnectionStateEvent.channel``)."""

    REST = "rest"
    STOCK = "stock"
    CRYPTO = "crypto"
    TRADING = "trading"


class NotificationLevel(StrEnum):
    """How loudly a :class:`~services.domain.events.NotificationEvent` speaks."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class JournalKind(StrEnum):
    """The kinds of ``order_journal`` records. The values are what the table stores: existing
    databases hold them, so a value never changes."""

    INTENT = "intent"  # an order intent, committed before its POST
    ACKED = "acked"  # the settlements of an intent (see IntentStatus)
    REJECTED = "rejected"
    RESOLVED = "resolved"
    LOST = "lost"
    NOT_FOUND = "not_found"  # one authoritative "not found" answer for an in-flight intent
    AMBIGUOUS = "ambiguous"  # the POST's (or PATCH's) outcome is unknown
    DENIED = "denied"  # the risk gate refused an order (never sent)
    ADOPTED = "adopted"  # an order Heron did not place, taken in from the stream
    FILL = "fill"
    STATE = "state"  # an order's state transition
    CANCEL_QUEUED = "cancel_queued"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_REJECTED = "cancel_rejected"
    CANCEL_AMBIGUOUS = "cancel_ambiguous"
    CLOSE_RESULT = "close_result"  # what closing a position did
    KILL_SWITCH = "kill_switch"
    KILL_SWITCH_DONE = "kill_switch_done"
    TRADING_STATE = "trading_state"
    HALT_RELEASED = "halt_released"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    INCIDENT_RESOLVED = "incident_resolved"
    OPERATOR_ADOPT_BROKER_STATE = "operator_adopt_broker_state"
    JOURNAL_ROLLBACK_ACCEPTED = "journal_rollback_accepted"
