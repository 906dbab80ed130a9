"""Frozen event dataclasses published on the :class:`~services.domain.bus.EventBus`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.domain.enums import ConnectionState, IncidentSeverity, TradingState
from services.domain.incidents import Incident
from services.domain.models import Account, Bar, Fill, Order, Position, Quote, Trade


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event. ``ts`` is when Heron observed it (UTC)."""

    ts: datetime


@dataclass(frozen=True, slots=True)
class QuoteEvent(Event):
    quote: Quote


@dataclass(frozen=True, slots=True)
class MarketTradeEvent(Event):
    trade: Trade


@dataclass(frozen=True, slots=True)
class BarEvent(Event):
    bar: Bar
    timeframe: str = "1Min"
    is_partial: bool = False


@dataclass(frozen=True, slots=True)
class TradeUpdateEvent(Event):
    """One message from ``trade_updates``; ``event`` stays raw text when Alpaca adds new kinds."""

    event: str
    order: Order
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FillEvent(Event):
    fill: Fill


@dataclass(frozen=True, slots=True)
class OrderChangedEvent(Event):
    order: Order
    source: str = ""


@dataclass(frozen=True, slots=True)
class AccountEvent(Event):
    account: Account


@dataclass(frozen=True, slots=True)
class PositionsEvent(Event):
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class ConnectionStateEvent(Event):
    channel: str  # a Channel: "rest", "stock", "crypto" or "trading"
    state: ConnectionState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TradingStateEvent(Event):
    state: TradingState
    reason: str


@dataclass(frozen=True, slots=True)
class NotificationEvent(Event):
    """Something a person should see now (risk rejection, drift, an exception caught by a hook)."""

    level: str  # a NotificationLevel: "info" | "warning" | "error"
    source: str
    message: str
    #: The order (its client id) whose rejection this is, told before the order's status change:
    #: the activity log says both in the order's one line (:mod:`services.orders.activity`).
    rejected_order: str = ""


@dataclass(frozen=True, slots=True)
class IncidentsChangedEvent(Event):
    """The reconciler's set of open incidents changed: one opened, or one was acknowledged, adopted
    or closed itself. The drift banner and the reconciliation panel follow it.

    ``incidents``: every open incident, the worst first; ``worst``: its severity (None when none is
    open); ``summary``: one line naming the worst, for the banner.
    """

    incidents: tuple[Incident, ...]
    worst: IncidentSeverity | None
    summary: str = ""

    @property
    def count(self) -> int:
        return len(self.incidents)
