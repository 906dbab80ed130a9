"""A leg of a bracket, OCO or OTO order canceled by Alpaca because its group ended.

Alpaca cancels the rest of a group itself: when a bracket's take-profit or stop-loss fills, the
other is canceled ("...and then cancel the remaining order type", Alpaca, "Bracket Orders on
Alpaca"; the OCO pair likewise, docs.alpaca.markets "Orders", OCO); a parent that ends unfilled
takes its held legs with it, and canceling one leg cancels its sibling (the local exchange does the
same: services/exchange/book.py). Such a leg arrives ``canceled`` although Heron sent no cancel for
it: when the group ended by Heron's own cancel (the kill switch, Cancel all, a close), or by a
sibling's fill, that is Heron's doing or the group's normal end, "canceled with its bracket", not
an order "canceled outside Heron".
"""

from __future__ import annotations

from typing import Protocol

from services.orders.records import OrderRecord
from services.orders.transitions import OrderState


class _Orders(Protocol):
    def find(
        self, *, client_order_id: str | None = None, broker_order_id: str | None = None
    ) -> OrderRecord | None: ...

    def orders(self) -> list[OrderRecord]: ...


def canceled_with_group(store: _Orders, rec: OrderRecord) -> bool:
    """Whether ``rec``, canceled without Heron asking, is a leg whose group ended first: its parent
    was canceled by Heron or ended unfilled, or a sibling leg was canceled by Heron or filled."""
    parent_id = rec.parent_client_order_id
    if parent_id is None or rec.state is not OrderState.CANCELED or rec.cancel_requested:
        return False
    parent = store.find(client_order_id=parent_id)
    if parent is not None and (
        parent.cancel_requested or (parent.state.is_terminal and parent.state is not OrderState.FILLED)
    ):
        return True
    return any(
        other is not rec
        and other.parent_client_order_id == parent_id
        and (other.cancel_requested or other.state is OrderState.FILLED)
        for other in store.orders()
    )
