"""RiskGate: fail-closed, explained pre-trade checks.

``check(request, context)`` runs every check in a fixed order and returns a :class:`RiskReport` with
one :class:`CheckResult` per check (name, passed, detail, numbers as decimal strings). Missing data
fails closed: no price, stale quote, no account or no instrument rejects. Cancels never come here.

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
from typing import Protocol

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Account, Asset, OrderRequest, Quote
from services.domain.symbols import is_crypto
from services.risk.limits import RiskLimits

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class PriceSource(Protocol):
    """What the gate needs from market data (``services.marketdata.book.QuoteBook`` provides it)."""

    def quote(self, symbol: str) -> Quote | None: ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def is_stale(self, symbol: str) -> bool: ...

    def prev_close(self, symbol: str) -> Decimal | None: ...


class MarketHours(Protocol):
    """``services.exchange.sessions.MarketCalendar`` provides these."""

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
    gross_exposure: Decimal  # sum |qty * mark| over positions (before this order)
    net_exposure: Decimal  # sum qty * mark
    open_orders: int
    hours: MarketHours | None
    peak_equity: Decimal | None = None
    order_gate: OrderGateLike | None = None
    reduce_only: bool = False


def _s(v: Decimal | int | None) -> str:
    if v is None:
        return "none"
    if isinstance(v, int):
        return str(v)
    return format(v.normalize() if v == v.to_integral() else v, "f")


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
        # reference price: the limit for limit orders, else the far side of the NBBO, else last
        ref: Decimal | None
        if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and request.limit_price is not None:
            ref = request.limit_price
        elif quote is not None and quote.ask > 0 and quote.bid > 0:
            ref = quote.ask if buy else quote.bid
        else:
            ref = last
        qty = request.qty
        if qty is None and request.notional is not None and ref:
            qty = request.notional / ref
        signed = (qty or ZERO) * (1 if buy else -1)
        post = pos + signed
        reducing = qty is not None and pos != 0 and (pos > 0) != buy and qty <= abs(pos)
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
                    f"{sym}: order would open or increase a short and shorting is not allowed",
                    {"position": _s(pos), "post_trade": _s(post)},
                )
            )
        else:
            add(CheckResult("tradable", True, "tradable"))

        # 4 market hours vs time in force
        crypto = is_crypto(sym)
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
        elif request.limit_price is not None:
            lp = request.limit_price
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

        # 8 max position (post-trade)
        mark = last if last is not None else ref
        post_notional = abs(post) * mark if mark is not None else None
        if reducing:
            add(
                CheckResult(
                    "max_position",
                    True,
                    "reduces the position",
                    {"position": _s(pos), "post_trade": _s(post)},
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
                    "post-trade position",
                    {
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
            gross = ctx.gross_exposure - abs(pos) * mark + abs(post) * mark
            net = ctx.net_exposure + signed * mark
            ok = reducing or (gross <= lim.max_gross_exposure and abs(net) <= lim.max_net_exposure)
            add(
                CheckResult(
                    "exposure",
                    ok,
                    "post-trade gross and net exposure",
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
