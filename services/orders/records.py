"""What the order state machine keeps and answers: :class:`OrderRecord` (Heron's view of one logical
order and its broker legs), :class:`ApplyResult` (what one event did), :class:`Anomaly` and
:class:`FillMatch`, and the deterministic ids of inferred fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import Fill, Order, OrderLegSpec, OrderRequest
from services.orders.transitions import OrderState
from services.risk.context import RiskReport

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something the state machine refused or could not explain. Never silently dropped."""

    kind: str  # invalid_transition | unknown_event | overfill | filled_qty_regressed | ...
    order_key: str  # the logical order's client_order_id
    detail: str
    ts: datetime


@dataclass(slots=True)
class BrokerLeg:
    """Progress of one broker order id belonging to a logical order (replace creates a new one)."""

    broker_order_id: str
    client_order_id: str
    qty: Decimal | None
    filled_qty: Decimal = ZERO
    notional_filled: Decimal = ZERO  # sum(qty * price) of the fills counted on this leg
    inferred_open: Decimal = ZERO  # inferred quantity not yet matched by a real fill event


@dataclass(slots=True)
class OrderRecord:
    """Heron's view of one logical order. Mutated only by :class:`OrderStateMachine`."""

    client_order_id: str  # the logical key: the first client id (journal intent)
    symbol: str
    side: OrderSide
    qty: Decimal | None
    source: str = "manual"
    state: OrderState = OrderState.INITIALIZED
    previous_state: OrderState = OrderState.INITIALIZED
    broker_status: str = ""
    broker_order_id: str | None = None
    current_client_order_id: str = ""
    legs: dict[str, BrokerLeg] = field(default_factory=dict)
    filled_qty: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    overfill_qty: Decimal = ZERO
    updated_at: datetime | None = None
    ambiguous: bool = False
    cancel_requested: bool = False
    pending_replace_client_id: str | None = None
    replace_count: int = 0
    snapshot: Order | None = None  # the last broker view of the current broker order
    exec_ids: set[tuple[str, str]] = field(default_factory=set)
    parent_client_order_id: str | None = None

    def __post_init__(self) -> None:
        if not self.current_client_order_id:
            self.current_client_order_id = self.client_order_id

    @property
    def leaves_qty(self) -> Decimal | None:
        if self.qty is None:
            return None
        return max(self.qty - self.filled_qty, ZERO)


@dataclass(frozen=True, slots=True)
class FillMatch:
    """A real execution confirming (part of) a fill booked earlier by inference.

    ``fill`` is the whole real execution (its own id, price, qty and time); ``inferred`` lists the
    inferred fills it confirms and how much of each. Only the confirmed quantity is already in the
    positions: any rest of the execution is booked in the same result's ``fills`` under the same id.
    The store takes the confirmed quantity out of the inferred rows and writes the execution as
    Alpaca reported it, so the fills table holds real executions and a later copy of one (a
    redelivery, the FILL activities read on recovery) is recognised as a duplicate.
    """

    fill: Fill
    inferred: tuple[tuple[str, Decimal], ...]

    @property
    def confirmed_qty(self) -> Decimal:
        return sum((qty for _, qty in self.inferred), ZERO)


@dataclass(slots=True)
class ApplyResult:
    """What one event did: fills to book (positions), matches of inferred fills, anomalies, refresh."""

    changed: bool = False
    fills: list[Fill] = field(default_factory=list)
    matches: list[FillMatch] = field(default_factory=list)
    duplicate_fills: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    refresh: bool = False
    alert: str | None = None
    transition: tuple[OrderState, OrderState] | None = None

    def merge(self, other: ApplyResult) -> None:
        self.changed = self.changed or other.changed
        self.fills.extend(other.fills)
        self.matches.extend(other.matches)
        self.duplicate_fills += other.duplicate_fills
        self.anomalies.extend(other.anomalies)
        self.refresh = self.refresh or other.refresh
        self.alert = self.alert or other.alert
        if other.transition is not None:
            # several steps in one event (adopted: accepted, then filled) journal as one transition
            start = self.transition[0] if self.transition is not None else other.transition[0]
            self.transition = (start, other.transition[1])


INFERRED_PREFIX = "inferred:"


def inferred_execution_id(broker_order_id: str, cum_before: Decimal, cum_after: Decimal) -> str:
    """Deterministic id of a fill inferred from a cumulative jump: a restart re-infers the same id."""
    return f"{INFERRED_PREFIX}{broker_order_id}:{cum_before.normalize()}:{cum_after.normalize()}"


def inferred_range(execution_id: str) -> tuple[str, Decimal, Decimal] | None:
    """(broker order id, cum_before, cum_after) of an inferred id; None for a real execution id."""
    if not execution_id.startswith(INFERRED_PREFIX):
        return None
    parts = execution_id[len(INFERRED_PREFIX) :].rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], Decimal(parts[1]), Decimal(parts[2])
    except ArithmeticError:
        return None


@dataclass(slots=True)
class OrderMeta:
    """What the store keeps beside the state machine's record (for views and persistence)."""

    created_at: datetime
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: OrderLegSpec | None = None  # the exit legs asked for (bracket, OCO, OTO)
    stop_loss: OrderLegSpec | None = None

    @classmethod
    def of_request(cls, created_at: datetime, request: OrderRequest) -> OrderMeta:
        """What the request asked for: its class and its legs' prices are known before any answer."""
        r = request
        return cls(created_at, r.type, r.time_in_force, r.limit_price, r.stop_price, r.order_class,
                   r.take_profit, r.stop_loss)  # fmt: skip

    @classmethod
    def of_order(cls, order: Order) -> OrderMeta:
        """What the broker reports of an order Heron did not ask for in this process."""
        return cls(order.created_at, order.type, order.time_in_force, order.limit_price,
                   order.stop_price, order.order_class)  # fmt: skip

    def shown_prices(self) -> tuple[Decimal | None, Decimal | None]:
        """(limit, stop) a view shows before the broker reported the order (or after a restart).

        An OCO's body has no top-level limit_price: its order is the take-profit limit with the
        stop-loss as its leg (docs/alpaca-rules.md, "Brackets, OCO, OTO"), so without the broker's
        view its limit is the take-profit's and its stop the stop-loss's."""
        limit, stop = self.limit_price, self.stop_price
        if self.order_class is OrderClass.OCO:
            if limit is None and self.take_profit is not None:
                limit = self.take_profit.limit_price
            if stop is None and self.stop_loss is not None:
                stop = self.stop_loss.stop_price
        return limit, stop


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """``accepted`` False means nothing was sent (risk denial) or the broker definitively refused."""

    client_order_id: str | None
    state: OrderState
    report: RiskReport | None
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.state not in (OrderState.DENIED, OrderState.REJECTED)
