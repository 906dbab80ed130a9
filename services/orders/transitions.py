"""The order state machine's table: Heron's order states, the triggers that move them, the
transitions, and how Alpaca's statuses and ``trade_updates`` events map onto triggers.

The model is NautilusTrader's table with Alpaca's exact status kept as ``broker_status``; the
machine that applies it is :class:`services.orders.state_machine.OrderStateMachine`.
PENDING_CANCEL / PENDING_UPDATE have no timeout edge: only the broker settles them.
"""

from __future__ import annotations

from enum import StrEnum

from services.domain.enums import OrderStatus, TradeUpdateKind


class OrderState(StrEnum):
    """Heron's internal order status (Nautilus-style); Alpaca's status is kept as a substatus."""

    INITIALIZED = "initialized"  # journaled intent, not yet on the wire
    DENIED = "denied"  # refused by the risk gate, never sent
    SUBMITTED = "submitted"  # POST sent (or ambiguous), no broker answer yet
    ACCEPTED = "accepted"  # the broker holds the order
    PENDING_UPDATE = "pending_update"
    PENDING_CANCEL = "pending_cancel"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    LOST = "lost"  # not found twice after the deadline; still accepts acks and fills (24 h)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_open(self) -> bool:
        """Working or possibly working at the broker (counts as exposure)."""
        return self in OPEN_STATES

    @property
    def is_in_flight(self) -> bool:
        return self in (OrderState.INITIALIZED, OrderState.SUBMITTED)


TERMINAL_STATES = frozenset(
    {
        OrderState.DENIED,
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.EXPIRED,
        OrderState.REJECTED,
        OrderState.LOST,
    }
)
OPEN_STATES = frozenset(
    {
        OrderState.SUBMITTED,
        OrderState.ACCEPTED,
        OrderState.PENDING_UPDATE,
        OrderState.PENDING_CANCEL,
        OrderState.PARTIALLY_FILLED,
    }
)
# Progress rank: a status event that would lower the rank is stale, never applied.
RANK = {
    OrderState.INITIALIZED: 0,
    OrderState.SUBMITTED: 1,
    OrderState.LOST: 1,
    OrderState.ACCEPTED: 2,
    OrderState.PENDING_UPDATE: 2,
    OrderState.PENDING_CANCEL: 2,
    OrderState.PARTIALLY_FILLED: 3,
    OrderState.DENIED: 9,
    OrderState.FILLED: 9,
    OrderState.CANCELED: 9,
    OrderState.EXPIRED: 9,
    OrderState.REJECTED: 9,
}


class Trigger(StrEnum):
    """Internal events that drive the table."""

    SUBMIT = "submit"
    DENY = "deny"
    ACCEPT = "accept"
    REJECT = "reject"
    PENDING_CANCEL = "pending_cancel"
    PENDING_UPDATE = "pending_update"
    CANCEL = "cancel"
    EXPIRE = "expire"
    UPDATED = "updated"  # replace confirmed: restore the previous status
    MODIFY_REJECTED = "modify_rejected"
    CANCEL_REJECTED = "cancel_rejected"
    LOSE = "lose"


PREVIOUS = "previous"  # marker: restore the status saved before the pending request
S = OrderState
T = Trigger

TRANSITIONS: dict[OrderState, dict[Trigger, OrderState | str]] = {
    S.INITIALIZED: {
        T.SUBMIT: S.SUBMITTED,
        T.DENY: S.DENIED,
        # external / reconciled orders arrive without a local submit
        T.ACCEPT: S.ACCEPTED,
        T.REJECT: S.REJECTED,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
    },
    S.SUBMITTED: {
        T.SUBMIT: S.SUBMITTED,  # a retry with the same client_order_id
        T.ACCEPT: S.ACCEPTED,
        T.REJECT: S.REJECTED,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
        T.LOSE: S.LOST,
    },
    S.ACCEPTED: {
        T.ACCEPT: S.ACCEPTED,
        T.REJECT: S.REJECTED,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.UPDATED: S.ACCEPTED,
        T.MODIFY_REJECTED: S.ACCEPTED,
        T.CANCEL_REJECTED: S.ACCEPTED,
    },
    S.PENDING_UPDATE: {
        T.ACCEPT: S.ACCEPTED,
        T.REJECT: S.REJECTED,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.MODIFY_REJECTED: PREVIOUS,
        T.UPDATED: PREVIOUS,
        T.CANCEL_REJECTED: S.PENDING_UPDATE,
    },
    S.PENDING_CANCEL: {
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.REJECT: S.REJECTED,
        T.ACCEPT: S.PENDING_CANCEL,  # a late "new" while the cancel is pending changes nothing
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.CANCEL_REJECTED: PREVIOUS,
        T.UPDATED: PREVIOUS,
        T.MODIFY_REJECTED: S.PENDING_CANCEL,
    },
    S.PARTIALLY_FILLED: {
        T.ACCEPT: S.PARTIALLY_FILLED,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.UPDATED: S.PARTIALLY_FILLED,
        T.MODIFY_REJECTED: S.PARTIALLY_FILLED,
        T.CANCEL_REJECTED: S.PARTIALLY_FILLED,
    },
    S.LOST: {
        T.ACCEPT: S.ACCEPTED,
        T.REJECT: S.REJECTED,
        T.CANCEL: S.CANCELED,
        T.EXPIRE: S.EXPIRED,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.PENDING_UPDATE: S.PENDING_UPDATE,
    },
    S.DENIED: {},
    S.FILLED: {},
    S.CANCELED: {},
    S.EXPIRED: {},
    S.REJECTED: {},
}
# States where a fill is a normal event (CANCELED: the real-world late fill after a cancel).
FILLABLE = frozenset(
    {S.SUBMITTED, S.ACCEPTED, S.PENDING_UPDATE, S.PENDING_CANCEL, S.PARTIALLY_FILLED, S.CANCELED, S.LOST}
)

# Alpaca status (REST snapshot) -> trigger; None = substatus only.
STATUS_TRIGGER: dict[OrderStatus, Trigger | None] = {
    OrderStatus.NEW: T.ACCEPT,
    OrderStatus.ACCEPTED: T.ACCEPT,
    OrderStatus.PENDING_NEW: T.ACCEPT,
    OrderStatus.ACCEPTED_FOR_BIDDING: T.ACCEPT,
    OrderStatus.PENDING_REVIEW: T.ACCEPT,
    OrderStatus.HELD: T.ACCEPT,
    OrderStatus.PARTIALLY_FILLED: T.ACCEPT,  # the fill part comes from filled_qty
    OrderStatus.FILLED: T.ACCEPT,
    OrderStatus.DONE_FOR_DAY: None,
    OrderStatus.CANCELED: T.CANCEL,
    OrderStatus.EXPIRED: T.EXPIRE,
    OrderStatus.REPLACED: T.UPDATED,
    OrderStatus.PENDING_CANCEL: T.PENDING_CANCEL,
    OrderStatus.PENDING_REPLACE: T.PENDING_UPDATE,
    OrderStatus.STOPPED: None,
    OrderStatus.REJECTED: T.REJECT,
    OrderStatus.SUSPENDED: None,
    OrderStatus.CALCULATED: None,
}

# trade_updates event -> trigger; fills handled separately; None = substatus only.
EVENT_TRIGGER: dict[str, Trigger | None] = {
    TradeUpdateKind.NEW: T.ACCEPT,
    TradeUpdateKind.ACCEPTED: T.ACCEPT,
    TradeUpdateKind.PENDING_NEW: T.ACCEPT,
    TradeUpdateKind.CANCELED: T.CANCEL,
    TradeUpdateKind.EXPIRED: T.EXPIRE,
    TradeUpdateKind.REJECTED: T.REJECT,
    TradeUpdateKind.PENDING_CANCEL: T.PENDING_CANCEL,
    TradeUpdateKind.PENDING_REPLACE: T.PENDING_UPDATE,
    TradeUpdateKind.REPLACED: T.UPDATED,
    TradeUpdateKind.ORDER_REPLACE_REJECTED: T.MODIFY_REJECTED,
    TradeUpdateKind.ORDER_CANCEL_REJECTED: T.CANCEL_REJECTED,
    TradeUpdateKind.DONE_FOR_DAY: None,
    TradeUpdateKind.STOPPED: None,
    TradeUpdateKind.SUSPENDED: None,
    TradeUpdateKind.CALCULATED: None,
    TradeUpdateKind.RESTATED: None,
}
FILL_EVENTS = frozenset({TradeUpdateKind.FILL, TradeUpdateKind.PARTIAL_FILL})
# Rare events: no transition, but a person should hear of them; restated also needs a refresh.
ALERT_EVENTS = frozenset(
    {TradeUpdateKind.STOPPED, TradeUpdateKind.SUSPENDED, TradeUpdateKind.CALCULATED, TradeUpdateKind.RESTATED}
)
REFRESH_EVENTS = frozenset({TradeUpdateKind.RESTATED})
