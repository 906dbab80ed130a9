"""The pre-trade risk rules, one function each, and :data:`RULES`, the fixed order the gate runs them in.

A rule takes the order and a :class:`RuleInput` (the caller's context, the facts derived from the
order, the limits and what the gate remembers) and returns its :class:`CheckResult`, passed or
refused with the rule's numbers; a rule that has nothing to say returns None (``reduce_only`` when
the order is not marked reduce-only, or reduces). Missing data fails closed: no price, stale quote,
no account or no instrument refuses. Only ``loss_limits`` has an effect: it tells
``RuleInput.on_breach`` of a breach. The rules for what Alpaca would refuse are in
:mod:`services.risk.venue_rules`.
"""

from __future__ import annotations

from collections.abc import Callable

from services.domain.enums import OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest
from services.risk.context import CheckResult, fmt
from services.risk.facts import HUNDRED, ZERO, RuleInput
from services.risk.venue_rules import (
    min_order_value,
    order_legs,
    order_type,
    price_increment,
    qty_available,
    stop_side,
)

Rule = Callable[[OrderRequest, RuleInput], CheckResult | None]
CLOSING_EXEMPT = "closing order that reduces the position: size limits are for opening risk"


def trading_state(request: OrderRequest, c: RuleInput) -> CheckResult:
    """The trading state (ACTIVE, REDUCING: only reducing orders, else none) and the post-reconnect
    order gate."""
    ctx, f = c.ctx, c.facts
    st = ctx.trading_state
    if ctx.order_gate is not None and not ctx.order_gate.allowed:
        return CheckResult(
            "trading_state", False, f"orders paused: {ctx.order_gate.reason}", {"state": st.value}
        )
    if st is TradingState.ACTIVE:
        return CheckResult("trading_state", True, "ACTIVE", {"state": st.value})
    if st is TradingState.REDUCING:
        return CheckResult(
            "trading_state",
            f.reducing,
            "REDUCING: only orders that reduce a position" if not f.reducing else "REDUCING: order reduces",
            {"state": st.value, "position": fmt(f.position), "order_qty": fmt(f.signed)},
        )
    return CheckResult("trading_state", False, f"{st.value}: no new orders", {"state": st.value})


def reduce_only(request: OrderRequest, c: RuleInput) -> CheckResult | None:
    """A symbol traded reduce-only (an acknowledged quantity drift) refuses orders that do not reduce."""
    if c.ctx.reduce_only and not c.facts.reducing:
        return CheckResult(
            "reduce_only",
            False,
            "order marked reduce-only would not reduce",
            {"position": fmt(c.facts.position)},
        )
    return None


def symbol_lists(request: OrderRequest, c: RuleInput) -> CheckResult:
    sym, lim = request.symbol, c.limits
    if sym in lim.deny_symbols:
        return CheckResult("symbol_lists", False, f"{sym} is on the deny list")
    if lim.allow_symbols and sym not in lim.allow_symbols:
        return CheckResult("symbol_lists", False, f"{sym} is not on the allow list")
    return CheckResult("symbol_lists", True, "allowed")


def tradable(request: OrderRequest, c: RuleInput) -> CheckResult:
    """The instrument trades; an order that would open or grow a short needs shorting allowed."""
    f, ctx, sym = c.facts, c.ctx, request.symbol
    asset = ctx.asset
    opens_short = not f.buy and f.post < 0
    if asset is None:
        return CheckResult("tradable", False, f"no instrument data for {sym} (fail closed)")
    if not asset.tradable:
        return CheckResult("tradable", False, f"{sym} is not tradable")
    if opens_short and not (
        asset.shortable and c.limits.allow_short and (ctx.account is None or ctx.account.shorting_enabled)
    ):
        return CheckResult(
            "tradable",
            False,
            f"{sym}: order would open or increase a short (if every working sell fills)"
            " and shorting is not allowed",
            {"position": fmt(f.position), "working_sells": fmt(f.working_sells), "post_trade": fmt(f.post)},
        )
    return CheckResult("tradable", True, "tradable")


def market_hours(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Market hours vs time in force and extended hours."""
    ctx = c.ctx
    if request.extended_hours and not (
        request.type is OrderType.LIMIT and request.time_in_force is TimeInForce.DAY
    ):
        return CheckResult(
            "market_hours", False, "extended hours requires a limit order with time in force day"
        )
    if c.facts.crypto:
        return CheckResult("market_hours", True, "crypto trades around the clock")
    if ctx.hours is None:
        return CheckResult("market_hours", False, "no market calendar (fail closed)")
    is_open = ctx.hours.is_open(ctx.now)
    ext = ctx.hours.is_extended(ctx.now)
    if not is_open and request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        return CheckResult(
            "market_hours", False, f"market closed: {request.time_in_force.value} would expire at once"
        )
    if not is_open and ext and not request.extended_hours and request.type is OrderType.MARKET:
        return CheckResult("market_hours", True, "extended session: market order queues for the open")
    return CheckResult("market_hours", True, "open" if is_open else "queued for the next session")


def closing_exempt(c: RuleInput) -> bool:
    """A close's (or flatten's) closing order that only reduces the position is exempt from the
    order size limits (``max_order_qty``, ``max_order_notional``).

    Those limits cap the risk a new order can open (a fat-fingered 10,000 instead of 100). A closing
    order takes risk off: refusing it because the position grew past the order size limit (the
    limit was lowered, or the position was built in several orders) leaves the trader unable to
    get out, and the kill switch's flatten (which skips the gate altogether) would close what a
    trader's Close cannot. Only Heron's own close marks the context (``RiskContext.closing``) and
    only an order that ``reduces`` (never flips: it and the working orders on its side together do
    not exceed the position) is exempt; the trading state, the reduce-only guard and Alpaca's own
    rules still apply to it.
    """
    return c.ctx.closing and c.facts.reducing


def max_order_qty(request: OrderRequest, c: RuleInput) -> CheckResult:
    qty, limit = c.facts.qty, c.limits.max_order_qty
    if qty is not None and closing_exempt(c):
        return CheckResult("max_order_qty", True, CLOSING_EXEMPT, {"qty": fmt(qty), "limit": fmt(limit)})
    if qty is None:
        return CheckResult("max_order_qty", False, "no quantity and no price to derive it (fail closed)")
    return CheckResult(
        "max_order_qty", qty <= limit, "order quantity", {"qty": fmt(qty), "limit": fmt(limit)}
    )


def max_order_notional(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Always enforced (there is no unlimited)."""
    notional, limit = c.facts.notional, c.limits.max_order_notional
    if closing_exempt(c):
        numbers = {"notional": fmt(notional), "limit": fmt(limit)}
        return CheckResult("max_order_notional", True, CLOSING_EXEMPT, numbers)
    if notional is None:
        return CheckResult("max_order_notional", False, f"no price for {request.symbol} (fail closed)")
    return CheckResult(
        "max_order_notional",
        notional <= limit,
        "order notional",
        {"notional": fmt(notional), "limit": fmt(limit)},
    )


def price_band(request: OrderRequest, c: RuleInput) -> CheckResult:
    """A limit price at most ``price_band_pct`` through the far side of the NBBO (a stop-limit's limit:
    through its stop); no quote or a stale one fails closed."""
    f = c.facts
    quote, buy, lp, sp = f.quote, f.buy, request.limit_price, request.stop_price
    if quote is None or quote.bid <= 0 or quote.ask <= 0:
        return CheckResult("price_band", False, f"no quote for {request.symbol} (fail closed)")
    if f.stale:
        return CheckResult(
            "price_band",
            False,
            f"quote for {request.symbol} is stale (fail closed)",
            {"quote_ts": quote.ts.isoformat()},
        )
    if request.type is OrderType.STOP_LIMIT and lp is not None and sp is not None:
        # once elected the order is a limit at lp: the fat-finger band is measured from the stop
        bound = sp * (c.band_up if buy else c.band_down)
        ok = lp <= bound if buy else lp >= bound
        return CheckResult(
            "price_band",
            ok,
            ("stop-limit's limit vs its stop")
            if ok
            else (
                "buy stop-limit's limit too far above its stop (fat finger)"
                if buy
                else "sell stop-limit's limit too far below its stop (fat finger)"
            ),
            {
                "limit_price": fmt(lp),
                "stop": fmt(sp),
                "max" if buy else "min": fmt(bound),
                "band_pct": fmt(c.limits.price_band_pct),
            },
        )
    if lp is None:
        return CheckResult(
            "price_band", True, "no limit price; NBBO present", {"bid": fmt(quote.bid), "ask": fmt(quote.ask)}
        )
    if buy:
        bound = quote.ask * c.band_up
        ok = lp <= bound
        return CheckResult(
            "price_band",
            ok,
            "buy limit vs ask" if ok else "buy limit too far through the ask (fat finger)",
            {
                "limit_price": fmt(lp),
                "ask": fmt(quote.ask),
                "max": fmt(bound),
                "band_pct": fmt(c.limits.price_band_pct),
            },
        )
    bound = quote.bid * c.band_down
    ok = lp >= bound
    return CheckResult(
        "price_band",
        ok,
        "sell limit vs bid" if ok else "sell limit too far through the bid (fat finger)",
        {
            "limit_price": fmt(lp),
            "bid": fmt(quote.bid),
            "min": fmt(bound),
            "band_pct": fmt(c.limits.price_band_pct),
        },
    )


def max_position(request: OrderRequest, c: RuleInput) -> CheckResult:
    """The post-trade position in the worst case (every working order on this side fills)."""
    f, lim = c.facts, c.limits
    working_key = "working_buys" if f.buy else "working_sells"
    working = fmt(f.working_buys if f.buy else f.working_sells)
    if f.reducing:
        return CheckResult(
            "max_position",
            True,
            "reduces the position",
            {"position": fmt(f.position), working_key: working, "post_trade": fmt(f.position + f.signed)},
        )
    if f.mark is None:
        return CheckResult("max_position", False, f"no price for {request.symbol} (fail closed)")
    post_notional = abs(f.post) * f.mark
    return CheckResult(
        "max_position",
        abs(f.post) <= lim.max_position_qty and post_notional <= lim.max_position_notional,
        "post-trade position if every working order on this side fills",
        {
            "position": fmt(f.position),
            working_key: working,
            "post_trade_qty": fmt(f.post),
            "qty_limit": fmt(lim.max_position_qty),
            "post_trade_notional": fmt(post_notional),
            "notional_limit": fmt(lim.max_position_notional),
        },
    )


def exposure(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Post-trade gross and net exposure in the worst case; an order that does not grow an exposure
    never breaks its limit."""
    f, ctx, lim = c.facts, c.ctx, c.limits
    mark, q = f.mark, f.q
    if mark is None:
        return CheckResult("exposure", False, f"no price for {request.symbol} (fail closed)")
    # worst case per symbol: the larger of all working buys filling and all working sells
    long_wc = f.position + f.working_buys
    short_wc = f.position - f.working_sells
    before = max(abs(long_wc), abs(short_wc))
    after = max(abs(long_wc + q), abs(short_wc)) if f.buy else max(abs(long_wc), abs(short_wc - q))
    gross = ctx.gross_exposure + (after - before) * mark
    if f.buy:
        net_before = ctx.net_exposure + ctx.pending_buy_exposure
    else:
        net_before = ctx.net_exposure - ctx.pending_sell_exposure
    net = net_before + f.signed * mark
    gross_ok = gross <= lim.max_gross_exposure or gross <= ctx.gross_exposure
    net_ok = abs(net) <= lim.max_net_exposure or abs(net) <= abs(net_before)
    return CheckResult(
        "exposure",
        f.reducing or (gross_ok and net_ok),
        "post-trade gross and net exposure if every working order on this side fills",
        {
            "gross": fmt(gross),
            "gross_limit": fmt(lim.max_gross_exposure),
            "net": fmt(net),
            "net_limit": fmt(lim.max_net_exposure),
        },
    )


def buying_power(request: OrderRequest, c: RuleInput) -> CheckResult:
    acct, notional = c.ctx.account, c.facts.notional
    if acct is None:
        return CheckResult("buying_power", False, "no account data (fail closed)")
    if acct.trading_blocked or acct.account_blocked:
        return CheckResult("buying_power", False, "the broker blocks trading on this account")
    if c.facts.reducing:
        return CheckResult(
            "buying_power", True, "reduces the position", {"buying_power": fmt(acct.buying_power)}
        )
    if notional is None:
        return CheckResult("buying_power", False, "no price to value the order (fail closed)")
    return CheckResult(
        "buying_power",
        notional <= acct.buying_power,
        "order notional vs buying power",
        {"notional": fmt(notional), "buying_power": fmt(acct.buying_power)},
    )


def loss_limits(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Daily loss and drawdown from the peak; a breach is told to ``on_breach`` and refuses all but
    reducing orders."""
    acct, lim = c.ctx.account, c.limits
    if acct is None:
        return CheckResult("loss_limits", False, "no account data (fail closed)")
    day_pl = acct.equity - acct.last_equity
    peak = max(c.ctx.peak_equity or acct.equity, acct.equity)
    dd = (peak - acct.equity) / peak if peak > 0 else ZERO
    breach = ""
    if -day_pl >= lim.max_daily_loss:
        breach = f"daily loss {fmt(-day_pl)} reached the limit {fmt(lim.max_daily_loss)}"
    elif dd >= c.drawdown:
        breach = f"drawdown {fmt(dd * HUNDRED)}% reached the limit {fmt(lim.max_drawdown_pct)}%"
    if breach and c.on_breach is not None:
        c.on_breach(breach)
    return CheckResult(
        "loss_limits",
        not breach or c.facts.reducing,
        breach or "within daily loss and drawdown limits",
        {
            "day_pl": fmt(day_pl),
            "max_daily_loss": fmt(lim.max_daily_loss),
            "drawdown_pct": fmt(dd * HUNDRED),
            "max_drawdown_pct": fmt(lim.max_drawdown_pct),
        },
    )


def max_open_orders(request: OrderRequest, c: RuleInput) -> CheckResult:
    n, limit = c.ctx.open_orders, c.limits.max_open_orders
    return CheckResult("max_open_orders", n < limit, "open orders", {"open": str(n), "limit": str(limit)})


def order_rate(request: OrderRequest, c: RuleInput) -> CheckResult:
    """Orders the gate passed in the last minute."""
    n, limit = c.recent, c.limits.max_orders_per_minute
    return CheckResult(
        "order_rate", n < limit, "orders in the last minute", {"count": str(n), "limit": str(limit)}
    )


def duplicate_order(request: OrderRequest, c: RuleInput) -> CheckResult:
    """The same symbol, side, quantity and limit price passed inside the duplicate window."""
    sym, side, qty, lp = request.symbol, request.side, c.facts.qty, request.limit_price
    dup = any(o[1] == sym and o[2] is side and o[3] == qty and o[4] == lp for o in c.last_orders)
    return CheckResult(
        "duplicate_order",
        not dup,
        "same symbol/side/qty/price just sent" if dup else "not a duplicate",
        {"window_s": fmt(c.limits.duplicate_window_s)},
    )


# The order of the report: state and instrument first, then what Alpaca would refuse, then Heron's
# own limits, then the guards that count orders.
RULES: tuple[Rule, ...] = (
    trading_state,
    reduce_only,
    symbol_lists,
    tradable,
    market_hours,
    order_type,
    price_increment,
    stop_side,
    order_legs,
    qty_available,
    min_order_value,
    max_order_qty,
    max_order_notional,
    price_band,
    max_position,
    exposure,
    buying_power,
    loss_limits,
    max_open_orders,
    order_rate,
    duplicate_order,
)
