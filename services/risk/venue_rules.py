"""Risk rules for what Alpaca would refuse after the order was sent.

See docs.alpaca.markets "Orders at Alpaca" and "Crypto Orders": order types and times in force
Alpaca does not take, sub-penny prices, stops on the wrong side of the market, bracket / OCO / OTO
legs on the wrong side, and orders under Alpaca's minimum value. Each rule is a function of the
order and a :class:`RuleInput` returning its :class:`CheckResult`; :data:`services.risk.rules.RULES`
runs them in their place.
"""

from __future__ import annotations

from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from services.risk.context import CheckResult, fmt
from services.risk.facts import RuleInput

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
SUB_CENT = Decimal("0.0001")
STOP_MARGIN = Decimal("1.001")  # Alpaca: "stop price must not be greater than base price / 1.001"
MIN_STOCK_VALUE = Decimal(1)  # "cost basis must be >= minimal amount of order 1"
MIN_CRYPTO_VALUE = Decimal(10)  # "cost basis must be >= minimal amount of order 10"
MAX_QTY_DECIMALS = 9  # qty and notional take up to 9 decimals
CRYPTO_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT})
CRYPTO_TIFS = frozenset({TimeInForce.GTC, TimeInForce.IOC})
DAY_GTC = frozenset({TimeInForce.DAY, TimeInForce.GTC})
LEGGED = (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO)


def _decimals(v: Decimal) -> int:
    """Digits after the point, ignoring trailing zeros (``100.120`` has 2)."""
    exp = v.as_tuple().exponent
    if not isinstance(exp, int) or exp >= 0:
        return 0
    if v == v.to_integral_value():
        return 0
    return -int(v.normalize().as_tuple().exponent)


def _type_refusal(request: OrderRequest, crypto: bool) -> str:
    """Why Alpaca would not take the type, time in force and class together ("" when it would)."""
    otype, tif, cls = request.type, request.time_in_force, request.order_class
    if crypto and otype not in CRYPTO_TYPES:
        return f"Alpaca takes crypto orders as market, limit or stop_limit, not {otype.value}"
    if crypto and tif not in CRYPTO_TIFS:
        return f"Alpaca takes crypto orders with time in force gtc or ioc, not {tif.value}"
    if crypto and cls is not OrderClass.SIMPLE:
        return f"Alpaca takes only simple crypto orders, not {cls.value}"
    if otype is OrderType.TRAILING_STOP and tif not in DAY_GTC:
        return f"a trailing stop's time in force must be day or gtc, not {tif.value}"
    if otype is OrderType.TRAILING_STOP and cls is not OrderClass.SIMPLE:
        return "trailing stops are single orders only (not a bracket, OCO or OTO leg)"
    if cls in LEGGED and tif not in DAY_GTC:
        return f"a {cls.value} order's time in force must be day or gtc, not {tif.value}"
    if cls in LEGGED and request.extended_hours:
        return f"a {cls.value} order cannot trade in extended hours"
    if cls is OrderClass.OCO and otype is not OrderType.LIMIT:
        return f"an OCO order's type must be limit (its take-profit), not {otype.value}"
    return ""


def order_type(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Order type, time in force, class and precision as Alpaca accepts them (Orders at Alpaca;
    Crypto Orders)."""
    qty = c.facts.qty
    nums = {
        "type": request.type.value,
        "time_in_force": request.time_in_force.value,
        "order_class": request.order_class.value,
    }
    why = _type_refusal(request, c.facts.crypto)
    if not why:
        for label, v in (("qty", qty if request.notional is None else None), ("notional", request.notional)):
            if v is not None and _decimals(v) > MAX_QTY_DECIMALS:
                why = f"{label} has {_decimals(v)} decimals; Alpaca takes at most {MAX_QTY_DECIMALS}"
                nums[label] = fmt(v)
                break
    if why:
        return CheckResult("order_type", False, why, nums)
    return CheckResult("order_type", True, "accepted by Alpaca", nums)


def price_increment(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Sub-penny rule for stock prices: at most 2 decimals at $1.00 and above, 4 below."""
    if c.facts.crypto:
        return CheckResult("price_increment", True, "crypto: no stock penny rule")
    prices: list[tuple[str, Decimal | None]] = [
        ("limit_price", request.limit_price),
        ("stop_price", request.stop_price),
    ]
    if request.take_profit is not None:
        prices.append(("take_profit.limit_price", request.take_profit.limit_price))
    if request.stop_loss is not None:
        prices.append(("stop_loss.stop_price", request.stop_loss.stop_price))
        prices.append(("stop_loss.limit_price", request.stop_loss.limit_price))
    for label, price in prices:
        if price is None:
            continue
        step = CENT if price >= ONE else SUB_CENT
        if price % step:
            return CheckResult(
                "price_increment",
                False,
                f"{label} is a sub-penny increment: Alpaca takes "
                + ("2 decimals at $1.00 and above" if step is CENT else "4 decimals below $1.00"),
                {label: fmt(price), "increment": fmt(step)},
            )
    return CheckResult("price_increment", True, "prices on the tick")


def stop_side(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Stops on the right side of the market (else they would trigger at once)."""
    otype = request.type
    if otype is not OrderType.STOP and otype is not OrderType.STOP_LIMIT:
        return CheckResult("stop_side", True, "no stop")
    sp, base, buy = request.stop_price, c.facts.base, c.facts.buy
    if sp is None:
        return CheckResult("stop_side", False, f"{otype.value} order without a stop price")
    if base is None:
        return CheckResult(
            "stop_side", False, f"no price for {c.facts.symbol} to place the stop (fail closed)"
        )
    ok = sp >= base * STOP_MARGIN if buy else sp <= base / STOP_MARGIN
    return CheckResult(
        "stop_side",
        ok,
        ("buy stop above the market" if buy else "sell stop below the market")
        if ok
        else (
            "a buy stop must be above the market (it would trigger at once)"
            if buy
            else "a sell stop must be below the market (it would trigger at once)"
        ),
        {"stop_price": fmt(sp), "market": fmt(base)},
    )


def order_legs(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Bracket / OCO / OTO legs on the right sides."""
    if request.order_class is OrderClass.SIMPLE:
        return CheckResult("order_legs", True, "simple order")
    return _legs(request, c.facts.base)


def _legs(request: OrderRequest, market: Decimal | None) -> CheckResult:
    """Bracket / OCO / OTO legs as Alpaca accepts them ("Orders at Alpaca": bracket, OCO, OTO and
    "Threshold on stop price of stop-loss orders")."""
    cls = request.order_class
    buy = request.side is OrderSide.BUY
    tp = request.take_profit.limit_price if request.take_profit is not None else None
    sl = request.stop_loss.stop_price if request.stop_loss is not None else None
    nums: dict[str, str] = {"take_profit": fmt(tp), "stop_loss": fmt(sl), "market": fmt(market)}
    if cls is OrderClass.MLEG:
        return CheckResult("order_legs", False, "multi-leg option orders are not supported", nums)
    if cls in (OrderClass.BRACKET, OrderClass.OCO) and (tp is None or sl is None):
        return CheckResult(
            "order_legs", False, f"a {cls.value} order needs a take-profit limit and a stop-loss stop", nums
        )
    if cls is OrderClass.OTO and tp is None and sl is None:
        return CheckResult("order_legs", False, "an OTO order needs a take-profit or a stop-loss", nums)
    if market is None:
        return CheckResult("order_legs", False, "no market price to place the legs (fail closed)", nums)
    if cls is OrderClass.OCO:
        # an exit: both legs on the order's side; a sell exits a long (take-profit above the stop)
        exits_long = not buy
        bases = [market] + ([tp] if tp is not None else [])
    else:
        # entry then exits on the other side; the exits' base is the entry's limit, and the market
        exits_long = buy
        entry = request.limit_price if request.type is OrderType.LIMIT else None
        bases = [market] + ([entry] if entry is not None else [])
        if tp is not None:
            tp_base = entry if entry is not None else market
            nums["base_price"] = fmt(tp_base)
            if exits_long and tp < tp_base + CENT:
                return CheckResult(
                    "order_legs",
                    False,
                    "take-profit must be at least 0.01 above the entry (base price)",
                    nums,
                )
            if not exits_long and tp > tp_base - CENT:
                return CheckResult(
                    "order_legs",
                    False,
                    "take-profit must be at least 0.01 below the entry (base price)",
                    nums,
                )
    if tp is not None and sl is not None and (tp <= sl if exits_long else tp >= sl):
        return CheckResult(
            "order_legs",
            False,
            "take-profit must be above the stop-loss when exiting a long"
            if exits_long
            else "take-profit must be below the stop-loss when exiting a short",
            nums,
        )
    if sl is not None:
        limit = min(bases) - CENT if exits_long else max(bases) + CENT
        if not (sl <= limit if exits_long else sl >= limit):
            nums["stop_loss_limit"] = fmt(limit)
            return CheckResult(
                "order_legs",
                False,
                "stop-loss must be at least 0.01 "
                + ("below" if exits_long else "above")
                + " the base price (entry limit, take-profit or market)",
                nums,
            )
    return CheckResult("order_legs", True, f"{cls.value} legs on the right sides", nums)


def min_order_value(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Alpaca's minimum order value: $10 for crypto, $1 for fractional or notional stock orders."""
    f = c.facts
    qty, notional = f.qty, f.notional
    if f.crypto:
        minimum: Decimal | None = MIN_CRYPTO_VALUE
    elif request.notional is not None or (qty is not None and qty != qty.to_integral_value()):
        minimum = MIN_STOCK_VALUE
    else:
        minimum = None
    if minimum is None:
        return CheckResult("min_order_value", True, "whole shares: no minimum value")
    if f.reducing:
        # the reported minimums are for orders that buy or add; closing a small remainder is
        # never blocked here (Alpaca decides)
        return CheckResult("min_order_value", True, "reduces the position", {"minimum": fmt(minimum)})
    if notional is None:
        return CheckResult("min_order_value", False, "no price to value the order (fail closed)")
    return CheckResult(
        "min_order_value",
        notional >= minimum,
        "order value vs Alpaca's minimum"
        if notional >= minimum
        else f"order value under Alpaca's minimum of ${fmt(minimum)}",
        {"value": fmt(notional), "minimum": fmt(minimum)},
    )


def qty_available(request: OrderRequest, c: RuleInput) -> CheckResult | None:
    """A sell of a long position may sell at most the shares not already held by working sells;
    an exit never exceeds the position; None for an order that opens or adds.

    Alpaca holds the shares a working sell would sell (the position's ``held_for_orders``; what is
    left is ``qty_available``) and refuses a sell of a long position with more than that: 403
    "insufficient qty available for order (requested: X, available: Y)". A bracket's exits hold the
    shares once, so an OCO exit for the same 10 shares is refused; an OCO is always an exit (with
    no position on its side, nothing is available). A buy of a short position is checked against
    the position only ("an order that would flip your position ... will return a 403"). Only orders
    with a quantity are checked (a notional order's quantity is Alpaca's to work out).
    """
    f = c.facts
    if request.qty is None:
        return None
    exit_order = request.order_class is OrderClass.OCO
    increasing = (f.buy and f.position >= 0) or (not f.buy and f.position <= 0)
    if increasing and not exit_order:
        return None
    held = ZERO if f.buy else f.working_sells
    available = ZERO if increasing else max(abs(f.position) - held, ZERO)
    side = "buy" if f.buy else "sell"
    nums = {"qty": fmt(request.qty), "position": fmt(f.position), "held_for_orders": fmt(held),
            "available": fmt(available)}  # fmt: skip
    if request.qty <= available:
        return CheckResult("qty_available", True, "within the position's quantity available", nums)
    if increasing:
        why = f"an OCO is an exit: no {request.symbol} position for it to {side}"
    elif held > 0:
        why = (f"{side} {fmt(request.qty)} exceeds the {fmt(available)} {request.symbol} not already held by "
               f"working exit orders (Alpaca refuses it: insufficient qty available)")  # fmt: skip
    else:
        why = f"{side} {fmt(request.qty)} exceeds the position: it would flip it (Alpaca refuses it)"
    return CheckResult("qty_available", False, why, nums)
