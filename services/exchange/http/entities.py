"""Alpaca's entities as JSON, from the venue's typed results: the Account, the Order (REST answers and
trade updates), the trade_updates event and the positions (``Ledger.position_json`` prices each)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.domain.enums import OrderClass
from services.exchange.book import OrderBook
from services.exchange.ledger import Holding, dstr, q9, rfc3339, trading_day
from services.exchange.orders import TradeUpdate, VenueOrder
from services.exchange.venue import TradingVenue


def order_entity(o: VenueOrder, legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Alpaca's Order JSON: every key, decimals as strings, RFC3339 ``Z`` timestamps."""

    def ts(v: datetime | None) -> str | None:
        return rfc3339(v) if v is not None else None

    return {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": rfc3339(o.created_at),
        "updated_at": rfc3339(o.updated_at),
        "submitted_at": rfc3339(o.submitted_at),
        "filled_at": ts(o.filled_at),
        "expired_at": ts(o.expired_at),
        "expires_at": ts(o.expires_at),
        "canceled_at": ts(o.canceled_at),
        "failed_at": ts(o.failed_at),
        "replaced_at": ts(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": o.asset_id,
        "symbol": o.symbol,
        "asset_class": o.asset_class,
        "notional": dstr(o.notional),
        "qty": dstr(o.qty),
        "filled_qty": dstr(o.filled_qty),
        "filled_avg_price": dstr(o.filled_avg_price),
        "order_class": "" if o.order_class == OrderClass.SIMPLE else o.order_class,
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": o.position_intent,
        "time_in_force": o.time_in_force,
        "limit_price": dstr(o.limit_price),
        "stop_price": dstr(o.stop_price),
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": legs,
        "trail_percent": dstr(o.trail_percent),
        "trail_price": dstr(o.trail_price),
        "hwm": dstr(o.hwm),
        "subtag": None,
        "source": None,
    }


def order_json(book: OrderBook, o: VenueOrder, *, nested: bool = True) -> dict[str, Any]:
    """``o`` as Alpaca's Order; with its legs when ``nested`` and it has any."""
    legs = None
    if o.leg_ids and nested:
        legs = [order_entity(book.orders[i]) for i in o.leg_ids if i in book.orders]
    return order_entity(o, legs)


def trade_update_json(update: TradeUpdate) -> dict[str, Any]:
    """The ``data`` of a trade_updates message."""
    legs = None if update.legs is None else [order_entity(leg) for leg in update.legs]
    data: dict[str, Any] = {
        "event": update.event,
        "timestamp": rfc3339(update.at),
        "order": order_entity(update.order, legs),
    }
    x = update.execution
    if x is not None:
        data.update(
            execution_id=x.execution_id,
            price=dstr(x.price),
            qty=dstr(x.qty),
            position_qty=dstr(x.position_qty),
        )
    return data


def account_json(venue: TradingVenue) -> dict[str, Any]:
    """Alpaca's account entity. Buying power follows the account class (see Ledger.margin);
    ``daytrade_count`` counts the day trades of the last 5 business days (rules.py)."""
    m = venue.ledger.margin(venue.engine.quotes())
    reserved = venue.engine.reserved_total
    bp = m.buying_power(reserved)
    regt = max(m.regt_buying_power - reserved, Decimal(0))
    dtbp = max(m.daytrading_buying_power - reserved, Decimal(0)) if m.multiplier == 4 else Decimal(0)
    margin_account = venue.ledger.account_type == "margin"
    return {
        "id": venue.account_id,
        "account_number": venue.account_number,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": dstr(q9(bp)),
        "regt_buying_power": dstr(q9(regt)),
        "daytrading_buying_power": dstr(q9(dtbp)),
        "effective_buying_power": dstr(q9(bp)),
        "non_marginable_buying_power": dstr(q9(m.non_marginable_buying_power)),
        "options_buying_power": dstr(q9(bp)),
        "bod_dtbp": dstr(q9(m.daytrading_buying_power)),
        "cash": dstr(q9(venue.ledger.cash)),
        "accrued_fees": "0",
        "pending_transfer_out": "0",
        "pending_transfer_in": "0",
        "portfolio_value": dstr(q9(m.equity)),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": rfc3339(venue.created_at),
        "trade_suspended_by_user": False,
        "multiplier": str(m.multiplier),
        "shorting_enabled": margin_account and m.multiplier > 1,
        "equity": dstr(q9(m.equity)),
        "last_equity": dstr(venue.last_equity),
        "long_market_value": dstr(q9(m.long_market_value)),
        "short_market_value": dstr(q9(m.short_market_value)),
        "position_market_value": dstr(q9(m.long_market_value + abs(m.short_market_value))),
        "initial_margin": dstr(q9(m.initial_margin)),
        "maintenance_margin": dstr(q9(m.maintenance_margin)),
        "last_maintenance_margin": dstr(q9(m.maintenance_margin)),
        "sma": "0",
        "daytrade_count": venue.engine.day_trades().count if margin_account else 0,
        "balance_asof": venue.clock().astimezone(UTC).date().isoformat(),
        "crypto_tier": 1,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def positions_json(venue: TradingVenue, holdings: Iterable[Holding]) -> list[dict[str, Any]]:
    """Alpaca's position objects as of today's trading day (see :meth:`Ledger.position_json`)."""
    today = trading_day(venue.clock())
    out = []
    for h in holdings:
        side = "sell" if h.qty > 0 else "buy"
        available = abs(h.qty) - venue.engine.held_for_orders(h.symbol, side)
        out.append(venue.ledger.position_json(
            h, venue.universe[h.symbol], venue.market.nbbo(h.symbol), max(available, Decimal(0)),
            today=today,
        ))  # fmt: skip
    return out


def position_json(venue: TradingVenue, h: Holding) -> dict[str, Any]:
    return positions_json(venue, [h])[0]
