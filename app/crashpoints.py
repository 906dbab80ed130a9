"""TEST-ONLY crash points: kill this process with SIGKILL at an exact point of the order path.

The crash tests (tests/crash/) set ``HERON_CRASH_AT`` to one of :data:`POINTS`; this module is the
ONE place that reads it. Without the variable nothing here is installed and the order path is
untouched. Points:

- ``after_journal``: the intent is durably journaled, the POST has not left;
- ``after_post``: the POST was answered by the broker, the answer not yet processed (no ack booked);
- ``after_ack``: the broker's ack was booked (order NEW/accepted), before any fill of it;
- ``mid_partial``: a partial fill was booked while the order still has quantity left;
- ``before_replace``: a replace intent (and the order row naming it) is durably journaled, the
  PATCH has not left;
- ``after_replace``: the PATCH was answered (the replacement exists at the broker), the answer
  not yet processed;
- ``before_cancel``: a cancel request is durably journaled, the DELETE has not left;
- ``after_cancel``: the DELETE was answered, the answer not yet processed.

``HERON_CRASH_AFTER=N`` (default 1) crashes at the N-th time the point is reached.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.broker.base import (
    Broker,
    CalendarDay,
    CancelResult,
    ClosePositionResult,
    MarketClock,
    OrderQuery,
    PortfolioHistory,
    ReplaceRequest,
)
from services.domain.bus import EventBus
from services.domain.enums import OrderStatus
from services.domain.events import OrderChangedEvent
from services.domain.models import Account, Asset, Fill, Order, OrderRequest, Position

log = logging.getLogger(__name__)

ENV = "HERON_CRASH_AT"
ENV_AFTER = "HERON_CRASH_AFTER"
POINTS = (
    "after_journal",
    "after_post",
    "after_ack",
    "mid_partial",
    "before_replace",
    "after_replace",
    "before_cancel",
    "after_cancel",
)


def _die(point: str) -> None:
    log.warning("TEST crash point %s reached: SIGKILL", point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class CrashPoint:
    """Counts arrivals at the configured point and kills the process at the N-th."""

    def __init__(self, point: str, after: int = 1, die: Callable[[str], None] = _die) -> None:
        if point not in POINTS:
            raise ValueError(f"{ENV} must be one of {POINTS}, got {point!r}")
        self.point = point
        self.after = max(1, after)
        self.seen = 0
        self._die = die

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.seen += 1
        if self.seen >= self.after:
            self._die(point)


def from_env(environ: dict[str, str] | None = None) -> CrashPoint | None:
    env = os.environ if environ is None else environ
    point = env.get(ENV)
    if not point:
        return None
    return CrashPoint(point, int(env.get(ENV_AFTER, "1") or "1"))


class CrashingBroker:
    """Wraps a Broker; ``after_journal`` / ``after_post`` fire around ``submit_order``, the replace
    and cancel points around ``replace_order`` and ``cancel_order``."""

    def __init__(self, inner: Broker, crash: CrashPoint) -> None:
        self._inner = inner
        self._crash = crash

    async def submit_order(self, request: OrderRequest) -> Order:
        # The engine calls this only after the journal commit: this IS "after the journal write".
        self._crash.reached("after_journal")
        order = await self._inner.submit_order(request)
        self._crash.reached("after_post")
        return order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # Explicit pass-throughs keep the Broker protocol visible to type checkers.
    async def get_account(self) -> Account:
        return await self._inner.get_account()

    async def get_order(self, order_id: str) -> Order:
        return await self._inner.get_order(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return await self._inner.get_order_by_client_id(client_order_id)

    async def list_orders(self, query: OrderQuery) -> list[Order]:
        return await self._inner.list_orders(query)

    async def cancel_order(self, order_id: str) -> None:
        # the engine calls this after the cancel request was committed
        self._crash.reached("before_cancel")
        await self._inner.cancel_order(order_id)
        self._crash.reached("after_cancel")

    async def cancel_all_orders(self) -> list[CancelResult]:
        return await self._inner.cancel_all_orders()

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        # the engine calls this after the replace intent was committed
        self._crash.reached("before_replace")
        order = await self._inner.replace_order(order_id, request)
        self._crash.reached("after_replace")
        return order

    async def get_positions(self) -> list[Position]:
        return await self._inner.get_positions()

    async def get_position(self, symbol: str) -> Position | None:
        return await self._inner.get_position(symbol)

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        return await self._inner.close_position(symbol, qty=qty, percentage=percentage)

    async def close_all_positions(self, *, cancel_orders: bool) -> list[ClosePositionResult]:
        return await self._inner.close_all_positions(cancel_orders=cancel_orders)

    async def get_assets(self) -> list[Asset]:
        return await self._inner.get_assets()

    async def get_asset(self, symbol: str) -> Asset:
        return await self._inner.get_asset(symbol)

    async def get_clock(self) -> MarketClock:
        return await self._inner.get_clock()

    async def get_calendar(self, start: date, end: date) -> list[CalendarDay]:
        return await self._inner.get_calendar(start, end)

    async def get_fills(self, after: datetime | None = None, until: datetime | None = None) -> list[Fill]:
        return await self._inner.get_fills(after, until)

    async def get_portfolio_history(self, period: str = "1M", timeframe: str = "1D") -> PortfolioHistory:
        return await self._inner.get_portfolio_history(period, timeframe)


def watch_bus(bus: EventBus, crash: CrashPoint) -> None:
    """``after_ack`` and ``mid_partial`` fire from the store's order events (published after the
    database write, so what was booked is durable when the process dies)."""

    def on_order(event: OrderChangedEvent) -> None:
        if event.source == "resync":
            return  # the broker's view after a reconnect, not our booking
        o = event.order
        if o.status in (OrderStatus.NEW, OrderStatus.ACCEPTED) and o.filled_qty == 0:
            crash.reached("after_ack")
        elif o.status is OrderStatus.PARTIALLY_FILLED and o.qty is not None and 0 < o.filled_qty < o.qty:
            crash.reached("mid_partial")

    bus.subscribe(OrderChangedEvent, on_order)
