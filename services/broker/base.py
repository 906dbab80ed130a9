"""The Broker contract that every order, risk and reconciliation service relies on.

Guarantees every implementation gives:
- Every method is a coroutine that never blocks the event loop: SDK calls run on worker threads
  with explicit connect and read timeouts.
- Errors are typed. :class:`BrokerRejected` is a definitive answer from the broker (a 4xx other
  than 401/403-auth and 429): the request was NOT carried out. :class:`BrokerUnavailable` means the
  outcome is UNKNOWN (timeout, connection error, 5xx, 429 after our own retries): for a submit,
  the order may or may not exist and must be resolved by client-id lookup, never assumed rejected.
  :class:`BrokerAuthError` means the keys are wrong or for the other environment.
- Submits and replaces are retried (if at all) only with the same client_order_id.
- Cancels draw on a reserved share of the request budget, so they still go out when the budget
  for other calls is exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from services.domain.models import Account, Asset, Fill, Order, OrderRequest, Position


class BrokerError(Exception):
    """Base class; ``message`` is fit to show a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BrokerRejected(BrokerError):
    """The broker answered and refused: nothing happened. Carries Alpaca's code and extras."""

    def __init__(
        self, message: str, *, status: int, code: int | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra or {}


class BrokerNotFound(BrokerRejected):
    """404: the order, position or asset does not exist at the broker."""


class BrokerAuthError(BrokerError):
    """401/403 on credentials: wrong keys, or paper keys used for live (or the reverse)."""


class BrokerUnavailable(BrokerError):
    """No definitive answer (timeout, connection error, 5xx, rate limited). Outcome unknown."""


class BrokerClosed(BrokerUnavailable):
    """The broker client was closed (Heron is shutting down): nothing was sent, nothing can be."""


class BrokerNotSent(BrokerUnavailable):
    """The request never left Heron (its client is suspended while the local exchange restarts):
    nothing reached the broker, so the outcome is known: not placed, not changed."""


@dataclass(frozen=True, slots=True)
class CancelResult:
    order_id: str
    status: int  # HTTP status per order (200 ok, 404, 422 not cancelable, ...)
    message: str = ""


@dataclass(frozen=True, slots=True)
class ClosePositionResult:
    symbol: str
    status: int
    order: Order | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class MarketClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class CalendarDay:
    day: date
    open: datetime
    close: datetime


@dataclass(frozen=True, slots=True)
class PortfolioHistory:
    timestamps: tuple[datetime, ...]
    equity: tuple[Decimal | None, ...]
    profit_loss: tuple[Decimal | None, ...]
    profit_loss_pct: tuple[Decimal | None, ...]
    base_value: Decimal | None
    timeframe: str


@dataclass(frozen=True, slots=True)
class AccountIdentity:
    """What credential validation learned (GET /v2/account before any stream starts)."""

    account_id: str
    account_number: str
    status: str
    environment: str  # "local" | "paper" | "live"


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderQuery:
    status: str = "open"  # open | closed | all
    after: datetime | None = None
    until: datetime | None = None
    limit: int = 500
    direction: str = "desc"
    nested: bool = True
    symbols: tuple[str, ...] = field(default_factory=tuple)


class Broker(Protocol):
    """Orders, positions and account at one broker account. See the module docstring."""

    async def get_account(self) -> Account: ...

    async def submit_order(self, request: OrderRequest) -> Order:
        """POST the order. ``request.client_order_id`` is required (journal-before-wire)."""
        ...

    async def get_order(self, order_id: str) -> Order:
        """Raises BrokerNotFound when unknown."""
        ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """The authoritative lookup for in-flight intents; None only on a definitive 404."""
        ...

    async def list_orders(self, query: OrderQuery) -> list[Order]: ...

    async def cancel_order(self, order_id: str) -> None:
        """Request a cancel. Raises BrokerRejected (422) when not cancelable, BrokerNotFound (404)."""
        ...

    async def cancel_all_orders(self) -> list[CancelResult]: ...

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        """Alpaca replace is cancel-replace: returns the NEW order (new id, ``replaces`` = old id)."""
        ...

    async def get_positions(self) -> list[Position]: ...

    async def get_position(self, symbol: str) -> Position | None: ...

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order: ...

    async def close_all_positions(self, *, cancel_orders: bool) -> list[ClosePositionResult]: ...

    async def get_assets(self) -> list[Asset]: ...

    async def get_asset(self, symbol: str) -> Asset: ...

    async def get_clock(self) -> MarketClock: ...

    async def get_calendar(self, start: date, end: date) -> list[CalendarDay]: ...

    async def get_fills(self, after: datetime | None = None, until: datetime | None = None) -> list[Fill]:
        """Account activities of type FILL, oldest first, all pages."""
        ...

    async def get_portfolio_history(self, period: str = "1M", timeframe: str = "1D") -> PortfolioHistory: ...
