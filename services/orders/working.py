"""The working orders a close or a flatten will cancel first, named before the trader confirms.

Closing a position cancels every working order of its symbol first (:mod:`services.orders.closing`:
at Alpaca a working sell holds the shares a closing sell needs). The confirmation names them: Heron's
own orders from the order store (where an order placed in another app is kept too, with source
``external``, once the trade-updates stream has shown it) and the broker's open orders (bracket /
OCO / OTO legs included), each once. Loop thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from services.broker.base import BrokerError, OrderQuery
from services.domain.enums import OrderSide, OrderType
from services.domain.models import Order
from services.domain.money import decimal_str
from services.orders.records import OrderRecord


class StoreLike(Protocol):
    def open_orders(self) -> list[OrderRecord]: ...

    def view(self, rec: OrderRecord) -> Order: ...


class BrokerLike(Protocol):
    async def list_orders(self, query: OrderQuery) -> list[Order]: ...


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    symbol: str
    side: OrderSide
    qty: Decimal | None
    type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: str = ""  # "$0.50" or "1.5%" for a trailing stop
    heron: bool = True  # False: placed outside Heron (seen only at the broker)

    def describe(self) -> str:
        """``AAPL sell 10 limit 190``; ``stop_limit 180 / 179.5``; ``trailing_stop 1.5%``; ``market``."""
        qty = decimal_str(self.qty) if self.qty is not None else "notional"
        prices = [decimal_str(p) for p in (self.stop_price, self.limit_price) if p is not None]
        price = " / ".join(p for p in prices if p) or self.trail
        where = "" if self.heron else " (placed outside Heron)"
        text = f"{self.symbol} {self.side.value} {qty} {self.type.value}"
        return f"{text} {price}{where}" if price else f"{text}{where}"


@dataclass(frozen=True, slots=True)
class WorkingOrders:
    orders: tuple[WorkingOrder, ...]
    problem: str = ""  # the broker's list could not be read: only Heron's own orders are named

    def lines(self) -> list[str]:
        out = [o.describe() for o in self.orders]
        if self.problem:
            out.append(f"(the broker's open orders could not be read: {self.problem}; others may exist)")
        return out


def _from_order(order: Order, *, heron: bool) -> WorkingOrder:
    trail = ""
    if order.trail_percent is not None:
        trail = f"{decimal_str(order.trail_percent)}%"
    elif order.trail_price is not None:
        trail = f"${decimal_str(order.trail_price)}"
    return WorkingOrder(order.symbol, order.side, order.leaves_qty, order.type, order.limit_price,
                        order.stop_price, trail, heron)  # fmt: skip


def describe_order(order: Order) -> str:
    """``AAPL sell 10 limit 190`` for a log line."""
    return _from_order(order, heron=True).describe()


def _with_legs(orders: Iterable[Order]) -> list[Order]:
    out: list[Order] = []
    for order in orders:
        out.append(order)
        out.extend(_with_legs(order.legs))
    return out


def known_working_orders(store: StoreLike, symbol: str | None = None) -> WorkingOrders:
    """The working orders of ``symbol`` (every symbol when None) that Heron knows: its own and those
    placed elsewhere that the trade-updates stream showed. Synchronous, for a confirmation."""
    found = []
    for rec in sorted(store.open_orders(), key=lambda r: (r.symbol, r.client_order_id)):
        if rec.state.is_terminal or (symbol is not None and rec.symbol != symbol):
            continue
        found.append(_from_order(store.view(rec), heron=rec.source != "external"))
    return WorkingOrders(tuple(found))


async def working_orders(store: StoreLike, broker: BrokerLike, symbol: str | None = None) -> WorkingOrders:
    """Every working order of ``symbol`` (of every symbol when None): Heron's first, then those only
    the broker lists (placed elsewhere while Heron did not watch)."""
    query = OrderQuery(status="open", symbols=(symbol,)) if symbol else OrderQuery(status="open")
    try:
        listed = await broker.list_orders(query)
    except BrokerError as error:
        return with_broker_orders(store, [], symbol, problem=error.message)
    return with_broker_orders(store, listed, symbol)


def with_broker_orders(
    store: StoreLike, listed: Iterable[Order], symbol: str | None = None, *, problem: str = ""
) -> WorkingOrders:
    """Heron's working orders of ``symbol`` (every symbol when None), then those of the broker's
    ``listed`` open orders (legs included) Heron does not know. Synchronous: ``listed`` is what the
    broker answered (just now, or at the last reconciliation)."""
    found = list(known_working_orders(store, symbol).orders)
    seen: set[str] = set()
    for rec in store.open_orders():
        seen |= {rec.client_order_id, rec.current_client_order_id, rec.broker_order_id or ""}
        for leg in rec.legs.values():  # every broker order of its replace chain
            seen |= {leg.broker_order_id, leg.client_order_id}
    for order in _with_legs(listed):
        if order.status.is_terminal or (symbol is not None and order.symbol != symbol):
            continue
        if order.id in seen or order.client_order_id in seen:
            continue
        seen |= {order.id, order.client_order_id}
        found.append(_from_order(order, heron=False))
    return WorkingOrders(tuple(found), problem)
