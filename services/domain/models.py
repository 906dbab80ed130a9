"""Value types: immutable snapshots of market data, orders, fills, positions and the account.

Money and quantities are :class:`~decimal.Decimal`; timestamps are timezone-aware UTC datetimes.
Constructors validate both, so a wrong value fails where it is made, not three modules later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.domain.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    TimeInForce,
)


def require_utc(ts: datetime, name: str = "timestamp") -> datetime:
    """Raise unless ``ts`` is timezone-aware; returns it unchanged."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {ts!r}")
    return ts


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts: datetime

    def __post_init__(self) -> None:
        require_utc(self.ts)

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class Trade:
    """A market trade print (not one of ours: see :class:`Fill`)."""

    symbol: str
    price: Decimal
    size: Decimal
    ts: datetime
    trade_id: str = ""

    def __post_init__(self) -> None:
        require_utc(self.ts)


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: datetime  # start of the bar
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int | None = None
    vwap: Decimal | None = None

    def __post_init__(self) -> None:
        require_utc(self.ts)


@dataclass(frozen=True, slots=True)
class OrderLegSpec:
    """Take-profit or stop-loss leg of a bracket, OCO or OTO order."""

    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a person or a strategy asks for, before risk checks and before the wire."""

    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: OrderLegSpec | None = None
    stop_loss: OrderLegSpec | None = None
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty and notional is required")


@dataclass(frozen=True, slots=True)
class Order:
    """The broker's view of one order, as last reported."""

    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    qty: Decimal | None
    filled_qty: Decimal
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    notional: Decimal | None = None
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    order_class: OrderClass = OrderClass.SIMPLE
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: tuple[Order, ...] = ()

    def __post_init__(self) -> None:
        require_utc(self.created_at, "created_at")
        require_utc(self.updated_at, "updated_at")

    @property
    def leaves_qty(self) -> Decimal | None:
        if self.qty is None:
            return None
        return self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders."""

    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    ts: datetime
    position_qty: Decimal | None = None

    def __post_init__(self) -> None:
        require_utc(self.ts)


@dataclass(frozen=True, slots=True)
class Position:
    """A position; ``qty`` is signed (negative when short)."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    cost_basis: Decimal = Decimal(0)
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    lastday_price: Decimal | None = None
    unrealized_pl: Decimal | None = None
    unrealized_intraday_pl: Decimal | None = None
    asset_class: str = "us_equity"

    @property
    def side(self) -> PositionSide:
        return PositionSide.SHORT if self.qty < 0 else PositionSide.LONG


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    account_number: str
    status: str
    currency: str
    cash: Decimal
    equity: Decimal
    last_equity: Decimal
    buying_power: Decimal
    long_market_value: Decimal = Decimal(0)
    short_market_value: Decimal = Decimal(0)
    portfolio_value: Decimal | None = None
    pattern_day_trader: bool = False
    daytrade_count: int = 0
    trading_blocked: bool = False
    account_blocked: bool = False
    shorting_enabled: bool = True
    multiplier: Decimal = Decimal(1)
    daytrading_buying_power: Decimal | None = None
    regt_buying_power: Decimal | None = None
    non_marginable_buying_power: Decimal | None = None

    @property
    def day_pl(self) -> Decimal:
        return self.equity - self.last_equity


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    asset_class: str
    exchange: str
    tradable: bool
    shortable: bool
    fractionable: bool
    easy_to_borrow: bool = True
    marginable: bool = True
    name: str = ""
    min_order_size: Decimal | None = None
    price_increment: Decimal | None = None
    attributes: tuple[str, ...] = field(default_factory=tuple)
    min_trade_increment: Decimal | None = None  # crypto: the quantity step (Alpaca's asset entity)
