"""What every risk rule reads about one order: prices, quantity, value and the worst-case position.

:func:`order_facts` derives them once per check from the request and the :class:`RiskContext`;
:class:`RuleInput` hands them to each rule with the limits and what the gate remembers (orders in
the last minute, recent orders for the duplicate guard, the loss-breach callback).

Orders are valued at the price they would trade at: a limit at its limit, a stop at its trigger, a
stop-limit at the higher of its stop and limit, a trailing stop at the market moved by its trail.
Working orders count: per symbol, long = position + working buys, short = position - working sells,
and an order only "reduces" when it and the working orders on its side together do not exceed the
position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.domain.enums import OrderSide, OrderType
from services.domain.models import OrderRequest, Quote
from services.domain.symbols import is_crypto
from services.risk.context import RiskContext
from services.risk.limits import RiskLimits

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# (time, symbol, side, qty, limit price) of an order the gate passed, for the duplicate guard
SentOrder = tuple[datetime, str, OrderSide, Decimal | None, Decimal | None]


@dataclass(slots=True)
class OrderFacts:
    """Derived once per check; rules only read it."""

    symbol: str
    buy: bool
    crypto: bool
    position: Decimal  # signed position in the symbol (before this order)
    quote: Quote | None
    stale: bool
    last: Decimal | None  # last trade
    base: Decimal | None  # the market Alpaca measures stops and legs against: last trade, else the mid
    ref: Decimal | None  # the price the order would trade at once it works
    qty: Decimal | None  # the order's quantity (a notional order's at ``ref``); None when unknown
    q: Decimal  # qty or zero
    signed: Decimal  # +q for a buy, -q for a sell
    working_buys: Decimal
    working_sells: Decimal
    post: Decimal  # worst-case position if every working order on this side fills, and this one
    reducing: bool
    notional: Decimal | None  # the order's value at ``ref``
    mark: Decimal | None  # the last trade, else ``ref``


@dataclass(slots=True)
class RuleInput:
    """What a rule gets besides the order: the context, the facts, the limits and the gate's memory."""

    ctx: RiskContext
    facts: OrderFacts
    limits: RiskLimits
    band_up: Decimal  # 1 + price band
    band_down: Decimal  # 1 - price band
    drawdown: Decimal  # max drawdown as a fraction
    recent: int  # orders the gate passed in the last minute
    last_orders: Sequence[SentOrder]  # orders the gate passed inside the duplicate window
    on_breach: Callable[[str], None] | None  # told of a loss-limit breach (None: do not tell)


def _reference_price(request: OrderRequest, buy: bool, far: Decimal | None) -> Decimal | None:
    """What the order would trade at once it works (``far``: the far side of the quote, or last)."""
    otype, lp, sp = request.type, request.limit_price, request.stop_price
    if otype is OrderType.LIMIT and lp is not None:
        return lp
    if otype is OrderType.STOP and sp is not None:
        return sp
    if otype is OrderType.STOP_LIMIT and sp is not None and lp is not None:
        return max(sp, lp)
    if otype is OrderType.TRAILING_STOP and far is not None:
        if request.trail_price is not None:
            return far + request.trail_price if buy else far - request.trail_price
        if request.trail_percent is not None:
            return far * (1 + request.trail_percent / HUNDRED if buy else 1 - request.trail_percent / HUNDRED)
        return far
    return far


def order_facts(request: OrderRequest, ctx: RiskContext) -> OrderFacts:
    sym = request.symbol
    pos = ctx.positions.get(sym, ZERO)
    quote = ctx.prices.quote(sym)
    stale = ctx.prices.is_stale(sym)
    last = ctx.prices.last_price(sym)
    buy = request.side is OrderSide.BUY
    has_quote = quote is not None and quote.ask > 0 and quote.bid > 0
    far = (quote.ask if buy else quote.bid) if has_quote and quote is not None else last
    base = last if last is not None else (quote.mid if has_quote and quote is not None else None)
    ref = _reference_price(request, buy, far)
    qty = request.qty
    if qty is None and request.notional is not None and ref:
        qty = request.notional / ref
    q = qty or ZERO
    working_buys = ctx.pending_buys.get(sym, ZERO)
    working_sells = ctx.pending_sells.get(sym, ZERO)
    # worst case on this order's side: every working order on that side fills too
    if buy:
        post = pos + working_buys + q
        reducing = qty is not None and pos < 0 and q + working_buys <= -pos
    else:
        post = pos - working_sells - q
        reducing = qty is not None and pos > 0 and q + working_sells <= pos
    notional = request.notional if request.notional is not None else (qty * ref if qty and ref else None)
    # positional, in field order: this runs once per check on the submit path
    return OrderFacts(
        sym,
        buy,
        is_crypto(sym),
        pos,
        quote,
        stale,
        last,
        base,
        ref,
        qty,
        q,
        q if buy else -q,
        working_buys,
        working_sells,
        post,
        reducing,
        notional,
        last if last is not None else ref,
    )
