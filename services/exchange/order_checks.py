"""Pre-trade checks of a new order that need no order book: its class and legs, its prices by
type, its time in force, its asset class and session, and its stop prices against the touch.

Each raises :class:`ApiError` (422) with Alpaca's message; the engine runs them in a fixed order
(services/exchange/matching.py, ``MatchingEngine._submit``). The account rules that need the book
and the ledger are in rules.py.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import ROUND_DOWN, Decimal

from services.domain.calendar import NEW_YORK, MarketCalendar
from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.money import InvalidNumberError, check_bounds
from services.exchange import rules
from services.exchange.contracts import NBBO, Instrument
from services.exchange.errors import unprocessable
from services.exchange.ledger import dstr
from services.exchange.requests import OrderRequest

QTY_QUANTUM = Decimal("0.000000001")
TRAILING_TIFS = frozenset({TimeInForce.DAY, TimeInForce.GTC})
CRYPTO_TIFS = frozenset({TimeInForce.GTC, TimeInForce.IOC})
# OPG orders are refused from 09:28 to 19:00 New York on a trading day (Alpaca docs, time in force).
OPG_CUTOFF = time(9, 28)
OPG_REOPENS = time(19, 0)
_TICK = Decimal("0.01")


def whole(q: Decimal) -> bool:
    return q == q.to_integral_value()


def check_number(value: Decimal, key: str, raw: object, *, positive: bool = True) -> Decimal:
    """A request's number within Alpaca's range (``raw``: as the request spelled it)."""
    if value != 0 and not -12 <= value.adjusted() <= 12:
        raise unprocessable(f"invalid {key}: {raw!r} is out of range")
    if positive and value <= 0:
        raise unprocessable(f"{key} must be > 0")
    return value


def check_qty_places(qty: Decimal) -> None:
    if qty != qty.quantize(QTY_QUANTUM, rounding=ROUND_DOWN):
        raise unprocessable("qty must have at most 9 decimal places")


def check_quantity(qty: Decimal) -> None:
    """A quantity the venue computed (a position to close), checked as a request's ``qty`` is."""
    try:
        check_bounds(qty, field="qty")
    except InvalidNumberError as e:
        raise unprocessable(f"invalid qty: {e}") from None
    check_number(qty, "qty", str(qty))
    check_qty_places(qty)


def check_tradable(inst: Instrument) -> None:
    if not inst.tradable:
        raise unprocessable(f'asset "{inst.symbol}" is not tradable')


def check_increment(inst: Instrument, key: str, price: Decimal | None) -> None:
    """Stock prices: at most 2 decimals from $1 up, 4 below (crypto: any)."""
    if price is None or inst.is_crypto:
        return
    exponent = price.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 0
    if (price >= 1 and places > 2) or places > 4:
        raise unprocessable(
            f"invalid {key} {price}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def order_class_limit(req: OrderRequest) -> Decimal | None:
    """Check the order class against its legs; the limit price the order works at (an OCO takes
    its take-profit's)."""
    oclass, otype, tif = req.order_class, req.type, req.time_in_force
    tp, sl = req.take_profit, req.stop_loss
    tp_limit = tp.limit_price if tp else None
    sl_stop = sl.stop_price if sl else None
    limit_price = req.limit_price
    if oclass in (OrderClass.BRACKET, OrderClass.OCO):
        if tp_limit is None or sl_stop is None:
            raise unprocessable(f"{oclass} orders require take_profit.limit_price and stop_loss.stop_price")
    elif oclass == OrderClass.OTO:
        if tp_limit is None and sl_stop is None:
            raise unprocessable("oto orders require take_profit or stop_loss")
        if tp_limit is not None and sl_stop is not None:
            raise unprocessable("oto orders take either take_profit or stop_loss, not both")
    elif tp is not None or sl is not None:
        raise unprocessable("take_profit/stop_loss are only for bracket, oco and oto orders")
    if oclass == OrderClass.OCO:
        if otype != OrderType.LIMIT:
            raise unprocessable("oco orders must be limit orders")
        if limit_price is not None and limit_price != tp_limit:
            raise unprocessable("oco orders take their limit price from take_profit.limit_price")
        limit_price = tp_limit
    if oclass == OrderClass.BRACKET and otype not in (OrderType.MARKET, OrderType.LIMIT):
        raise unprocessable("bracket orders must be market or limit orders")
    if oclass != OrderClass.SIMPLE and tif not in (TimeInForce.DAY, TimeInForce.GTC):
        raise unprocessable(f"{oclass} orders must be day or gtc orders")
    return limit_price


def check_prices(req: OrderRequest, limit_price: Decimal | None) -> None:
    """Which prices each order type takes, and their increments."""
    otype, stop_price = req.type, req.stop_price
    trail_price, trail_percent = req.trail_price, req.trail_percent
    if otype == OrderType.MARKET and any(
        p is not None for p in (limit_price, stop_price, trail_price, trail_percent)
    ):
        raise unprocessable("market orders must not have limit_price, stop_price or trail")
    if otype in (OrderType.LIMIT, OrderType.STOP_LIMIT) and limit_price is None:
        raise unprocessable("limit_price is required for limit orders")
    if otype in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is None:
        raise unprocessable("stop_price is required for stop orders")
    if otype in (OrderType.MARKET, OrderType.STOP, OrderType.TRAILING_STOP) and limit_price is not None:
        raise unprocessable(f"limit_price is not allowed for {otype} orders")
    if otype in (OrderType.MARKET, OrderType.LIMIT, OrderType.TRAILING_STOP) and stop_price is not None:
        raise unprocessable(f"stop_price is not allowed for {otype} orders")
    if otype == OrderType.TRAILING_STOP:
        if (trail_price is None) == (trail_percent is None):
            raise unprocessable("trailing stop orders need exactly one of trail_price or trail_percent")
        if trail_percent is not None and trail_percent >= 100:
            raise unprocessable("trail_percent must be less than 100")
    elif trail_price is not None or trail_percent is not None:
        raise unprocessable("trail_price/trail_percent are only for trailing_stop orders")
    for key, p in (("limit_price", limit_price), ("stop_price", stop_price)):
        check_increment(req.instrument, key, p)


def check_time_in_force(calendar: MarketCalendar, otype: str, tif: str, now: datetime) -> None:
    """Time-in-force rules by order type and by the hour of submission."""
    if otype == OrderType.TRAILING_STOP and tif not in TRAILING_TIFS:
        raise unprocessable(f"invalid time_in_force {tif} for trailing stop orders (day or gtc only)")
    if tif == TimeInForce.OPG:
        local = now.astimezone(NEW_YORK)
        if calendar.session(local.date()) is not None and OPG_CUTOFF <= local.time() < OPG_REOPENS:
            raise unprocessable(
                "opg orders are not accepted after 09:28 and before 19:00 ET; "
                "after 19:00 they go to the next opening auction"
            )


def check_asset_class(req: OrderRequest) -> None:
    """Crypto, fractional, notional and extended-hours rules."""
    inst, otype, tif, oclass = req.instrument, req.type, req.time_in_force, req.order_class
    qty, notional, extended = req.qty, req.notional, req.extended_hours
    if inst.is_crypto:
        rules.check_order_type(inst, otype)  # account rules: crypto order types
        if tif not in CRYPTO_TIFS:
            raise unprocessable(f"invalid crypto time_in_force: {tif} (crypto orders take gtc or ioc)")
        if extended:
            raise unprocessable("extended_hours is not supported for crypto orders")
        if oclass != OrderClass.SIMPLE:
            raise unprocessable("crypto orders must be simple orders")
    elif notional is not None or (qty is not None and not whole(qty)):
        if not inst.fractionable:
            raise unprocessable(f'asset "{inst.symbol}" is not fractionable')
        if oclass != OrderClass.SIMPLE:
            raise unprocessable("fractional orders must be simple orders")
        if tif != TimeInForce.DAY:
            raise unprocessable("fractional orders must be DAY orders")
        if otype != OrderType.MARKET:
            raise unprocessable("fractional orders must be market orders")
    if notional is not None and otype != OrderType.MARKET:
        raise unprocessable("notional orders must be market orders")
    if extended and not (otype == OrderType.LIMIT and tif == TimeInForce.DAY):
        raise unprocessable("extended hours order must be DAY limit orders")
    if qty is not None and inst.is_crypto and qty < inst.min_order_size:
        raise unprocessable(f"qty must be >= {inst.min_order_size}")


def check_against_touch(req: OrderRequest, limit_price: Decimal | None, nbbo: NBBO) -> None:
    """Stop prices on the right side of the touch; bracket/OTO exits a cent past the base price; an
    OCO's stop on the losing side of its take-profit."""
    side, otype, stop_price, oclass = req.side, req.type, req.stop_price, req.order_class
    tp_limit = req.take_profit.limit_price if req.take_profit else None
    sl_stop = req.stop_loss.stop_price if req.stop_loss else None
    if otype in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is not None:
        if side == OrderSide.SELL and stop_price >= nbbo.bid:
            raise unprocessable(
                "stop price must be less than current price",
                market_price=dstr(nbbo.bid),
                stop_price=dstr(stop_price),
            )
        if side == OrderSide.BUY and stop_price <= nbbo.ask:
            raise unprocessable(
                "stop price must be greater than current price",
                market_price=dstr(nbbo.ask),
                stop_price=dstr(stop_price),
            )
    if oclass in (OrderClass.BRACKET, OrderClass.OTO):
        base = limit_price if limit_price is not None else (nbbo.ask if side == OrderSide.BUY else nbbo.bid)
        sign = 1 if side == OrderSide.BUY else -1
        if tp_limit is not None and (tp_limit - base) * sign < _TICK:
            raise unprocessable(
                f"take_profit.limit_price must be {'>=' if sign > 0 else '<='} base_price "
                f"{'+' if sign > 0 else '-'} 0.01",
                base_price=dstr(base),
            )
        if sl_stop is not None and (base - sl_stop) * sign < _TICK:
            raise unprocessable(
                f"stop_loss.stop_price must be {'<=' if sign > 0 else '>='} base_price "
                f"{'-' if sign > 0 else '+'} 0.01",
                base_price=dstr(base),
            )
    if oclass == OrderClass.OCO and sl_stop is not None and tp_limit is not None:
        wrong = sl_stop >= tp_limit if side == OrderSide.SELL else sl_stop <= tp_limit
        if wrong:
            raise unprocessable("stop_loss.stop_price must be on the losing side of take_profit.limit_price")
