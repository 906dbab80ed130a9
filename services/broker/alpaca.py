"""``AlpacaBroker``: the :class:`~services.broker.base.Broker` contract over alpaca-py's TradingClient.

- Every SDK call runs on a small thread pool this object owns (``close()`` shuts it down).
- Explicit (connect, read) timeouts are injected into the SDK's ``requests.Session``
  (WORKAROUND(alpacahq/alpaca-py#415): the SDK sets none).
- The SDK's blocking retry is off (``_retry = 0``); we retry 429, 5xx, timeouts and connection
  errors with non-blocking jittered backoff.
- A submit or replace is never blindly re-sent after an ambiguous failure: it is resolved by
  ``get_order_by_client_id`` and re-sent, with the SAME client_order_id, only after a definitive 404.
- Every call draws on the :class:`RequestBudget`; cancels may use its reserve.
- Order answers are converted to domain models inside the call, so an answer that cannot be read
  (a NaN, an infinite or a wrongly typed number) is classified like any other failure: an
  "unreadable answer" (BrokerUnavailable), never a refusal. After a POST that means "outcome
  unknown": the order is resolved by its client_order_id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from alpaca.common.enums import Sort
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass as AOrderClass
from alpaca.trading.enums import OrderSide as AOrderSide
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.enums import TimeInForce as ATimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from services.broker import convert
from services.broker.backoff import Backoff
from services.broker.base import (
    AccountIdentity,
    BrokerClosed,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    CalendarDay,
    CancelResult,
    ClosePositionResult,
    MarketClock,
    OrderQuery,
    PortfolioHistory,
    ReplaceRequest,
)
from services.broker.budget import RequestBudget, RequestKind
from services.broker.errors import Failure, classify
from services.broker.health import HealthMonitor, OrdersSuspended
from services.broker.latency import LatencyRecorder
from services.broker.suspension import Suspension
from services.domain.enums import OrderSide, OrderType
from services.domain.models import Account, Asset, Fill, Order, OrderRequest, Position
from services.domain.symbols import position_path_symbol

log = logging.getLogger(__name__)
T = TypeVar("T")
Transport = Callable[..., Any]

ENVIRONMENTS = ("local", "paper", "live")


class _Ambiguous(Exception):
    """Internal: a non-idempotent call failed in a way that leaves its outcome unknown."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error.message)
        self.failure = failure


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(str(value))


def build_order_request(req: OrderRequest) -> Any:
    """Domain OrderRequest → the alpaca-py request object (validated by the SDK's pydantic models)."""
    common: dict[str, Any] = {
        "symbol": req.symbol,
        "side": AOrderSide(req.side.value),
        "time_in_force": ATimeInForce(req.time_in_force.value),
        "client_order_id": req.client_order_id,
        "extended_hours": req.extended_hours or None,
    }
    if req.qty is not None:
        common["qty"] = _f(req.qty)
    else:
        common["notional"] = _f(req.notional)
    if req.order_class.value != "simple":
        common["order_class"] = AOrderClass(req.order_class.value)
    if req.take_profit is not None and req.take_profit.limit_price is not None:
        common["take_profit"] = TakeProfitRequest(limit_price=float(str(req.take_profit.limit_price)))
    if req.stop_loss is not None and req.stop_loss.stop_price is not None:
        common["stop_loss"] = StopLossRequest(
            stop_price=float(str(req.stop_loss.stop_price)), limit_price=_f(req.stop_loss.limit_price)
        )
    if req.type is OrderType.MARKET:
        return MarketOrderRequest(**common)
    if req.type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=_f(req.limit_price), **common)
    if req.type is OrderType.STOP:
        return StopOrderRequest(stop_price=_f(req.stop_price), **common)
    if req.type is OrderType.STOP_LIMIT:
        return StopLimitOrderRequest(stop_price=_f(req.stop_price), limit_price=_f(req.limit_price), **common)
    return TrailingStopOrderRequest(
        trail_price=_f(req.trail_price), trail_percent=_f(req.trail_percent), **common
    )


def _valid_uuid(order_id: str) -> bool:
    try:
        uuid.UUID(str(order_id))
    except ValueError:
        return False
    return True


class AlpacaBroker:
    """Broker over alpaca-py. All coroutines run on the event-loop thread; SDK calls on our pool.

    ``environment`` is ``"local"`` (``base_url`` required: Heron's exchange), ``"paper"`` or
    ``"live"``. ``transport`` replaces the session's underlying ``request`` (tests only).
    """

    def __init__(
        self,
        key_id: str,
        secret: str,
        *,
        environment: str = "paper",
        base_url: str | None = None,
        budget: RequestBudget | None = None,
        health: HealthMonitor | None = None,
        latency: LatencyRecorder | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_workers: int = 4,
        transport: Transport | None = None,
    ) -> None:
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be one of {ENVIRONMENTS}, got {environment!r}")
        if environment == "local" and not base_url:
            raise ValueError("the local exchange needs its base_url")
        self.environment = environment
        self.base_url = base_url.rstrip("/") if base_url else None
        self.client = TradingClient(key_id, secret, paper=environment != "live", url_override=self.base_url)
        self.client._retry = 0  # our own non-blocking backoff replaces the SDK's time.sleep retry
        self.timeout = (connect_timeout, read_timeout)
        inner = transport or self.client._session.request
        self._suspension = Suspension()

        def request_with_timeout(method: str, url: str, **kwargs: Any) -> Any:
            self._suspension.check(f"{method} {urllib.parse.urlsplit(url).path}")  # the last moment
            kwargs.setdefault("timeout", self.timeout)
            return inner(method, url, **kwargs)

        self.client._session.request = request_with_timeout  # type: ignore[method-assign,assignment]
        self.budget = budget or RequestBudget()
        self.health = health or HealthMonitor()
        self.latency = latency or LatencyRecorder()
        self.backoff = backoff or Backoff()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="heron-broker")
        self._closed = False
        #: slash-free position symbol → pair, for crypto positions read so far (close-all refusals
        #: name only the slash-free symbol)
        self._position_pairs: dict[str, str] = {}

    @property
    def url(self) -> str:
        return str(self.client._base_url)

    async def close(self) -> None:
        """Stop the worker pool (pending calls are cancelled; a call in flight finishes on its own)."""
        if not self._closed:
            self._closed = True
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.client._session.close()

    # -- suspension ----------------------------------------------------------------------------

    def suspend(self, reason: str) -> None:
        """Any thread: send nothing to the broker's address (no request, no key) until :meth:`resume`;
        every call fails at once with :class:`BrokerUnavailable` naming ``reason``."""
        self._suspension.suspend(reason)

    def resume(self) -> None:
        self._suspension.resume()

    @property
    def suspended(self) -> str | None:
        """Why calls are suspended, or None."""
        return self._suspension.reason

    # -- the call machinery ---------------------------------------------------------------------

    async def _once(self, endpoint: str, fn: Callable[[], T], kind: RequestKind) -> T:
        if self._closed:
            raise BrokerClosed("the broker connection is closed")
        self._suspension.check(endpoint)  # fails fast: no budget, no network, no health record
        await self.budget.acquire(kind)
        loop = asyncio.get_running_loop()
        token = self.latency.begin(endpoint)  # measured from the start: a waiting call shows as slow
        try:
            result = await loop.run_in_executor(self._executor, fn)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self.latency.end(token, answered=False)
                raise
            failure = classify(exc, endpoint)
            answered = failure.auth or isinstance(failure.error, BrokerRejected)
            self.latency.end(token, error=failure.error.message, answered=answered)
            if failure.auth:
                self.health.record_failure(failure.error.message, auth=True)
            elif isinstance(failure.error, BrokerRejected):
                self.health.record_success()  # the broker answered: the connection is fine
            else:
                self.health.record_failure(failure.error.message)
            raise _Ambiguous(failure) from exc
        self.latency.end(token)
        self.health.record_success()
        return result

    async def _call(
        self,
        endpoint: str,
        fn: Callable[[], T],
        *,
        kind: RequestKind = RequestKind.NORMAL,
        idempotent: bool = True,
    ) -> T:
        """Run ``fn`` with budget, timeouts and backoff. Raises BrokerError, or _Ambiguous when
        ``idempotent`` is False and the outcome is unknown."""
        attempt = 0
        while True:
            try:
                return await self._once(endpoint, fn, kind)
            except _Ambiguous as amb:
                failure = amb.failure
                if not failure.retryable:
                    if not idempotent and failure.maybe_processed:
                        raise
                    raise failure.error from amb.__cause__
                if not idempotent and failure.maybe_processed:
                    raise
                if attempt >= self.backoff.max_retries:
                    raise failure.error from amb.__cause__
                delay = await self.backoff.wait(attempt, failure.retry_after)
                log.info(
                    "%s failed (%s); retry %d after %.2f s",
                    endpoint,
                    failure.error.message,
                    attempt + 1,
                    delay,
                )
                attempt += 1

    def _check_orders_allowed(self) -> None:
        if not self.health.allows_new_orders:
            raise OrdersSuspended(self.health.reason)

    # -- account / identity ---------------------------------------------------------------------

    async def get_account(self) -> Account:
        return convert.account(await self._call("get_account", self.client.get_account))

    async def get_identity(self) -> AccountIdentity:
        a: Any = await self._call("get_account", self.client.get_account)
        return AccountIdentity(str(a.id), a.account_number, convert.raw(a.status) or "", self.environment)

    # -- orders ---------------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> Order:
        coid = request.client_order_id
        if not coid:
            raise ValueError("submit_order needs a client_order_id (journal before wire)")
        if len(coid) > 48:
            raise BrokerRejected(f"client_order_id longer than 48 characters: {coid!r}", status=0)
        self._check_orders_allowed()
        try:
            body = build_order_request(request)
        except ValueError as exc:
            raise BrokerRejected(f"invalid order: {exc}", status=0) from None
        attempt = 0
        while True:
            try:
                # converted inside the call: an answer that cannot be read (NaN, a wrong type) is
                # classified "unreadable" (outcome unknown) and resolved by client id below
                return await self._call(
                    "submit_order", lambda: convert.order(self.client.submit_order(body)), idempotent=False
                )
            except _Ambiguous as amb:
                reason = amb.failure.error.message
            except BrokerRejected as exc:
                if attempt == 0 or exc.status != 422 or "client_order_id" not in exc.message:
                    raise
                reason = exc.message  # our earlier attempt did arrive after all
            existing = await self._resolve_client_id(coid, reason)
            if existing is not None:
                log.info("submit %s resolved by client id after: %s", coid, reason)
                return existing
            if attempt >= self.backoff.max_retries:
                raise BrokerUnavailable(
                    f"order {coid} was not accepted after {attempt + 1} attempts: {reason}"
                )
            await self.backoff.wait(attempt)
            attempt += 1
            log.warning("re-sending order %s (same client id) after a definitive 404: %s", coid, reason)

    async def _resolve_client_id(self, coid: str, reason: str) -> Order | None:
        """After an ambiguous submit: the order if it exists, None on a definitive 404."""
        try:
            return await self.get_order_by_client_id(coid)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"order {coid}: outcome unknown ({reason}); the lookup failed too: {exc.message}"
            ) from None

    async def get_order(self, order_id: str) -> Order:
        if not _valid_uuid(order_id):
            raise BrokerNotFound(f"not an order id: {order_id!r}", status=404)
        return await self._call("get_order", lambda: convert.order(self.client.get_order_by_id(order_id)))

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            return await self._call(
                "get_order_by_client_id",
                lambda: convert.order(self.client.get_order_by_client_id(client_order_id)),
            )
        except BrokerNotFound:
            return None

    async def list_orders(self, query: OrderQuery) -> list[Order]:
        req = GetOrdersRequest(
            status=QueryOrderStatus(query.status),
            limit=query.limit,
            after=query.after,
            until=query.until,
            direction=Sort(query.direction),
            nested=query.nested,
            symbols=list(query.symbols) or None,
        )
        return await self._call(
            "list_orders", lambda: [convert.order(o) for o in self.client.get_orders(req)]
        )

    async def cancel_order(self, order_id: str) -> None:
        if not _valid_uuid(order_id):
            raise BrokerNotFound(f"not an order id: {order_id!r}", status=404)
        await self._call(
            "cancel_order", lambda: self.client.cancel_order_by_id(order_id), kind=RequestKind.CANCEL
        )

    async def cancel_all_orders(self) -> list[CancelResult]:
        results: Any = await self._call(
            "cancel_all_orders", self.client.cancel_orders, kind=RequestKind.CANCEL
        )
        out = []
        for r in results:
            body = r.body or {}
            out.append(CancelResult(str(r.id), int(r.status), str(body.get("message", "")) if body else ""))
        return out

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        if not _valid_uuid(order_id):
            raise BrokerNotFound(f"not an order id: {order_id!r}", status=404)
        self._check_orders_allowed()
        qty: int | None = None
        if request.qty is not None:
            if request.qty != request.qty.to_integral_value() or request.qty <= 0:
                raise BrokerRejected(
                    f"replace quantity must be a whole number > 0, got {request.qty}", status=0
                )
            qty = int(request.qty)
        try:
            body = ReplaceOrderRequest(
                qty=qty,
                time_in_force=ATimeInForce(request.time_in_force) if request.time_in_force else None,
                limit_price=_f(request.limit_price),
                stop_price=_f(request.stop_price),
                trail=_f(request.trail),
                client_order_id=request.client_order_id,
            )
        except ValueError as exc:
            raise BrokerRejected(f"invalid replace: {exc}", status=0) from None
        attempt = 0
        while True:
            try:
                return await self._call(
                    "replace_order",
                    lambda: convert.order(self.client.replace_order_by_id(order_id, body)),
                    idempotent=False,
                )
            except _Ambiguous as amb:
                reason = amb.failure.error.message
            new = await self._resolve_replace(order_id, request, reason)
            if new is not None:
                return new
            if attempt >= self.backoff.max_retries:
                raise BrokerUnavailable(
                    f"replace of {order_id} not confirmed after {attempt + 1} attempts: {reason}"
                )
            await self.backoff.wait(attempt)
            attempt += 1

    async def _resolve_replace(self, order_id: str, request: ReplaceRequest, reason: str) -> Order | None:
        """After an ambiguous replace: the new order if it exists; None if it definitely does not."""
        try:
            if request.client_order_id:
                return await self.get_order_by_client_id(request.client_order_id)
            old = await self.get_order(order_id)
            if old.replaced_by:
                return await self.get_order(old.replaced_by)
            if old.status.value in ("pending_replace", "replaced"):
                raise BrokerUnavailable(f"replace of {order_id} still pending ({reason})")
            if old.status.is_terminal:
                raise BrokerRejected(
                    f"order {order_id} is {old.status.value}; it cannot be replaced", status=422
                )
            return None
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"replace of {order_id}: outcome unknown ({reason}): {exc.message}"
            ) from None

    # -- positions ------------------------------------------------------------------------------
    # Alpaca lists crypto positions under the slash-free symbol (BTCUSD) and /v2/positions/BTC/USD is
    # a 404 (alpaca-py #179, #537; alpaca-trade-api-csharp #713). The Broker contract speaks BTC/USD:
    # positions are converted to the pair, and the positions endpoints are asked for the slash-free
    # spelling. The position's asset id is no way round it: it is not the pair asset's id (alpaca-py #490).

    def _remember_pairs(self, positions: list[Position]) -> list[Position]:
        for p in positions:
            if p.asset_class == "crypto" and "/" in p.symbol:
                self._position_pairs[position_path_symbol(p.symbol)] = p.symbol
        return positions

    async def get_positions(self) -> list[Position]:
        listed = await self._call("get_positions", self.client.get_all_positions)
        return self._remember_pairs([convert.position(p) for p in listed])

    async def get_position(self, symbol: str) -> Position | None:
        path = position_path_symbol(symbol)
        try:
            p = await self._call("get_position", lambda: self.client.get_open_position(path))
        except BrokerNotFound:
            return None
        return self._remember_pairs([convert.position(p)])[0]

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        opts = None
        if qty is not None or percentage is not None:
            opts = ClosePositionRequest(
                qty=str(qty) if qty is not None else None,
                percentage=str(percentage) if percentage is not None else None,
            )
        path = position_path_symbol(symbol)
        try:
            o = await self._call(
                "close_position", lambda: self.client.close_position(path, opts), idempotent=False
            )
        except _Ambiguous as amb:
            raise amb.failure.error from None
        return convert.order(o)

    async def close_all_positions(self, *, cancel_orders: bool) -> list[ClosePositionResult]:
        try:
            results = await self._call(
                "close_all_positions",
                lambda: self.client.close_all_positions(cancel_orders=cancel_orders),
                kind=RequestKind.CANCEL,
                idempotent=False,
            )
        except _Ambiguous as amb:
            raise amb.failure.error from None
        return [convert.close_position_result(r, self._position_pairs) for r in results]

    # -- reference data -------------------------------------------------------------------------

    async def get_assets(self) -> list[Asset]:
        return [convert.asset(a) for a in await self._call("get_assets", self.client.get_all_assets)]

    async def get_asset(self, symbol: str) -> Asset:
        return convert.asset(await self._call("get_asset", lambda: self.client.get_asset(symbol)))

    async def get_clock(self) -> MarketClock:
        return convert.clock(await self._call("get_clock", self.client.get_clock))

    async def get_calendar(self, start: date, end: date) -> list[CalendarDay]:
        req = GetCalendarRequest(start=start, end=end)
        days = await self._call("get_calendar", lambda: self.client.get_calendar(req))
        return [convert.calendar_day(d) for d in days]

    async def get_portfolio_history(self, period: str = "1M", timeframe: str = "1D") -> PortfolioHistory:
        req = GetPortfolioHistoryRequest(period=period, timeframe=timeframe)
        h = await self._call("get_portfolio_history", lambda: self.client.get_portfolio_history(req))
        return convert.portfolio_history(h)

    async def get_fills(self, after: datetime | None = None, until: datetime | None = None) -> list[Fill]:
        """GET /v2/account/activities/FILL, oldest first, following ``page_token`` to the end."""
        page_size = 100
        fills: list[Fill] = []
        token: str | None = None
        for _ in range(10_000):
            params: dict[str, Any] = {"direction": "asc", "page_size": page_size}
            if after is not None:
                params["after"] = after.astimezone(UTC).isoformat()
            if until is not None:
                params["until"] = until.astimezone(UTC).isoformat()
            if token:
                params["page_token"] = token
            page = await self._call(
                "get_fills", functools.partial(self.client.get, "/account/activities/FILL", params)
            )
            rows = page if isinstance(page, list) else []
            for row in rows:
                fills.append(_fill_from_activity(row))
            if len(rows) < page_size:
                return fills
            token = str(rows[-1].get("id"))
        raise BrokerError("too many pages of account activities")


def _fill_from_activity(row: dict[str, Any]) -> Fill:
    ts = datetime.fromisoformat(str(row["transaction_time"]).replace("Z", "+00:00"))
    return Fill(
        execution_id=str(row.get("execution_id") or row["id"]),
        order_id=str(row.get("order_id", "")),
        client_order_id=str(row.get("client_order_id") or ""),
        symbol=str(row.get("symbol", "")),
        side=convert.enum_or(OrderSide, row.get("side"), OrderSide.BUY, what="fill side"),
        qty=convert.dec(row.get("qty"), "qty"),
        price=convert.dec(row.get("price"), "price"),
        ts=convert.utc(ts),
    )
