"""Pre-trade account rules of the paper account, as Alpaca applies them.

Pure functions over the account's state and one order request; the matching engine calls
:func:`check_order` once per new order (after the request is parsed and the position checks are
done, before buying power is reserved) and :func:`short_sale_value` to price what a short sale
holds back. Each refusal is the :class:`ApiError` Alpaca answers with.

Rules and their sources:

- Crypto orders: market, limit and stop_limit only (422 "invalid order type for crypto order");
  a crypto order's cost basis is at least $10 and a crypto buy is paid from cash ("insufficient
  balance for USD (requested: X, available: Y)", 403). Alpaca "Crypto Trading" and the crypto
  notes in "Orders at Alpaca"; the messages are Alpaca's answers quoted in public client code.
- Stocks: a notional order is worth at least $1 (403 "cost basis must be >= minimal amount of
  order 1").
- Short sales: only from a margin account with at least $2,000 equity ("account is not allowed
  to short"), and only in easy-to-borrow assets: a hard-to-borrow or non-shortable asset is
  refused with 403 (Alpaca API v2 "Notes on Orders and Positions"; "Margin and Short Selling").
- Opposite pending orders: with no position, a buy is refused while a short sale is pending and a
  sell while a buy is pending (403; same "Notes on Orders and Positions"). Alpaca answers these
  with its wash-trade message and names the pending order.
- Short sale buying power: MAX(limit price, 1.03 x ask) x qty ("Orders at Alpaca", Buying Power).
- Pattern day trader protection: an order that would make a 4th day trade within 5 business days
  is refused (403, code 40310100) while equity at the last close is under $25,000 (Alpaca
  "Paper Trading"; crypto never counts, "Margin and Short Selling").

Day-trade detection (:func:`count_day_trades`) is deliberately simple: per symbol and New York
trading day, a fill that adds to a position marks the symbol "opened today"; the next fill that
reduces the position counts one day trade and clears the mark (buy, buy, sell, sell is one day
trade; buy, sell, buy, sell is two; selling a position held overnight after buying more today is
one). It reads the FILL activities, so it sees fills only, not orders; partial fills of one order
count like separate fills; Alpaca's 6 % share-of-activity test of the FINRA definition is not
applied (the protection refuses the 4th day trade either way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.domain.calendar import NEW_YORK
from services.exchange.contracts import Instrument
from services.exchange.errors import PDT_PROTECTION, ApiError, forbidden, unprocessable
from services.exchange.ledger import DAYTRADE_MIN_EQUITY, MARGIN_MIN_EQUITY

CRYPTO_ORDER_TYPES = frozenset({"market", "limit", "stop_limit"})
MIN_STOCK_NOTIONAL = Decimal(1)
MIN_CRYPTO_COST_BASIS = Decimal(10)
SHORT_SALE_COLLAR = Decimal("1.03")
PDT_MAX_DAY_TRADES = 3  # the 4th within the window is refused
PDT_WINDOW_BUSINESS_DAYS = 5
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What the rules need to know of one new order (already parsed and validated)."""

    instrument: Instrument
    side: str
    type: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    ask: Decimal
    bid: Decimal
    position_qty: Decimal
    opens_short: bool


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An open order that could block a new one (entries only: no exit legs, no OCO pairs)."""

    id: str
    side: str
    type: str


@dataclass(frozen=True, slots=True)
class AccountState:
    account_type: str  # "margin" | "cash"
    equity: Decimal
    last_equity: Decimal
    cash_available: Decimal  # cash not yet claimed by open crypto buys
    daytrade_count: int
    opened_today: bool  # the order's symbol has an unmatched opening fill today


def _money(value: Decimal) -> str:
    text = format(value.quantize(_CENT, rounding=ROUND_HALF_UP).normalize(), "f")
    return text


def short_sale_value(qty: Decimal, limit_price: Decimal | None, ask: Decimal) -> Decimal:
    """What an opening short sale is checked against buying power for: MAX(limit, 1.03 x ask) x qty;
    a market short is 1.03 x ask x qty ("Orders at Alpaca", Buying Power)."""
    collared = ask * SHORT_SALE_COLLAR
    price = collared if limit_price is None else max(limit_price, collared)
    return qty * price


def check_order_type(inst: Instrument, order_type: str) -> None:
    """Crypto takes market, limit and stop_limit orders only."""
    if inst.is_crypto and order_type not in CRYPTO_ORDER_TYPES:
        raise unprocessable("invalid order type for crypto order")


def check_order(
    order: OrderRequest,
    account: AccountState,
    pending: Iterable[PendingOrder],
) -> None:
    """Raise Alpaca's refusal when an account rule forbids ``order``; return None when it may go."""
    inst = order.instrument
    check_order_type(inst, order.type)
    price = (
        order.limit_price
        if order.limit_price is not None
        else (order.ask if order.side == "buy" else order.bid)
    )
    cost_basis = order.notional if order.notional is not None else (order.qty or Decimal(0)) * price
    if inst.is_crypto:
        closes_all = order.qty is not None and order.side == "sell" and order.qty == abs(order.position_qty)
        if cost_basis < MIN_CRYPTO_COST_BASIS and not closes_all:
            raise forbidden(f"cost basis must be >= minimal amount of order {MIN_CRYPTO_COST_BASIS}")
        if order.side == "buy" and cost_basis > account.cash_available:
            available = max(account.cash_available, Decimal(0))
            raise forbidden(
                f"insufficient balance for USD (requested: {_money(cost_basis)}, "
                f"available: {_money(available)})",
                available=_money(available),
                balance=_money(available),
                symbol="USD",
            )
    elif order.notional is not None and order.notional < MIN_STOCK_NOTIONAL:
        raise forbidden(f"cost basis must be >= minimal amount of order {MIN_STOCK_NOTIONAL}")

    if order.opens_short:
        if account.account_type != "margin" or account.equity < MARGIN_MIN_EQUITY:
            raise forbidden("account is not allowed to short")
        if not (inst.shortable and inst.easy_to_borrow):
            raise forbidden(f'asset "{inst.symbol}" cannot be sold short')

    if order.position_qty == 0:
        for other in pending:
            if other.side != order.side:
                raise forbidden(
                    "potential wash trade detected. use complex orders",
                    reject_reason=f"opposite side {other.type} order exists",
                    existing_order_id=other.id,
                )

    closes = (order.side == "sell" and order.position_qty > 0) or (
        order.side == "buy" and order.position_qty < 0
    )
    if (
        not inst.is_crypto
        and account.account_type == "margin"
        and closes
        and account.opened_today
        and account.daytrade_count >= PDT_MAX_DAY_TRADES
        and account.last_equity < DAYTRADE_MIN_EQUITY
    ):
        raise ApiError(403, PDT_PROTECTION, "trade denied due to pattern day trading protection")


# ---- day trades ---------------------------------------------------------------------------------
def window_start(now: datetime, is_business_day: Callable[[date], bool]) -> date:
    """The first New York date of the 5-business-day window that ends today (today included)."""
    day = now.astimezone(NEW_YORK).date()
    counted = 1 if is_business_day(day) else 0
    for _ in range(40):
        if counted >= PDT_WINDOW_BUSINESS_DAYS:
            break
        day -= timedelta(days=1)
        if is_business_day(day):
            counted += 1
    return day


@dataclass(frozen=True, slots=True)
class DayTrades:
    count: int  # day trades within the window
    opened_today: frozenset[str]  # symbols with an opening fill today not yet matched by a close


def count_day_trades(
    activities: list[dict[str, Any]],
    positions: Mapping[str, Decimal],
    *,
    now: datetime,
    is_business_day: Callable[[date], bool],
    is_crypto: Callable[[str], bool],
) -> DayTrades:
    """Day trades in the 5-business-day window ending today, from FILL activities (oldest first) and
    the signed positions held now. Reads only the activities inside the window (newest first)."""
    start = window_start(now, is_business_day)
    today = now.astimezone(NEW_YORK).date()
    recent: list[tuple[date, str, Decimal]] = []
    for activity in reversed(activities):
        ts = datetime.fromisoformat(activity["transaction_time"].replace("Z", "+00:00"))
        day = ts.astimezone(NEW_YORK).date()
        if day < start:
            break
        symbol = activity["symbol"]
        if is_crypto(symbol):
            continue
        qty = Decimal(activity["qty"])
        recent.append((day, symbol, qty if activity["side"] == "buy" else -qty))
    recent.reverse()
    position: dict[str, Decimal] = {}
    for _, symbol, signed in recent:  # undo the window's fills: the positions at its start
        position[symbol] = position.get(symbol, positions.get(symbol, Decimal(0))) - signed
    count = 0
    opened: dict[str, date] = {}
    for day, symbol, signed in recent:
        before = position[symbol]
        after = before + signed
        reduces = before != 0 and (before > 0) != (signed > 0)
        if reduces:
            if opened.get(symbol) == day:
                count += 1
                del opened[symbol]
            if after != 0 and (after > 0) != (before > 0):  # flipped through zero: opens the rest
                opened[symbol] = day
        else:
            opened[symbol] = day
        position[symbol] = after
    return DayTrades(count, frozenset(s for s, d in opened.items() if d == today))
