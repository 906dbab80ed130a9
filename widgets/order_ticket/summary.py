"""The ticket's one-line summary of an order (estimated cost, buying power after) and the field a
failed risk check belongs to. No Qt here.

Rounding: money to the cent; a crypto quantity to the asset's ``min_trade_increment`` (Alpaca's
asset entity), a stock quantity as typed. Buying power: Alpaca "does not replenish" buying power
with a sell of a long or a buy to cover "until they have executed", while an opening order takes
its value from it at once (Alpaca docs "Orders", Buying Power), so a reducing order leaves it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from services.domain.models import Asset, OrderRequest
from services.domain.symbols import is_crypto
from services.risk.context import CheckResult, RiskContext
from services.risk.facts import order_facts
from widgets.order_ticket.form import quantity_unit

CENT = Decimal("0.01")
FINEST_QTY = Decimal("0.000000001")  # Alpaca takes at most 9 decimals of quantity


def money(value: Decimal) -> str:
    return f"${value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def round_qty(qty: Decimal, symbol: str, asset: Asset | None) -> Decimal:
    """A crypto quantity down to its trade increment; a stock quantity unchanged."""
    if not is_crypto(symbol):
        return qty
    step = asset.min_trade_increment if asset is not None and asset.min_trade_increment else FINEST_QTY
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def qty_text(qty: Decimal, symbol: str, asset: Asset | None) -> str:
    """``1 share``, ``10 shares``, ``0.5 BTC``: the unit in the singular for exactly one share."""
    rounded = round_qty(qty, symbol, asset).normalize()
    text = f"{rounded:,f}" if rounded >= 1000 else f"{rounded:f}"
    unit = quantity_unit(symbol)
    if unit == "shares" and rounded == 1:
        unit = "share"
    return f"{text} {unit}"


def summary_line(request: OrderRequest, ctx: RiskContext) -> str:
    """E.g. ``Buy 10 shares ≈ $1,001.00 · buying power after $98,999.00``."""
    facts = order_facts(request, ctx)
    side = request.side.value.capitalize()
    amount = (
        qty_text(facts.qty, request.symbol, ctx.asset)
        if facts.qty is not None
        else f"{money(request.notional or Decimal(0))} of {request.symbol}"
    )
    if facts.notional is None:
        return f"{side} {amount} · no price to estimate its value"
    what = "cost" if request.side.value == "buy" else "value"
    head = f"{side} {amount} · est. {what} {money(facts.notional)}"
    account = ctx.account
    if account is None:
        return f"{head} · no account data"
    if facts.reducing:
        return f"{head} · buying power {money(account.buying_power)} (reduces the position)"
    return f"{head} · buying power after {money(account.buying_power - facts.notional)}"


#: money figures in the checks' numbers: shown to the cent
MONEY_KEYS = frozenset(
    {"buying_power", "day_pl", "max_daily_loss", "gross", "gross_limit", "net", "net_limit", "notional",
     "notional_limit", "post_trade_notional", "value", "minimum"}
)  # fmt: skip
QTY_KEYS = frozenset({"qty", "order_qty", "position", "post_trade", "post_trade_qty", "working_sells"})
FINE = Decimal("0.000001")
SUB_CENT = Decimal("0.0001")
#: a band's bounds, rounded to the tick inside the band: the highest a buy may pay, the lowest a sell
#: may take (a price band times a percentage is rarely on the tick)
BOUND_ROUNDING = {"max": ROUND_FLOOR, "min": ROUND_CEILING}


def tick(price: Decimal, symbol: str, asset: Asset | None) -> Decimal | None:
    """The symbol's price step: a stock's sub-penny rule (0.01 at $1.00 and above, 0.0001 below;
    docs/alpaca-rules.md "Prices"), a crypto asset's ``price_increment`` when known."""
    if is_crypto(symbol):
        return asset.price_increment if asset is not None and asset.price_increment else None
    return CENT if abs(price) >= 1 else SUB_CENT


def number_text(key: str, text: str, symbol: str, asset: Asset | None) -> str:
    """A check's number as the ticket shows it: money to the cent, a crypto quantity to its
    increment, a band's bound to the symbol's tick (inside the band), anything else with more than
    six decimals to six (prices keep their ticks)."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        return text
    if not value.is_finite():
        return text
    if key in MONEY_KEYS:
        return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)}"
    if key in QTY_KEYS:
        value = round_qty(value, symbol, asset)
    step = tick(value, symbol, asset) if key in BOUND_ROUNDING else None
    if step is not None:
        value = (value / step).to_integral_value(rounding=BOUND_ROUNDING[key]) * step
    exp = value.as_tuple().exponent
    if isinstance(exp, int) and exp < -6:
        value = value.quantize(FINE, rounding=ROUND_HALF_UP)
    return f"{value.normalize():f}" if value == value.to_integral_value() else f"{value:f}"


#: The form field a failed check is about (the rest stay in the pre-check list only).
CHECK_FIELDS = {
    "price_band": "limit",
    "stop_side": "stop",
    "max_order_qty": "amount",
    "max_order_notional": "amount",
    "max_position": "amount",
    "buying_power": "amount",
    "min_order_value": "amount",
    "order_type": "type",
    "symbol_lists": "symbol",
    "tradable": "symbol",
}
PRICE_FIELDS = {
    "limit_price": "limit",
    "stop_price": "stop",
    "take_profit.limit_price": "take_profit",
    "stop_loss.stop_price": "stop_loss",
    "stop_loss.limit_price": "stop_loss_limit",
}


def explain(failures: Sequence[CheckResult], symbol: str, asset: Asset | None) -> str:
    """The failed checks in one line, their numbers as the pre-check list shows them."""
    lines = []
    for c in failures:
        nums = ", ".join(f"{k}={number_text(k, v, symbol, asset)}" for k, v in c.numbers.items())
        lines.append(f"{c.name}: {c.detail}" + (f" ({nums})" if nums else ""))
    return "; ".join(lines) if lines else "all checks passed"


def field_note(check: CheckResult, symbol: str, asset: Asset | None) -> str:
    """A failed check as its field says it: what is over which limit, with the numbers."""
    n = {k: number_text(k, v, symbol, asset) for k, v in check.numbers.items()}
    if check.name == "max_order_qty" and "limit" in n:
        return f"quantity {n.get('qty', '?')} is over the limit of {n['limit']} per order"
    if check.name == "max_order_notional" and "limit" in n:
        limit = number_text("notional", check.numbers["limit"], symbol, asset)
        return f"order value ${n.get('notional', '?')} is over the limit of ${limit} per order"
    if check.name == "buying_power" and "buying_power" in n:
        return f"order value ${n.get('notional', '?')} is over the buying power ${n['buying_power']}"
    if check.name == "max_position" and "qty_limit" in n:
        return (
            f"position after the order {n.get('post_trade_qty', '?')} (value "
            f"${n.get('post_trade_notional', '?')}) is over the position limit {n['qty_limit']}"
            + (f" / ${n['notional_limit']}" if "notional_limit" in n else "")
        )
    return check.detail


def field_of(check: CheckResult) -> str | None:
    """Which field a failed check belongs to, or None when it is about the order as a whole."""
    if check.name == "price_increment":
        return next((PRICE_FIELDS[k] for k in check.numbers if k in PRICE_FIELDS), "limit")
    if check.name == "order_legs":
        return "stop_loss" if check.detail.startswith("stop-loss") else "take_profit"
    if check.name == "order_type" and "time in force" in check.detail:
        return "tif"
    return CHECK_FIELDS.get(check.name)
