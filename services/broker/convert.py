"""alpaca-py models → Heron domain models (Decimal via str, UTC datetimes, Heron enums).

Unknown enum strings never crash a conversion: they are mapped to a safe value and logged, and
wherever the domain keeps raw text (trade-update event names) the raw text is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from services.broker.base import CalendarDay, ClosePositionResult, MarketClock, PortfolioHistory
from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Account, Asset, Order, Position
from services.domain.money import optional_decimal, to_decimal
from services.domain.symbols import InvalidSymbolError, crypto_pair

log = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")

E = TypeVar("E", bound=StrEnum)


def raw(value: Any) -> str | None:
    """The wire string of an alpaca-py enum (or any value); None stays None."""
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def enum_or(cls: type[E], value: Any, default: E, *, what: str) -> E:
    """Map a wire value onto ``cls``; unknown or missing values become ``default`` (logged)."""
    text = raw(value)
    if text is None or text == "":
        return default
    try:
        return cls(text)
    except ValueError:
        log.warning("unknown %s %r from the broker; treating it as %s", what, text, default.value)
        return default


def utc(ts: datetime) -> datetime:
    """Make a datetime timezone-aware UTC (naive values from the SDK are UTC)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def opt_utc(ts: datetime | None) -> datetime | None:
    return None if ts is None else utc(ts)


def dec(value: Any, field: str) -> Decimal:
    return to_decimal(str(value) if isinstance(value, float) else value, field=field)


def opt_dec(value: Any, field: str) -> Decimal | None:
    if isinstance(value, float):
        value = str(value)
    return optional_decimal(value, field=field)


def opt_id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def order(o: Any) -> Order:
    """alpaca.trading.models.Order → domain Order (legs converted recursively)."""
    otype = o.type if o.type is not None else o.order_type
    if o.side is None:
        log.warning("order %s has no side (multi-leg?); recording it as buy", o.id)
    return Order(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol or "",
        side=enum_or(OrderSide, o.side, OrderSide.BUY, what="order side"),
        type=enum_or(OrderType, otype, OrderType.MARKET, what="order type"),
        time_in_force=enum_or(TimeInForce, o.time_in_force, TimeInForce.DAY, what="time in force"),
        status=enum_or(OrderStatus, o.status, OrderStatus.NEW, what="order status"),
        qty=opt_dec(o.qty, "qty"),
        filled_qty=opt_dec(o.filled_qty, "filled_qty") or Decimal(0),
        created_at=utc(o.created_at),
        updated_at=utc(o.updated_at),
        submitted_at=utc(o.submitted_at),
        notional=opt_dec(o.notional, "notional"),
        filled_avg_price=opt_dec(o.filled_avg_price, "filled_avg_price"),
        limit_price=opt_dec(o.limit_price, "limit_price"),
        stop_price=opt_dec(o.stop_price, "stop_price"),
        trail_price=opt_dec(o.trail_price, "trail_price"),
        trail_percent=opt_dec(o.trail_percent, "trail_percent"),
        hwm=opt_dec(o.hwm, "hwm"),
        extended_hours=bool(o.extended_hours),
        order_class=enum_or(OrderClass, o.order_class, OrderClass.SIMPLE, what="order class"),
        filled_at=opt_utc(o.filled_at),
        canceled_at=opt_utc(o.canceled_at),
        expired_at=opt_utc(o.expired_at),
        failed_at=opt_utc(o.failed_at),
        replaced_at=opt_utc(o.replaced_at),
        replaced_by=opt_id(o.replaced_by),
        replaces=opt_id(o.replaces),
        legs=tuple(order(leg) for leg in (o.legs or ())),
    )


def account(a: Any) -> Account:
    def d(name: str, default: Decimal | None = Decimal(0)) -> Decimal | None:
        v = opt_dec(getattr(a, name, None), name)
        return default if v is None else v

    cash = d("cash") or Decimal(0)
    equity = d("equity") or Decimal(0)
    return Account(
        id=str(a.id),
        account_number=a.account_number,
        status=raw(a.status) or "",
        currency=a.currency or "USD",
        cash=cash,
        equity=equity,
        last_equity=d("last_equity", equity) or equity,
        buying_power=d("buying_power") or Decimal(0),
        long_market_value=d("long_market_value") or Decimal(0),
        short_market_value=d("short_market_value") or Decimal(0),
        portfolio_value=d("portfolio_value", None),
        pattern_day_trader=bool(a.pattern_day_trader),
        daytrade_count=int(a.daytrade_count or 0),
        trading_blocked=bool(a.trading_blocked),
        account_blocked=bool(a.account_blocked),
        shorting_enabled=bool(a.shorting_enabled) if a.shorting_enabled is not None else True,
        multiplier=d("multiplier", Decimal(1)) or Decimal(1),
        daytrading_buying_power=d("daytrading_buying_power", None),
        regt_buying_power=d("regt_buying_power", None),
        non_marginable_buying_power=d("non_marginable_buying_power", None),
    )


def position_symbol(symbol: str, asset_class: str) -> str:
    """The symbol Heron uses for a position Alpaca lists.

    Alpaca lists crypto positions as ``BTCUSD`` while orders, fills, assets and data say ``BTC/USD``
    (alpaca-py #179, #490, #537; alpaca-trade-api-csharp #713). The position's ``asset_class`` says
    whether it is crypto. A crypto symbol that cannot be split is kept as given and logged: the
    position is not lost, and reconciliation shows it under the name Alpaca used.
    """
    if asset_class != "crypto":
        return symbol
    try:
        return crypto_pair(symbol)
    except InvalidSymbolError as error:
        log.warning("crypto position %r kept under the broker's symbol: %s", symbol, error)
        return symbol


def position(p: Any) -> Position:
    qty = dec(p.qty, "qty")
    side = raw(p.side)
    if side == "short" and qty > 0:  # Alpaca reports shorts negative; be safe if a server does not
        qty = -qty
    asset_class = raw(p.asset_class) or "us_equity"
    return Position(
        symbol=position_symbol(p.symbol, asset_class),
        qty=qty,
        avg_entry_price=dec(p.avg_entry_price, "avg_entry_price"),
        cost_basis=dec(p.cost_basis, "cost_basis"),
        market_value=opt_dec(p.market_value, "market_value"),
        current_price=opt_dec(p.current_price, "current_price"),
        lastday_price=opt_dec(p.lastday_price, "lastday_price"),
        unrealized_pl=opt_dec(p.unrealized_pl, "unrealized_pl"),
        unrealized_intraday_pl=opt_dec(p.unrealized_intraday_pl, "unrealized_intraday_pl"),
        asset_class=asset_class,
    )


def asset(a: Any) -> Asset:
    return Asset(
        symbol=a.symbol,
        asset_class=raw(a.asset_class) or "us_equity",
        exchange=raw(a.exchange) or "",
        tradable=bool(a.tradable),
        shortable=bool(a.shortable),
        fractionable=bool(a.fractionable),
        easy_to_borrow=bool(a.easy_to_borrow),
        marginable=bool(a.marginable),
        name=a.name or "",
        min_order_size=opt_dec(a.min_order_size, "min_order_size"),
        price_increment=opt_dec(a.price_increment, "price_increment"),
        attributes=tuple(a.attributes or ()),
        min_trade_increment=opt_dec(a.min_trade_increment, "min_trade_increment"),
    )


def clock(c: Any) -> MarketClock:
    return MarketClock(utc(c.timestamp), bool(c.is_open), utc(c.next_open), utc(c.next_close))


def _ny(day: date, value: datetime | time) -> datetime:
    """Calendar open/close are New York wall-clock times (the SDK parses them naive)."""
    t = value.time() if isinstance(value, datetime) else value
    return datetime.combine(day, t, tzinfo=NEW_YORK).astimezone(UTC)


def calendar_day(c: Any) -> CalendarDay:
    return CalendarDay(c.date, _ny(c.date, c.open), _ny(c.date, c.close))


def portfolio_history(h: Any) -> PortfolioHistory:
    def decs(values: list[Any] | None) -> tuple[Decimal | None, ...]:
        return tuple(opt_dec(v, "history value") for v in (values or []))

    return PortfolioHistory(
        timestamps=tuple(datetime.fromtimestamp(t, UTC) for t in h.timestamp),
        equity=decs(h.equity),
        profit_loss=decs(h.profit_loss),
        profit_loss_pct=decs(h.profit_loss_pct),
        base_value=opt_dec(h.base_value, "base_value"),
        timeframe=h.timeframe,
    )


def close_position_result(r: Any, pairs: Mapping[str, str] | None = None) -> ClosePositionResult:
    """One entry of the 207 body of ``DELETE /v2/positions``.

    The entry names the position as Alpaca lists it (``BTCUSD``) while its order says ``BTC/USD``
    (alpaca-py tests, test_close_all_positions). The result names the pair: from the order when
    there is one, else from ``pairs`` (the adapter's slash-free → pair map of positions it has read).
    """
    body = r.body
    status = int(r.status) if r.status is not None else 200
    wire = r.symbol or (getattr(body, "symbol", None) or "")
    symbol = (pairs or {}).get(wire, wire)
    if hasattr(body, "client_order_id"):
        placed = order(body)
        if raw(body.asset_class) == "crypto" and placed.symbol:
            symbol = position_symbol(placed.symbol, "crypto")
        return ClosePositionResult(symbol or placed.symbol, status, placed, "")
    return ClosePositionResult(symbol, status, None, str(body.message))
