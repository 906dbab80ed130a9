"""What the panels use of the services they adapt, as structural protocols (one place, so a panel's
needs are read off here rather than from three partial copies).

:class:`EngineLike` is the part of :class:`services.orders.engine.ExecutionEngine` the order ticket,
the blotter and the positions panel call; each panel uses a subset, and test fakes implement only
that subset.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from services.domain.models import Asset, OrderRequest
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
