"""What the trading panels use of the services they adapt, as structural protocols, in one place.

:class:`EngineLike` is the part of :class:`services.orders.engine.ExecutionEngine` the order ticket,
the blotter and the positions panel call; each panel uses a subset, and test fakes implement only
that subset. The others: the order store as the blotter reads it, the quote book as the watchlist
reads it, the trading state and the kill switch as the account panel shows and triggers them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from services.domain.enums import TradingState
from services.domain.models import Asset, Order, OrderRequest
from services.marketdata.book import BookEntry
from services.risk.gate import RiskContext, RiskGate


class EngineLike(Protocol):
    """The order actions a panel may take, all through the execution engine."""

    risk: RiskGate
    broker: Any

    def risk_context(self, request: OrderRequest, asset: Asset | None) -> RiskContext: ...

    async def submit(self, request: OrderRequest, *, source: str = "manual") -> Any: ...

    async def cancel(self, order_key: str, *, source: str = "manual") -> bool: ...

    async def cancel_all(self, *, source: str = "manual") -> int: ...

    async def replace(
        self,
        order_key: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        source: str = "manual",
    ) -> Any: ...

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, source: str = "manual"
    ) -> Any: ...

    async def flatten_all(self, *, source: str = "manual") -> Any: ...


class StoreLike(Protocol):
    """The order store as the blotter reads it."""

    def orders(self) -> list[Any]: ...

    def view(self, rec: Any) -> Order: ...

    def find(self, *, client_order_id: str | None = None, broker_order_id: str | None = None) -> Any: ...


class BookLike(Protocol):
    """The quote book as the watchlist reads it."""

    def entry(self, symbol: str) -> BookEntry: ...

    def symbols(self) -> list[str]: ...


class TradingLike(Protocol):
    """The trading state machine as the account panel shows it."""

    state: TradingState
    reason: str


class KillSwitchLike(Protocol):
    """The kill switch the account panel triggers."""

    async def trigger(self, *, operator: str, flatten: bool, reason: str = "kill switch") -> Any: ...
