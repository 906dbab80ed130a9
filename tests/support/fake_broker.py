"""An in-memory broker that implements :class:`services.broker.base.Broker` faithfully.

Tests drive the market by hand: :meth:`FakeBroker.fill` executes (part of) an order, and every
state change is emitted as a :class:`TradeUpdateEvent` the way Alpaca's ``trade_updates`` stream
would, to ``sink`` (and kept in :attr:`FakeBroker.emitted`). Fault knobs reproduce what makes real
brokers hard: a submit that is applied and then times out, 5xx before anything happened, dropped
events, cancels that stay pending, and a journal check that proves the intent was written before
the POST reached the broker.

As at Alpaca, shares are held by the working orders that would sell them (a bracket or OCO group
holds its quantity once, its legs only after the entry filled) until those orders are really
canceled or filled: an order that needs more than what is left is refused with 403 "insufficient
qty available for order (requested: X, available: Y)" (alpaca-trade-api-python #129,
alpaca-trade-api-csharp #247), also while a cancel is still ``pending_cancel`` ("The order is
waiting to be canceled", Alpaca docs "Understand Orders"). Cancelling any order of a bracket/OCO/OTO
group cancels the rest of the group ("If any one of the orders is canceled, any remaining open order
in the group is canceled", same page).

No clock reads and no sleeping: time comes from the injected ``clock``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from services.broker.base import (
    AccountIdentity,
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
from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import TradeUpdateEvent
from services.domain.models import Account, Asset, Fill, Order, OrderRequest, Position

ZERO = Decimal(0)


@dataclass
class FaultKnobs:
    """Each counter is consumed by the next matching call."""

    unavailable_after_submit: int = 0  # apply the submit, then raise BrokerUnavailable (timeout)
    unavailable_before_submit: int = 0  # raise BrokerUnavailable without applying (5xx)
    reject_submit: list[str] = field(default_factory=list)  # definitive 403/422 messages
    unavailable_lookups: int = 0  # get_order_by_client_id raises BrokerUnavailable
    drop_events: set[str] = field(default_factory=set)  # trade-update kinds never emitted
    drop_all_events: bool = False
    pending_cancel: bool = False  # cancels stay pending_cancel until confirm_cancel()


@dataclass
class _Pos:
    qty: Decimal = ZERO
    cost: Decimal = ZERO  # signed qty * avg price


class FakeBroker:
    """See the module docstring. Not thread-safe; every method runs on the caller's loop."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        sink: Callable[[TradeUpdateEvent], None] | None = None,
        journal_check: Callable[[str], bool] | None = None,
        cash: Decimal = Decimal(100_000),
        assets: list[Asset] | None = None,
    ) -> None:
        self.clock = clock
        self.sink = sink
        self.journal_check = journal_check
        self.faults = FaultKnobs()
        self.cash = cash
        self.orders: dict[str, Order] = {}
        self.by_client: dict[str, str] = {}
        self.fills: list[Fill] = []
        self.emitted: list[TradeUpdateEvent] = []
        self.calls: list[str] = []
        self.submits_received: list[str] = []
        self._positions: dict[str, _Pos] = {}
        self._leg_parent: dict[str, str] = {}  # leg order id -> parent order id (bracket/OCO/OTO)
        self._ids = itertools.count(1)
        self._assets = {a.symbol: a for a in (assets or [])}

    # --- helpers for tests ---------------------------------------------------------------------
    def _next_id(self, prefix: str = "ord") -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def _emit(self, kind: str, order: Order, **extra: object) -> None:
        if self.faults.drop_all_events or kind in self.faults.drop_events:
            return
        event = TradeUpdateEvent(ts=self.clock(), event=kind, order=order, **extra)  # type: ignore[arg-type]
        self.emitted.append(event)
        if self.sink is not None:
            self.sink(event)

    def _store(self, order: Order) -> Order:
        self.orders[order.id] = order
        self.by_client[order.client_order_id] = order.id
        return order

    def fill(self, order_id: str, qty: Decimal, price: Decimal, *, execution_id: str | None = None) -> Fill:
        """Execute ``qty`` of an open order at ``price``; emits partial_fill or fill."""
        order = self.orders[order_id]
        if order.status.is_terminal and order.status is not OrderStatus.CANCELED:
            raise ValueError(f"cannot fill {order.status.value} order {order_id}")
        leaves = (order.qty or ZERO) - order.filled_qty
        if qty <= 0 or qty > leaves:
            raise ValueError(f"fill qty {qty} outside (0, {leaves}]")
        now = self.clock()
        cum = order.filled_qty + qty
        prev_notional = order.filled_qty * (order.filled_avg_price or ZERO)
        avg = (prev_notional + qty * price) / cum
        full = cum >= (order.qty or ZERO)
        status = OrderStatus.FILLED if full else order.status
        if not full and status in (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW):
            status = OrderStatus.PARTIALLY_FILLED
        order = self._store(
            replace(
                order,
                filled_qty=cum,
                filled_avg_price=avg,
                status=status,
                updated_at=now,
                filled_at=now if full else order.filled_at,
            )
        )
        pos = self._positions.setdefault(order.symbol, _Pos())
        signed = qty * order.side.sign
        self._apply_position(pos, signed, price)
        self.cash -= signed * price
        fill = Fill(
            execution_id or self._next_id("exec"),
            order.id,
            order.client_order_id,
            order.symbol,
            order.side,
            qty,
            price,
            now,
            pos.qty,
        )
        self.fills.append(fill)
        self._emit(
            "fill" if full else "partial_fill",
            order,
            execution_id=fill.execution_id,
            price=price,
            qty=qty,
            position_qty=pos.qty,
        )
        if full:
            self._on_parent_filled(order)
            parent = self._leg_parent.get(order.id)
            for leg, p in list(self._leg_parent.items()):
                live = self.orders.get(leg)
                if p == parent and leg != order.id and live is not None and not live.status.is_terminal:
                    self._cancel_now(live)  # one exit filled: the other is canceled (Alpaca bracket docs)
        return fill

    @staticmethod
    def _apply_position(pos: _Pos, signed: Decimal, price: Decimal) -> None:
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            pos.cost += signed * price
            pos.qty += signed
            return
        closing = min(abs(signed), abs(pos.qty))
        avg = pos.cost / pos.qty
        sign = 1 if pos.qty > 0 else -1
        pos.qty -= sign * closing
        pos.cost = pos.qty * avg
        rest = abs(signed) - closing
        if rest > 0:
            pos.qty = -sign * rest
            pos.cost = pos.qty * price

    def _on_parent_filled(self, order: Order) -> None:
        for leg in order.legs:
            live = self.orders.get(leg.id)
            if live is not None and live.status is OrderStatus.HELD:
                self._store(replace(live, status=OrderStatus.NEW, updated_at=self.clock()))
                self._emit("new", self.orders[leg.id])

    def confirm_cancel(self, order_id: str) -> None:
        """Settle a pending cancel (with ``faults.pending_cancel``)."""
        self._cancel_now(self.orders[order_id])

    def held_for_orders(self, symbol: str, side: OrderSide) -> Decimal:
        """Quantity of ``symbol`` held by working ``side`` orders (a group's legs count once)."""
        groups: dict[str, Decimal] = {}
        for o in self.orders.values():
            if o.symbol != symbol or o.side is not side or o.status.is_terminal:
                continue
            parent = self._leg_parent.get(o.id)
            if parent is not None and self.orders[parent].status is not OrderStatus.FILLED:
                continue  # the exit legs of an entry that has not filled hold nothing yet
            key = parent or o.id
            leaves = (o.qty or ZERO) - o.filled_qty
            groups[key] = max(groups.get(key, ZERO), leaves)
        return sum(groups.values(), ZERO)

    def _check_available(self, symbol: str, side: OrderSide, qty: Decimal | None) -> None:
        """Alpaca's 403 for an order that would sell (buy back) more than is free of working orders."""
        pos = self._positions.get(symbol)
        if qty is None or pos is None or pos.qty == 0 or (pos.qty > 0) == (side is OrderSide.BUY):
            return
        available = abs(pos.qty) - self.held_for_orders(symbol, side)
        if qty > available:
            raise BrokerRejected(
                f"insufficient qty available for order (requested: {_num(qty)}, "
                f"available: {_num(max(available, ZERO))})",
                status=403,
                code=40310000,
            )

    def expire(self, order_id: str) -> None:
        order = self._store(
            replace(self.orders[order_id], status=OrderStatus.EXPIRED, updated_at=self.clock())
        )
        self._emit("expired", order)

    def set_position(self, symbol: str, qty: Decimal, avg_price: Decimal) -> None:
        """Outside activity (a manual trade in another app): positions change with no event."""
        self._positions[symbol] = _Pos(qty, qty * avg_price)

    def position_qty(self, symbol: str) -> Decimal:
        return self._positions.get(symbol, _Pos()).qty

    # --- Broker protocol ---------------------------------------------------------------------
    async def validate(self) -> AccountIdentity:
        return AccountIdentity("fake-account", "FAKE0001", "ACTIVE", "local")

    async def get_account(self) -> Account:
        self.calls.append("get_account")
        equity = self.cash + sum((p.cost for p in self._positions.values()), ZERO)
        return Account(
            id="fake-account",
            account_number="FAKE0001",
            status="ACTIVE",
            currency="USD",
            cash=self.cash,
            equity=equity,
            last_equity=equity,
            buying_power=max(self.cash, ZERO) * 2,
        )

    async def submit_order(self, request: OrderRequest) -> Order:
        self.calls.append("submit_order")
        cid = request.client_order_id
        if not cid:
            raise BrokerRejected("client_order_id is required by Heron's fake", status=422, code=42210000)
        if self.journal_check is not None and not self.journal_check(cid):
            raise AssertionError(f"POST for {cid} reached the broker before its intent was journaled")
        self.submits_received.append(cid)
        if self.faults.unavailable_before_submit > 0:
            self.faults.unavailable_before_submit -= 1
            raise BrokerUnavailable("HTTP 503 from the broker (fake)")
        if self.faults.reject_submit:
            message = self.faults.reject_submit.pop(0)
            raise BrokerRejected(message, status=403, code=40310000)
        if cid in self.by_client:
            raise BrokerRejected("client_order_id must be unique", status=422, code=42210000)
        self._check_available(request.symbol, request.side, request.qty)
        order = self._create(request, cid)
        if self.faults.unavailable_after_submit > 0:
            self.faults.unavailable_after_submit -= 1
            raise BrokerUnavailable("read timed out (fake: the order was accepted)")
        return order

    def _create(
        self, request: OrderRequest, cid: str, *, replaces: str | None = None, order_id: str | None = None
    ) -> Order:
        now = self.clock()
        legs: list[Order] = []
        if request.order_class in (OrderClass.BRACKET, OrderClass.OTO, OrderClass.OCO):
            for i, spec in enumerate((request.take_profit, request.stop_loss)):
                if spec is None:
                    continue
                leg = Order(
                    id=self._next_id(),
                    client_order_id=f"{cid}-L{i}",
                    symbol=request.symbol,
                    side=request.side.opposite,
                    type=OrderType.LIMIT if spec.stop_price is None else OrderType.STOP,
                    time_in_force=request.time_in_force,
                    status=OrderStatus.HELD,
                    qty=request.qty,
                    filled_qty=ZERO,
                    created_at=now,
                    updated_at=now,
                    submitted_at=now,
                    limit_price=spec.limit_price,
                    stop_price=spec.stop_price,
                    order_class=request.order_class,
                )
                legs.append(self._store(leg))
        order_id = order_id or self._next_id()
        for leg in legs:
            self._leg_parent[leg.id] = order_id
        order = Order(
            id=order_id,
            client_order_id=cid,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            status=OrderStatus.NEW,
            qty=request.qty,
            notional=request.notional,
            filled_qty=ZERO,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            extended_hours=request.extended_hours,
            order_class=request.order_class,
            replaces=replaces,
            legs=tuple(legs),
        )
        self._store(order)
        self._emit("new", order)
        return order

    async def get_order(self, order_id: str) -> Order:
        self.calls.append("get_order")
        if order_id not in self.orders:
            raise BrokerNotFound("order not found", status=404, code=40410000)
        return self.orders[order_id]

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        self.calls.append("get_order_by_client_id")
        if self.faults.unavailable_lookups > 0:
            self.faults.unavailable_lookups -= 1
            raise BrokerUnavailable("lookup timed out (fake)")
        oid = self.by_client.get(client_order_id)
        return self.orders[oid] if oid else None

    async def list_orders(self, query: OrderQuery) -> list[Order]:
        self.calls.append("list_orders")
        out = []
        for o in self.orders.values():
            if query.status == "open" and o.status.is_terminal:
                continue
            if query.status == "closed" and not o.status.is_terminal:
                continue
            if query.after is not None and o.submitted_at <= query.after:
                continue
            if query.symbols and o.symbol not in query.symbols:
                continue
            out.append(o)
        out.sort(key=lambda o: o.submitted_at, reverse=query.direction == "desc")
        return out[: query.limit]

    async def cancel_order(self, order_id: str) -> None:
        self.calls.append("cancel_order")
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerNotFound("order not found", status=404, code=40410000)
        if order.status.is_terminal:
            raise BrokerRejected(f'order is already in "{order.status.value}" state', status=422)
        if self.faults.pending_cancel:
            order = self._store(replace(order, status=OrderStatus.PENDING_CANCEL, updated_at=self.clock()))
            self._emit("pending_cancel", order)
            return
        self._cancel_now(order)

    def _cancel_now(self, order: Order) -> None:
        now = self.clock()
        order = self._store(replace(order, status=OrderStatus.CANCELED, updated_at=now, canceled_at=now))
        self._emit("canceled", order)
        parent = self._leg_parent.get(order.id, order.id)
        group = [parent, *(leg for leg, p in self._leg_parent.items() if p == parent)]
        for other in group:
            live = self.orders.get(other)
            if live is not None and not live.status.is_terminal:
                self._cancel_now(live)  # the rest of a bracket / OCO / OTO group goes with it

    async def cancel_all_orders(self) -> list[CancelResult]:
        self.calls.append("cancel_all_orders")
        results = []
        for o in list(self.orders.values()):
            if not o.status.is_terminal:
                self._cancel_now(o)
                results.append(CancelResult(o.id, 200))
        return results

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        self.calls.append("replace_order")
        old = self.orders.get(order_id)
        if old is None:
            raise BrokerNotFound("order not found", status=404, code=40410000)
        if old.status.is_terminal or old.status is OrderStatus.PENDING_CANCEL:
            raise BrokerRejected("unable to replace order in current state", status=422, code=42210000)
        cid = request.client_order_id or f"{old.client_order_id}-r"
        if cid in self.by_client:
            raise BrokerRejected("client_order_id must be unique", status=422, code=42210000)
        new_req = OrderRequest(
            symbol=old.symbol,
            side=old.side,
            type=old.type,
            time_in_force=TimeInForce(request.time_in_force) if request.time_in_force else old.time_in_force,
            # Alpaca: "the other attributes remain the same as the existing order" (PATCH
            # /v2/orders/{order_id}); an omitted qty keeps the original qty (Alpaca-API #165)
            qty=request.qty if request.qty is not None else old.qty,
            limit_price=request.limit_price if request.limit_price is not None else old.limit_price,
            stop_price=request.stop_price if request.stop_price is not None else old.stop_price,
            client_order_id=cid,
        )
        now = self.clock()
        new_id = self._next_id()
        old = self._store(
            replace(old, status=OrderStatus.REPLACED, updated_at=now, replaced_at=now, replaced_by=new_id)
        )
        self._emit("replaced", old)
        return self._create(new_req, cid, replaces=old.id, order_id=new_id)

    async def get_positions(self) -> list[Position]:
        self.calls.append("get_positions")
        return [self._position(s, p) for s, p in sorted(self._positions.items()) if p.qty != 0]

    def _position(self, symbol: str, p: _Pos) -> Position:
        return Position(symbol, p.qty, (p.cost / p.qty) if p.qty else ZERO, cost_basis=p.cost)

    async def get_position(self, symbol: str) -> Position | None:
        self.calls.append("get_position")
        p = self._positions.get(symbol)
        return self._position(symbol, p) if p and p.qty != 0 else None

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        self.calls.append("close_position")
        p = self._positions.get(symbol)
        if p is None or p.qty == 0:
            raise BrokerNotFound("position does not exist", status=404, code=40410000)
        amount = qty if qty is not None else abs(p.qty)
        if percentage is not None:
            amount = abs(p.qty) * percentage / 100
        side = OrderSide.SELL if p.qty > 0 else OrderSide.BUY
        self._check_available(symbol, side, amount)
        req = OrderRequest(symbol, side, OrderType.MARKET, TimeInForce.DAY, qty=amount)
        return self._create(req, self._next_id("close"))

    async def close_all_positions(self, *, cancel_orders: bool) -> list[ClosePositionResult]:
        self.calls.append("close_all_positions")
        if cancel_orders:
            await self.cancel_all_orders()
        out = []
        for symbol, p in list(self._positions.items()):
            if p.qty != 0:
                order = await self.close_position(symbol)
                out.append(ClosePositionResult(symbol, 200, order))
        return out

    async def get_assets(self) -> list[Asset]:
        self.calls.append("get_assets")
        return list(self._assets.values())

    async def get_asset(self, symbol: str) -> Asset:
        self.calls.append("get_asset")
        if symbol not in self._assets:
            raise BrokerNotFound(f"asset not found for {symbol}", status=404, code=40410000)
        return self._assets[symbol]

    async def get_clock(self) -> MarketClock:
        now = self.clock()
        return MarketClock(now, True, now, now)

    async def get_calendar(self, start: date, end: date) -> list[CalendarDay]:
        return []

    async def get_fills(self, after: datetime | None = None, until: datetime | None = None) -> list[Fill]:
        self.calls.append("get_fills")
        return [f for f in self.fills if (after is None or f.ts > after) and (until is None or f.ts <= until)]

    async def get_portfolio_history(self, period: str = "1M", timeframe: str = "1D") -> PortfolioHistory:
        return PortfolioHistory((), (), (), (), None, timeframe)


def _num(value: Decimal) -> str:
    """A quantity as Alpaca writes it in messages: ``10``, ``0.5`` (no exponent, no trailing zeros)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


ORDER_METHODS = (
    "submit_order",
    "cancel_order",
    "cancel_all_orders",
    "replace_order",
    "close_position",
    "close_all_positions",
)


class NoOrdersBroker(FakeBroker):
    """A FakeBroker whose every order-sending call fails the test: proves a caller never trades."""

    async def submit_order(self, request: OrderRequest) -> Order:
        raise AssertionError("submit_order called")

    async def cancel_order(self, order_id: str) -> None:
        raise AssertionError("cancel_order called")

    async def cancel_all_orders(self) -> list[CancelResult]:
        raise AssertionError("cancel_all_orders called")

    async def replace_order(self, order_id: str, request: ReplaceRequest) -> Order:
        raise AssertionError("replace_order called")

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        raise AssertionError("close_position called")

    async def close_all_positions(self, *, cancel_orders: bool) -> list[ClosePositionResult]:
        raise AssertionError("close_all_positions called")
