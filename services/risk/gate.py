"""RiskGate: fail-closed, explained pre-trade checks.

``check(request, context)`` runs every check in a fixed order and returns a :class:`RiskReport` with
one :class:`CheckResult` per check (name, passed, detail, numbers as decimal strings). Missing data
fails closed: no price, stale quote, no account or no instrument rejects. Cancels never come here.

Working orders count: position and exposure limits hold for the worst case in which every working
order fills (per symbol, long = position + working buys, short = position - working sells), and an
order only "reduces" when it and the working orders on its side together do not exceed the position.
Orders are valued at the price they would trade at: a limit at its limit, a stop at its trigger, a
stop-limit at the higher of its stop and limit, a trailing stop at the market moved by its trail.

Besides Heron's own limits the gate refuses what Alpaca would refuse after the order was sent (see
docs.alpaca.markets "Orders at Alpaca" and "Crypto Orders"): order types and times in force Alpaca
does not take, sub-penny prices, stops on the wrong side of the market, bracket / OCO / OTO legs on
the wrong side, and orders under Alpaca's minimum value.

No I/O, no pandas: the context carries everything, prepared by the caller; limit-derived constants
are precomputed. Synchronous; call it on the event-loop thread. Passing orders are counted for the
rate and duplicate guards (so call it once per order you intend to send).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Account, Asset, OrderRequest, Quote
from services.domain.symbols import is_crypto
from services.risk.limits import RiskLimits

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
SUB_CENT = Decimal("0.0001")
STOP_MARGIN = Decimal("1.001")  # Alpaca: "stop price must not be greater than base price / 1.001"
MIN_STOCK_VALUE = Decimal(1)  # "cost basis must be >= minimal amount of order 1"
MIN_CRYPTO_VALUE = Decimal(10)  # "cost basis must be >= minimal amount of order 10"
MAX_QTY_DECIMALS = 9  # qty and notional take up to 9 decimals
CRYPTO_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT})
CRYPTO_TIFS = frozenset({TimeInForce.GTC, TimeInForce.IOC})
DAY_GTC = frozenset({TimeInForce.DAY, TimeInForce.GTC})
_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


class PriceSource(Protocol):
    """What the gate needs from market data (``services.marketdata.book.QuoteBook`` provides it)."""

    def quote(self, symbol: str) -> Quote | None: ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def is_stale(self, symbol: str) -> bool: ...

    def prev_close(self, symbol: str) -> Decimal | None: ...


class MarketHours(Protocol):
    """``services.domain.calendar.MarketCalendar`` provides these."""

    def is_open(self, ts: datetime) -> bool: ...

    def is_extended(self, ts: datetime) -> bool: ...


class OrderGateLike(Protocol):
    """``services.broker.gate.OrderGate``: closed while the stream resyncs after a reconnect."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    numbers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskReport:
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def explain(self) -> str:
        """One line per failed check: the rule and the numbers."""
        lines = []
        for c in self.failures:
            nums = ", ".join(f"{k}={v}" for k, v in c.numbers.items())
            lines.append(f"{c.name}: {c.detail}" + (f" ({nums})" if nums else ""))
        return "; ".join(lines) if lines else "all checks passed"


@dataclass(slots=True)
class RiskContext:
    """Everything a check needs, prepared by the caller (no I/O inside the gate)."""

    now: datetime
    trading_state: TradingState
    account: Account | None
    asset: Asset | None
    prices: PriceSource
    positions: Mapping[str, Decimal]  # signed qty per symbol
    # worst case over symbols (before this order): sum max(|pos + buys|, |pos - sells|) * mark
    gross_exposure: Decimal
    net_exposure: Decimal  # sum qty * mark over positions
    open_orders: int
    hours: MarketHours | None
    peak_equity: Decimal | None = None
    order_gate: OrderGateLike | None = None
    reduce_only: bool = False
    pending_buys: Mapping[str, Decimal] = field(
        default_factory=lambda: _EMPTY
    )  # leaves qty of working buys per symbol
    pending_sells: Mapping[str, Decimal] = field(
        default_factory=lambda: _EMPTY
    )  # leaves qty of working sells per symbol
    pending_buy_exposure: Decimal = ZERO  # sum working buys * mark
    pending_sell_exposure: Decimal = ZERO  # sum working sells * mark


def _s(v: Decimal | int | None) -> str:
    if v is None:
        return "none"
    if isinstance(v, int):
        return str(v)
    return format(v.normalize() if v == v.to_integral() else v, "f")


def _decimals(v: Decimal) -> int:
    """Digits after the point, ignoring trailing zeros (``100.120`` has 2)."""
    exp = v.as_tuple().exponent
    if not isinstance(exp, int) or exp >= 0:
        return 0
    if v == v.to_integral_value():
        return 0
    return -int(v.normalize().as_tuple().exponent)


def _order_type(request: OrderRequest, crypto: bool, qty: Decimal | None) -> CheckResult:
    """Order type, time in force, class and precision as Alpaca accepts them (Orders at Alpaca;
    Crypto Orders)."""
    otype, tif, cls = request.type, request.time_in_force, request.order_class
    nums = {"type": otype.value, "time_in_force": tif.value, "order_class": cls.value}
    why = ""
    if crypto and otype not in CRYPTO_TYPES:
        why = f"Alpaca takes crypto orders as market, limit or stop_limit, not {otype.value}"
    elif crypto and tif not in CRYPTO_TIFS:
        why = f"Alpaca takes crypto orders with time in force gtc or ioc, not {tif.value}"
    elif crypto and cls is not OrderClass.SIMPLE:
        why = f"Alpaca takes only simple crypto orders, not {cls.value}"
    elif otype is OrderType.TRAILING_STOP and tif not in DAY_GTC:
        why = f"a trailing stop's time in force must be day or gtc, not {tif.value}"
    elif otype is OrderType.TRAILING_STOP and cls is not OrderClass.SIMPLE:
        why = "trailing stops are single orders only (not a bracket, OCO or OTO leg)"
    elif cls in (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO) and tif not in DAY_GTC:
        why = f"a {cls.value} order's time in force must be day or gtc, not {tif.value}"
    elif cls in (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO) and request.extended_hours:
        why = f"a {cls.value} order cannot trade in extended hours"
    elif cls is OrderClass.OCO and otype is not OrderType.LIMIT:
        why = f"an OCO order's type must be limit (its take-profit), not {otype.value}"
    else:
        for label, v in (("qty", qty if request.notional is None else None), ("notional", request.notional)):
            if v is not None and _decimals(v) > MAX_QTY_DECIMALS:
                why = f"{label} has {_decimals(v)} decimals; Alpaca takes at most {MAX_QTY_DECIMALS}"
                nums[label] = _s(v)
                break
    if why:
        return CheckResult("order_type", False, why, nums)
    return CheckResult("order_type", True, "accepted by Alpaca", nums)


def _price_increment(request: OrderRequest, crypto: bool) -> CheckResult:
    """Sub-penny rule for stock prices: at most 2 decimals at $1.00 and above, 4 below."""
    if crypto:
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
                {label: _s(price), "increment": _s(step)},
            )
    return CheckResult("price_increment", True, "prices on the tick")


def _legs(request: OrderRequest, market: Decimal | None) -> CheckResult:
    """Bracket / OCO / OTO legs as Alpaca accepts them ("Orders at Alpaca": bracket, OCO, OTO and
    "Threshold on stop price of stop-loss orders")."""
    cls = request.order_class
    buy = request.side is OrderSide.BUY
    tp = request.take_profit.limit_price if request.take_profit is not None else None
    sl = request.stop_loss.stop_price if request.stop_loss is not None else None
    nums: dict[str, str] = {"take_profit": _s(tp), "stop_loss": _s(sl), "market": _s(market)}
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
            nums["base_price"] = _s(tp_base)
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
        if exits_long:
            limit = min(bases) - CENT
            ok = sl <= limit
        else:
            limit = max(bases) + CENT
            ok = sl >= limit
        if not ok:
            nums["stop_loss_limit"] = _s(limit)
            return CheckResult(
                "order_legs",
                False,
                "stop-loss must be at least 0.01 "
                + ("below" if exits_long else "above")
                + " the base price (entry limit, take-profit or market)",
                nums,
            )
    return CheckResult("order_legs", True, f"{cls.value} legs on the right sides", nums)


class RiskGate:
    """See the module docstring. ``on_breach(state, reason)`` is told of loss-limit breaches."""

    def __init__(
        self,
        limits: RiskLimits | None = None,
        *,
        on_breach: Callable[[TradingState, str], None] | None = None,
    ) -> None:
        self.limits = limits or RiskLimits()
        self._on_breach = on_breach
        self._recent: deque[datetime] = deque()
        self._last_orders: deque[tuple[datetime, str, OrderSide, Decimal | None, Decimal | None]] = deque()
        self._precompute()

    def _precompute(self) -> None:
        lim = self.limits
        self._band_up = 1 + lim.price_band_pct / HUNDRED
        self._band_down = 1 - lim.price_band_pct / HUNDRED
        self._dd = lim.max_drawdown_pct / HUNDRED
        self._dup_s = float(lim.duplicate_window_s)
        self._breach_state = TradingState(lim.loss_breach_state)

    def set_limits(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._precompute()

    # --- the gate --------------------------------------------------------------------------------
    def preview(self, request: OrderRequest, ctx: RiskContext) -> RiskReport:
        """The same checks as :meth:`check`, with no side effects: a passing order is not counted
        for the rate and duplicate guards and a loss-limit breach is not reported (the order
        ticket runs this while the trader types)."""
        return self.check(request, ctx, record=False)

    def check(self, request: OrderRequest, ctx: RiskContext, *, record: bool = True) -> RiskReport:
        lim = self.limits
        sym = request.symbol
        pos = ctx.positions.get(sym, ZERO)
        quote = ctx.prices.quote(sym)
        stale = ctx.prices.is_stale(sym)
        last = ctx.prices.last_price(sym)
        buy = request.side is OrderSide.BUY
        otype = request.type
        lp = request.limit_price
        sp = request.stop_price
        crypto = is_crypto(sym)
        has_quote = quote is not None and quote.ask > 0 and quote.bid > 0
        far = (quote.ask if buy else quote.bid) if has_quote and quote is not None else last
        # the market price Alpaca measures stops and legs against: the last trade, else the mid
        base = last if last is not None else (quote.mid if has_quote and quote is not None else None)
        # reference price: what the order would trade at once it works
        ref: Decimal | None
        if otype is OrderType.LIMIT and lp is not None:
            ref = lp
        elif otype is OrderType.STOP and sp is not None:
            ref = sp
        elif otype is OrderType.STOP_LIMIT and sp is not None and lp is not None:
            ref = max(sp, lp)
        elif otype is OrderType.TRAILING_STOP and far is not None:
            if request.trail_price is not None:
                ref = far + request.trail_price if buy else far - request.trail_price
            elif request.trail_percent is not None:
                ref = far * (
                    1 + request.trail_percent / HUNDRED if buy else 1 - request.trail_percent / HUNDRED
                )
            else:
                ref = far
        else:
            ref = far
        qty = request.qty
        if qty is None and request.notional is not None and ref:
            qty = request.notional / ref
        q = qty or ZERO
        signed = q if buy else -q
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
        out: list[CheckResult] = []
        add = out.append

        # 1 trading state (and the post-reconnect order gate)
        st = ctx.trading_state
        if ctx.order_gate is not None and not ctx.order_gate.allowed:
            add(
                CheckResult(
                    "trading_state", False, f"orders paused: {ctx.order_gate.reason}", {"state": st.value}
                )
            )
        elif st is TradingState.ACTIVE:
            add(CheckResult("trading_state", True, "ACTIVE", {"state": st.value}))
        elif st is TradingState.REDUCING:
            add(
                CheckResult(
                    "trading_state",
                    reducing,
                    "REDUCING: only orders that reduce a position"
                    if not reducing
                    else "REDUCING: order reduces",
                    {"state": st.value, "position": _s(pos), "order_qty": _s(signed)},
                )
            )
        else:
            add(CheckResult("trading_state", False, f"{st.value}: no new orders", {"state": st.value}))
        if ctx.reduce_only and not reducing:
            add(
                CheckResult(
                    "reduce_only", False, "order marked reduce-only would not reduce", {"position": _s(pos)}
                )
            )

        # 2 symbol lists
        if sym in lim.deny_symbols:
            add(CheckResult("symbol_lists", False, f"{sym} is on the deny list"))
        elif lim.allow_symbols and sym not in lim.allow_symbols:
            add(CheckResult("symbol_lists", False, f"{sym} is not on the allow list"))
        else:
            add(CheckResult("symbol_lists", True, "allowed"))

        # 3 tradable / shortable
        asset = ctx.asset
        opens_short = not buy and post < 0
        if asset is None:
            add(CheckResult("tradable", False, f"no instrument data for {sym} (fail closed)"))
        elif not asset.tradable:
            add(CheckResult("tradable", False, f"{sym} is not tradable"))
        elif opens_short and not (
            asset.shortable and lim.allow_short and (ctx.account is None or ctx.account.shorting_enabled)
        ):
            add(
                CheckResult(
                    "tradable",
                    False,
                    f"{sym}: order would open or increase a short (if every working sell fills)"
                    " and shorting is not allowed",
                    {"position": _s(pos), "working_sells": _s(working_sells), "post_trade": _s(post)},
                )
            )
        else:
            add(CheckResult("tradable", True, "tradable"))

        # 4 market hours vs time in force
        if request.extended_hours and not (
            request.type is OrderType.LIMIT and request.time_in_force is TimeInForce.DAY
        ):
            add(
                CheckResult(
                    "market_hours", False, "extended hours requires a limit order with time in force day"
                )
            )
        elif crypto:
            add(CheckResult("market_hours", True, "crypto trades around the clock"))
        elif ctx.hours is None:
            add(CheckResult("market_hours", False, "no market calendar (fail closed)"))
        else:
            is_open = ctx.hours.is_open(ctx.now)
            ext = ctx.hours.is_extended(ctx.now)
            if not is_open and request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                add(
                    CheckResult(
                        "market_hours",
                        False,
                        f"market closed: {request.time_in_force.value} would expire at once",
                    )
                )
            elif not is_open and ext and not request.extended_hours and request.type is OrderType.MARKET:
                add(CheckResult("market_hours", True, "extended session: market order queues for the open"))
            else:
                add(CheckResult("market_hours", True, "open" if is_open else "queued for the next session"))

        # 4a order type, time in force and class as Alpaca takes them
        add(_order_type(request, crypto, qty))

        # 4b sub-penny prices (stocks: 2 decimals at $1.00 and above, 4 below)
        add(_price_increment(request, crypto))

        # 4c stops on the right side of the market
        if otype is OrderType.STOP or otype is OrderType.STOP_LIMIT:
            if sp is None:
                add(CheckResult("stop_side", False, f"{otype.value} order without a stop price"))
            elif base is None:
                add(CheckResult("stop_side", False, f"no price for {sym} to place the stop (fail closed)"))
            else:
                ok = sp >= base * STOP_MARGIN if buy else sp <= base / STOP_MARGIN
                add(
                    CheckResult(
                        "stop_side",
                        ok,
                        ("buy stop above the market" if buy else "sell stop below the market")
                        if ok
                        else (
                            "a buy stop must be above the market (it would trigger at once)"
                            if buy
                            else "a sell stop must be below the market (it would trigger at once)"
                        ),
                        {"stop_price": _s(sp), "market": _s(base)},
                    )
                )
        else:
            add(CheckResult("stop_side", True, "no stop"))

        # 4d bracket / OCO / OTO legs on the right side
        if request.order_class is OrderClass.SIMPLE:
            add(CheckResult("order_legs", True, "simple order"))
        else:
            add(_legs(request, base))

        # 4e Alpaca's minimum order value
        if crypto:
            minimum: Decimal | None = MIN_CRYPTO_VALUE
        elif request.notional is not None or (qty is not None and qty != qty.to_integral_value()):
            minimum = MIN_STOCK_VALUE
        else:
            minimum = None
        if minimum is None:
            add(CheckResult("min_order_value", True, "whole shares: no minimum value"))
        elif reducing:
            # the reported minimums are for orders that buy or add; closing a small remainder is
            # never blocked here (Alpaca decides)
            add(CheckResult("min_order_value", True, "reduces the position", {"minimum": _s(minimum)}))
        elif notional is None:
            add(CheckResult("min_order_value", False, "no price to value the order (fail closed)"))
        else:
            add(
                CheckResult(
                    "min_order_value",
                    notional >= minimum,
                    "order value vs Alpaca's minimum"
                    if notional >= minimum
                    else f"order value under Alpaca's minimum of ${_s(minimum)}",
                    {"value": _s(notional), "minimum": _s(minimum)},
                )
            )

        # 5 max order qty
        if qty is None:
            add(CheckResult("max_order_qty", False, "no quantity and no price to derive it (fail closed)"))
        else:
            add(
                CheckResult(
                    "max_order_qty",
                    qty <= lim.max_order_qty,
                    "order quantity",
                    {"qty": _s(qty), "limit": _s(lim.max_order_qty)},
                )
            )

        # 6 max order notional (always enforced)
        if notional is None:
            add(CheckResult("max_order_notional", False, f"no price for {sym} (fail closed)"))
        else:
            add(
                CheckResult(
                    "max_order_notional",
                    notional <= lim.max_order_notional,
                    "order notional",
                    {"notional": _s(notional), "limit": _s(lim.max_order_notional)},
                )
            )

        # 7 price band vs NBBO
        if quote is None or quote.bid <= 0 or quote.ask <= 0:
            add(CheckResult("price_band", False, f"no quote for {sym} (fail closed)"))
        elif stale:
            add(
                CheckResult(
                    "price_band",
                    False,
                    f"quote for {sym} is stale (fail closed)",
                    {"quote_ts": quote.ts.isoformat()},
                )
            )
        elif otype is OrderType.STOP_LIMIT and lp is not None and sp is not None:
            # once elected the order is a limit at lp: the fat-finger band is measured from the stop
            bound = sp * (self._band_up if buy else self._band_down)
            ok = lp <= bound if buy else lp >= bound
            add(
                CheckResult(
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
                        "limit_price": _s(lp),
                        "stop": _s(sp),
                        "max" if buy else "min": _s(bound),
                        "band_pct": _s(lim.price_band_pct),
                    },
                )
            )
        elif lp is not None:
            if buy:
                bound = quote.ask * self._band_up
                ok = lp <= bound
                add(
                    CheckResult(
                        "price_band",
                        ok,
                        "buy limit vs ask" if ok else "buy limit too far through the ask (fat finger)",
                        {
                            "limit_price": _s(lp),
                            "ask": _s(quote.ask),
                            "max": _s(bound),
                            "band_pct": _s(lim.price_band_pct),
                        },
                    )
                )
            else:
                bound = quote.bid * self._band_down
                ok = lp >= bound
                add(
                    CheckResult(
                        "price_band",
                        ok,
                        "sell limit vs bid" if ok else "sell limit too far through the bid (fat finger)",
                        {
                            "limit_price": _s(lp),
                            "bid": _s(quote.bid),
                            "min": _s(bound),
                            "band_pct": _s(lim.price_band_pct),
                        },
                    )
                )
        else:
            add(
                CheckResult(
                    "price_band",
                    True,
                    "no limit price; NBBO present",
                    {"bid": _s(quote.bid), "ask": _s(quote.ask)},
                )
            )

        # 8 max position (post-trade, worst case with working orders)
        mark = last if last is not None else ref
        post_notional = abs(post) * mark if mark is not None else None
        if reducing:
            add(
                CheckResult(
                    "max_position",
                    True,
                    "reduces the position",
                    {
                        "position": _s(pos),
                        "working_buys" if buy else "working_sells": _s(
                            working_buys if buy else working_sells
                        ),
                        "post_trade": _s(pos + signed),
                    },
                )
            )
        elif post_notional is None:
            add(CheckResult("max_position", False, f"no price for {sym} (fail closed)"))
        else:
            ok = abs(post) <= lim.max_position_qty and post_notional <= lim.max_position_notional
            add(
                CheckResult(
                    "max_position",
                    ok,
                    "post-trade position if every working order on this side fills",
                    {
                        "position": _s(pos),
                        "working_buys" if buy else "working_sells": _s(
                            working_buys if buy else working_sells
                        ),
                        "post_trade_qty": _s(post),
                        "qty_limit": _s(lim.max_position_qty),
                        "post_trade_notional": _s(post_notional),
                        "notional_limit": _s(lim.max_position_notional),
                    },
                )
            )

        # 9 gross and net exposure (post-trade)
        if mark is None:
            add(CheckResult("exposure", False, f"no price for {sym} (fail closed)"))
        else:
            # worst case per symbol: the larger of all working buys filling and all working sells
            long_wc = pos + working_buys
            short_wc = pos - working_sells
            before = max(abs(long_wc), abs(short_wc))
            after = max(abs(long_wc + q), abs(short_wc)) if buy else max(abs(long_wc), abs(short_wc - q))
            gross = ctx.gross_exposure + (after - before) * mark
            if buy:
                net_before = ctx.net_exposure + ctx.pending_buy_exposure
            else:
                net_before = ctx.net_exposure - ctx.pending_sell_exposure
            net = net_before + signed * mark
            # an order that does not grow an exposure never breaks its limit
            gross_ok = gross <= lim.max_gross_exposure or gross <= ctx.gross_exposure
            net_ok = abs(net) <= lim.max_net_exposure or abs(net) <= abs(net_before)
            ok = reducing or (gross_ok and net_ok)
            add(
                CheckResult(
                    "exposure",
                    ok,
                    "post-trade gross and net exposure if every working order on this side fills",
                    {
                        "gross": _s(gross),
                        "gross_limit": _s(lim.max_gross_exposure),
                        "net": _s(net),
                        "net_limit": _s(lim.max_net_exposure),
                    },
                )
            )

        # 10 buying power
        acct = ctx.account
        if acct is None:
            add(CheckResult("buying_power", False, "no account data (fail closed)"))
        elif acct.trading_blocked or acct.account_blocked:
            add(CheckResult("buying_power", False, "the broker blocks trading on this account"))
        elif reducing:
            add(
                CheckResult(
                    "buying_power", True, "reduces the position", {"buying_power": _s(acct.buying_power)}
                )
            )
        elif notional is None:
            add(CheckResult("buying_power", False, "no price to value the order (fail closed)"))
        else:
            add(
                CheckResult(
                    "buying_power",
                    notional <= acct.buying_power,
                    "order notional vs buying power",
                    {"notional": _s(notional), "buying_power": _s(acct.buying_power)},
                )
            )

        # 11 daily loss and drawdown
        if acct is None:
            add(CheckResult("loss_limits", False, "no account data (fail closed)"))
        else:
            day_pl = acct.equity - acct.last_equity
            peak = max(ctx.peak_equity or acct.equity, acct.equity)
            dd = (peak - acct.equity) / peak if peak > 0 else ZERO
            breach = ""
            if -day_pl >= lim.max_daily_loss:
                breach = f"daily loss {_s(-day_pl)} reached the limit {_s(lim.max_daily_loss)}"
            elif dd >= self._dd:
                breach = f"drawdown {_s(dd * HUNDRED)}% reached the limit {_s(lim.max_drawdown_pct)}%"
            if breach and record and self._on_breach is not None:
                self._on_breach(self._breach_state, breach)
            ok = not breach or reducing
            add(
                CheckResult(
                    "loss_limits",
                    ok,
                    breach or "within daily loss and drawdown limits",
                    {
                        "day_pl": _s(day_pl),
                        "max_daily_loss": _s(lim.max_daily_loss),
                        "drawdown_pct": _s(dd * HUNDRED),
                        "max_drawdown_pct": _s(lim.max_drawdown_pct),
                    },
                )
            )

        # 12 max open orders
        add(
            CheckResult(
                "max_open_orders",
                ctx.open_orders < lim.max_open_orders,
                "open orders",
                {"open": str(ctx.open_orders), "limit": str(lim.max_open_orders)},
            )
        )

        # 13 order rate per minute
        now = ctx.now
        recent = self._recent
        while recent and (now - recent[0]).total_seconds() >= 60:
            recent.popleft()
        add(
            CheckResult(
                "order_rate",
                len(recent) < lim.max_orders_per_minute,
                "orders in the last minute",
                {"count": str(len(recent)), "limit": str(lim.max_orders_per_minute)},
            )
        )

        # 14 duplicate-order guard
        last_orders = self._last_orders
        while last_orders and (now - last_orders[0][0]).total_seconds() > self._dup_s:
            last_orders.popleft()
        dup = any(
            o[1] == sym and o[2] is request.side and o[3] == qty and o[4] == request.limit_price
            for o in last_orders
        )
        add(
            CheckResult(
                "duplicate_order",
                not dup,
                "same symbol/side/qty/price just sent" if dup else "not a duplicate",
                {"window_s": _s(lim.duplicate_window_s)},
            )
        )

        report = RiskReport(tuple(out))
        if record and report.passed:
            recent.append(now)
            last_orders.append((now, sym, request.side, qty, request.limit_price))
        return report
