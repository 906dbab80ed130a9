"""What happens to orders and to trading, said in the log (and so in the Log panel), one line each.

The engine, the store and the risk gate publish what happens on the bus; :class:`ActivityLog` turns
it into log records at the level a trader needs:

- every status change of Heron's own orders at INFO: sent, accepted, cancel / replace requested,
  canceled, replaced, expired (logger ``heron.orders``);
- every fill at INFO, with the position after it;
- an order placed outside Heron (seen on the trade-updates stream with no local intent: the store
  adopts it with source ``external``), and its cancel or fill, at WARNING (a cancel Heron asked for,
  by a close or the kill switch, at INFO);
- rejections (by the risk gate before the wire, by the broker after it; a cancel or replace the
  broker refused) and the store's alerts (an order canceled or replaced at the broker without
  Heron asking) at WARNING. A rejection of the POST is one line, the order's status change with
  the broker's reason: the engine tells the reason first (``NotificationEvent.rejected_order``). A
  cancel refused on the request itself (no trade update follows) is said by the engine;
- trading-state changes: ACTIVE and DISABLED (every start-up passes through it; what keeps it
  there is said where it is found) at INFO, REDUCING and HALTED at WARNING (the kill switch itself
  logs at ERROR, :mod:`services.risk.kill_switch`).

Errors the engine logs itself (a database write refused) are not repeated. Loop thread (bus
handlers); never raises.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Protocol, TypeVar

from services.domain.bus import EventBus, Subscription
from services.domain.enums import OrderClass, OrderStatus, TradeUpdateKind, TradingState
from services.domain.events import (
    FillEvent,
    NotificationEvent,
    OrderChangedEvent,
    TradeUpdateEvent,
    TradingStateEvent,
)
from services.domain.models import Order
from services.domain.money import decimal_str
from services.orders.groups import canceled_with_group
from services.orders.records import OrderRecord
from services.orders.working import describe_order

log = logging.getLogger("heron.orders")
trading_log = logging.getLogger("heron.trading")

EXTERNAL = "external"
#: Notification sources whose warnings no one logs otherwise (the risk gate's refusals, the broker's
#: rejections and the store's alerts).
LOGGED_SOURCES = ("risk", "orders")
#: Statuses said by the fill line instead.
FILL_STATUSES = (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
STATE_LEVELS = {
    TradingState.ACTIVE: logging.INFO,
    TradingState.REDUCING: logging.WARNING,
    TradingState.DISABLED: logging.INFO,  # start-up passes through it; its causes are said where found
    TradingState.HALTED: logging.WARNING,
}
WORDS = {
    OrderStatus.PENDING_NEW: "sent",
    OrderStatus.NEW: "accepted",
    OrderStatus.ACCEPTED: "accepted",
    OrderStatus.PENDING_CANCEL: "cancel requested",
    OrderStatus.PENDING_REPLACE: "replace requested",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.REPLACED: "replaced",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
}
#: Trade updates saying the broker refused a cancel or a replace.
REFUSALS: dict[str, str] = {
    TradeUpdateKind.ORDER_CANCEL_REJECTED: "cancel refused by the broker",
    TradeUpdateKind.ORDER_REPLACE_REJECTED: "replace refused by the broker",
}
#: What a leg canceled with the rest of its group was part of.
GROUPS = {OrderClass.BRACKET: "bracket", OrderClass.OCO: "OCO pair", OrderClass.OTO: "OTO order"}
V = TypeVar("V")
#: How many orders' last status are remembered (to say each change once).
REMEMBER = 5_000


class _Store(Protocol):
    def find(
        self, *, client_order_id: str | None = None, broker_order_id: str | None = None
    ) -> OrderRecord | None: ...

    def orders(self) -> list[OrderRecord]: ...


class ActivityLog:
    """See the module docstring. ``close()`` stops following the bus."""

    def __init__(self, bus: EventBus, store: _Store | None = None) -> None:
        self._store = store
        self._last: OrderedDict[str, tuple[OrderStatus, str]] = OrderedDict()
        self._external: OrderedDict[str, None] = OrderedDict()
        self._reasons: OrderedDict[str, str] = OrderedDict()  # client id -> why the broker refused it
        self._subs: list[Subscription] = [
            bus.subscribe(OrderChangedEvent, self.on_order),
            bus.subscribe(FillEvent, self.on_fill),
            bus.subscribe(NotificationEvent, self.on_notification),
            bus.subscribe(TradingStateEvent, self.on_trading_state),
            bus.subscribe(TradeUpdateEvent, self.on_trade_update),
        ]

    def close(self) -> None:
        for sub in self._subs:
            sub.cancel()

    def on_order(self, event: OrderChangedEvent) -> None:
        order = event.order
        key = self._logical_id(order)
        outside = event.source == EXTERNAL
        if outside:
            _remember(self._external, order.id, None)
        seen = self._last.get(key)
        state = (order.status, decimal_str(order.limit_price) or decimal_str(order.stop_price) or "")
        if seen == state or order.status in FILL_STATUSES:
            _remember(self._last, key, state)
            return
        _remember(self._last, key, state)
        words = WORDS.get(order.status, order.status.value)
        if (
            seen is not None
            and order.status is OrderStatus.NEW
            and seen[0] in (OrderStatus.NEW, OrderStatus.PENDING_REPLACE)
        ):
            words = "replaced"  # the same order at a new price or quantity
        if order.status is OrderStatus.CANCELED and not outside:
            words = self._cancel_words(order)
        if outside and self._heron_canceled(order):
            log.info(
                "order placed outside Heron, canceled by Heron: %s (%s)", describe_order(order), order.id
            )
        elif outside:
            what = "placed outside Heron" if seen is None else f"placed outside Heron, {words}"
            log.warning("order %s: %s (%s)", what, describe_order(order), order.id or key)
        elif order.status is OrderStatus.REJECTED:
            why = self._reasons.pop(order.client_order_id, "")
            words = f"{words}: {why}" if why else words
            log.warning("%s %s (%s, %s)", describe_order(order), words, event.source, key)
        else:
            log.info("%s %s (%s, %s)", describe_order(order), words, event.source, key)

    def _logical_id(self, order: Order) -> str:
        """The order's first client id: a replacement has a new one (``...-r1``) but is the same order."""
        if self._store is None:
            return order.client_order_id
        rec = self._store.find(client_order_id=order.client_order_id, broker_order_id=order.id or None)
        return rec.client_order_id if rec is not None else order.client_order_id

    def _cancel_words(self, order: Order) -> str:
        """Whose cancel it was: Heron's ("canceled"), Alpaca's ending a leg with the rest of its
        bracket, OCO or OTO (:mod:`services.orders.groups`), or someone's outside Heron (through the
        API or the dashboard, or the broker's; the store's alert warns of it too)."""
        if self._store is None:
            return "canceled"
        rec = self._store.find(client_order_id=order.client_order_id, broker_order_id=order.id or None)
        if rec is None or rec.cancel_requested:
            return "canceled"
        if canceled_with_group(self._store, rec):
            return f"canceled with its {GROUPS.get(order.order_class, 'group')}"
        return "canceled outside Heron"

    def _heron_canceled(self, order: Order) -> bool:
        """An outside order canceled because Heron asked (a close, a flatten, the kill switch)."""
        if self._store is None or order.status is not OrderStatus.CANCELED:
            return False
        rec = self._store.find(client_order_id=order.client_order_id, broker_order_id=order.id)
        return rec is not None and rec.cancel_requested

    def on_fill(self, event: FillEvent) -> None:
        fill = event.fill
        after = "" if fill.position_qty is None else f"; position {decimal_str(fill.position_qty) or '0'}"
        price = decimal_str(fill.price)
        text = f"fill: {fill.side.value} {decimal_str(fill.qty)} {fill.symbol} @ {price}{after}"
        if fill.order_id in self._external:
            log.warning("%s (order placed outside Heron, %s)", text, fill.order_id)
        else:
            log.info("%s (%s)", text, fill.client_order_id)

    def on_trade_update(self, event: TradeUpdateEvent) -> None:
        """A cancel or replace the broker refused (the order keeps working as it was)."""
        if event.event in REFUSALS:
            order = event.order
            log.warning("%s: %s keeps working as it was (%s)", REFUSALS[event.event], describe_order(order),
                        order.client_order_id)  # fmt: skip

    def on_notification(self, event: NotificationEvent) -> None:
        if event.rejected_order:  # said with the order's status change, which follows
            cid = event.rejected_order
            why = event.message.removeprefix(f"{cid} ").removeprefix("rejected: ")
            _remember(self._reasons, cid, why)
            return
        if event.level == "warning" and event.source in LOGGED_SOURCES:
            log.warning("%s: %s", event.source, event.message)

    def on_trading_state(self, event: TradingStateEvent) -> None:
        trading_log.log(STATE_LEVELS.get(event.state, logging.WARNING), "trading %s: %s",
                        event.state.value, event.reason)  # fmt: skip


def _remember(store: OrderedDict[str, V], key: str, value: V) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > REMEMBER:
        store.popitem(last=False)
