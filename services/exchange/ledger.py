"""The paper account: cash, signed positions, FILL activities and the equity series.

The ledger only knows fills (symbol, side, qty, price). Prices for valuation come from the caller
(the venue reads them from the MarketView at response time), so the ledger stays pure and testable.

Invariant: ``cash + sum(signed fill qty * fill price)`` over every fill equals the starting cash.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from services.domain.money import decimal_str

from .contracts import NBBO, Instrument

PRICE_QUANTUM = Decimal("0.000000001")
SHORT_RESERVE = Decimal("1.025")  # shorts hold back 102.5 % of their market value (Alpaca paper rule)

# Account classes and margin (Alpaca "Margin and Short Selling"; the account entity's ``multiplier``
# in the trading OpenAPI spec): margin accounts at >= $2,000 equity get 2x Reg T buying power, at
# >= $25,000 (equity at the last close) 4x intraday day-trading buying power; cash accounts get 1x.
ACCOUNT_TYPES = ("margin", "cash")
MARGIN_MIN_EQUITY = Decimal(2000)
DAYTRADE_MIN_EQUITY = Decimal(25000)
REGT_INITIAL = Decimal("0.5")  # Reg T initial margin of a marginable position
MAINTENANCE = Decimal("0.3")  # maintenance margin shown on the account (Alpaca's table: 30 %)
DAYTRADE_MARGIN = Decimal("0.25")  # what 4x intraday leverage leaves of each marginable dollar


def rfc3339(ts: datetime) -> str:
    """UTC timestamp as RFC3339 with a ``Z`` suffix, microsecond precision."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def q9(value: Decimal) -> Decimal:
    return value.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def dstr(value: Decimal | None) -> str | None:
    return decimal_str(value)


@dataclass(slots=True)
class Holding:
    """One open position. ``qty`` is signed (negative when short); never zero while held."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal

    @property
    def cost_basis(self) -> Decimal:
        return abs(self.qty) * self.avg_entry_price


@dataclass(frozen=True, slots=True)
class Margin:
    """The account's margin figures at one instant (see :meth:`Ledger.margin`)."""

    multiplier: int
    equity: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    regt_buying_power: Decimal
    daytrading_buying_power: Decimal
    non_marginable_buying_power: Decimal

    def buying_power(self, reserved: Decimal = Decimal(0)) -> Decimal:
        base = self.daytrading_buying_power if self.multiplier == 4 else self.regt_buying_power
        return max(base - reserved, Decimal(0))


class Ledger:
    """Cash, positions and fill activities of the single paper account."""

    def __init__(
        self,
        *,
        account_id: str,
        cash: Decimal,
        account_type: str = "margin",
        last_equity: Decimal | None = None,
        non_marginable: frozenset[str] = frozenset(),
    ) -> None:
        if account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account type must be one of {', '.join(ACCOUNT_TYPES)}, got {account_type!r}")
        self.account_id = account_id
        self.cash = cash
        self.account_type = account_type
        # Equity at the previous session close (the venue keeps it current); the day-trading
        # multiplier and the PDT rule look at it.
        self.last_equity = cash if last_equity is None else last_equity
        self.non_marginable = non_marginable  # symbols bought with cash only (crypto)
        self.positions: dict[str, Holding] = {}
        self.activities: list[dict[str, Any]] = []

    # ---- fills -------------------------------------------------------------------------------
    def position_qty(self, symbol: str) -> Decimal:
        h = self.positions.get(symbol)
        return h.qty if h is not None else Decimal(0)

    def apply_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Book a fill and return the signed position quantity after it.

        The average entry price is a weighted average while the position grows, unchanged while
        it shrinks, and starts again at the fill price when a fill flips the sign.
        """
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price
        held = self.positions.get(symbol)
        old = held.qty if held is not None else Decimal(0)
        new = old + signed
        if new == 0:
            self.positions.pop(symbol, None)
            return new
        if held is None or old == 0:
            self.positions[symbol] = Holding(symbol, new, price)
        elif (old > 0) == (signed > 0):
            held.avg_entry_price = q9((abs(old) * held.avg_entry_price + qty * price) / abs(new))
            held.qty = new
        elif (old > 0) == (new > 0):
            held.qty = new
        else:  # flipped through zero (the venue's checks prevent this; stay correct anyway)
            held.qty = new
            held.avg_entry_price = price
        return new

    def record_activity(
        self,
        *,
        ts: datetime,
        kind: str,
        price: Decimal,
        qty: Decimal,
        side: str,
        symbol: str,
        leaves_qty: Decimal,
        order_id: str,
        cum_qty: Decimal,
        order_status: str,
    ) -> dict[str, Any]:
        activity = {
            "id": f"{ts.strftime('%Y%m%d%H%M%S%f')[:17]}::{uuid.uuid4()}",
            "account_id": self.account_id,
            "activity_type": "FILL",
            "transaction_time": rfc3339(ts),
            "type": kind,
            "price": dstr(price),
            "qty": dstr(qty),
            "side": side,
            "symbol": symbol,
            "leaves_qty": dstr(leaves_qty),
            "order_id": order_id,
            "cum_qty": dstr(cum_qty),
            "order_status": order_status,
        }
        self.activities.append(activity)
        return activity

    # ---- valuation ---------------------------------------------------------------------------
    @staticmethod
    def mark(nbbo: NBBO | None, holding: Holding) -> Decimal:
        """The price a position is valued at: the last trade, else its entry price (no quote yet)."""
        if nbbo is None or nbbo.last <= 0:
            return holding.avg_entry_price
        return nbbo.last

    def market_values(self, quotes: Mapping[str, NBBO | None]) -> tuple[Decimal, Decimal]:
        """(long market value, short market value); the short value is negative."""
        long_mv = Decimal(0)
        short_mv = Decimal(0)
        for sym, h in self.positions.items():
            mv = h.qty * self.mark(quotes.get(sym), h)
            if mv >= 0:
                long_mv += mv
            else:
                short_mv += mv
        return long_mv, short_mv

    def equity(self, quotes: Mapping[str, NBBO | None]) -> Decimal:
        long_mv, short_mv = self.market_values(quotes)
        return self.cash + long_mv + short_mv

    def margin(self, quotes: Mapping[str, NBBO | None]) -> Margin:
        """Equity, margin requirements and every buying-power figure, before open orders.

        - ``multiplier``: 1 for a cash account or a margin account under $2,000 equity; 2 for a
          margin account from $2,000; 4 when the equity at the last close was at least $25,000.
        - Reg T: ``max(equity - initial_margin, 0) * 2`` with 50 % initial margin on marginable
          positions and 100 % on non-marginable ones (crypto).
        - Day trading (multiplier 4): ``4 * max(equity - 25 % of marginable exposure - 100 % of
          non-marginable exposure, 0)``, i.e. four times equity less the exposure already held.
          Alpaca computes it at the start of the day from the last close and decrements it with
          each trade; this continuous form agrees while positions keep their prices.
        - multiplier 1: cash, less 102.5 % of any short (a short left from before equity fell).
        """
        long_mv = short_mv = Decimal(0)
        marginable = non_marginable = Decimal(0)
        for sym, h in self.positions.items():
            mv = h.qty * self.mark(quotes.get(sym), h)
            if mv >= 0:
                long_mv += mv
            else:
                short_mv += mv
            if sym in self.non_marginable:
                non_marginable += abs(mv)
            else:
                marginable += abs(mv)
        equity = self.cash + long_mv + short_mv
        initial = marginable * REGT_INITIAL + non_marginable
        maintenance = marginable * MAINTENANCE + non_marginable
        if self.account_type == "cash" or equity < MARGIN_MIN_EQUITY:
            multiplier = 1
        elif self.last_equity >= DAYTRADE_MIN_EQUITY:
            multiplier = 4
        else:
            multiplier = 2
        cash_bp = max(self.cash + short_mv * SHORT_RESERVE, Decimal(0))
        regt = max(equity - initial, Decimal(0)) * 2 if multiplier > 1 else cash_bp
        daytrading = Decimal(0)
        if multiplier == 4:
            daytrading = max(equity - marginable * DAYTRADE_MARGIN - non_marginable, Decimal(0)) * 4
        return Margin(
            multiplier=multiplier,
            equity=equity,
            long_market_value=long_mv,
            short_market_value=short_mv,
            initial_margin=initial,
            maintenance_margin=maintenance,
            regt_buying_power=regt,
            daytrading_buying_power=daytrading,
            non_marginable_buying_power=max(self.cash, Decimal(0)),
        )

    def buying_power(self, quotes: Mapping[str, NBBO | None], reserved: Decimal) -> Decimal:
        """What new opening orders may still use: the account's buying power (day-trading buying
        power at multiplier 4, Reg T at 2, cash at 1) minus what open orders reserve. Never
        negative."""
        return self.margin(quotes).buying_power(reserved)

    def opened_since(self, since: datetime) -> set[str]:
        """Symbols whose open position did not exist (or had the other sign) at ``since``: the
        FILL activities since then, newest first, are undone from the quantities held now. One
        pass over those activities, however many positions are asked about."""
        stamp = rfc3339(since)
        bought: dict[str, Decimal] = {}
        for activity in reversed(self.activities):
            if activity["transaction_time"] < stamp:
                break
            filled = Decimal(activity["qty"])
            sym = activity["symbol"]
            bought[sym] = bought.get(sym, Decimal(0)) + (filled if activity["side"] == "buy" else -filled)
        opened = set()
        for sym, delta in bought.items():
            held = self.position_qty(sym)
            before = held - delta
            if held != 0 and (before == 0 or (before > 0) != (held > 0)):
                opened.add(sym)
        return opened

    def position_json(
        self,
        h: Holding,
        inst: Instrument,
        nbbo: NBBO | None,
        available: Decimal,
        *,
        opened_today: bool = False,
    ) -> dict[str, Any]:
        """Alpaca's position object. ``opened_today``: the intraday P&L of a position opened today is
        its whole unrealized P&L, as Alpaca reports it (a position carried from an earlier day is
        measured from the last close; shares added to it today are too, a simplification)."""
        price = self.mark(nbbo, h)
        market_value = h.qty * price
        cost_basis = h.qty * h.avg_entry_price  # signed, like Alpaca (negative for shorts)
        unrealized = market_value - cost_basis
        plpc = unrealized / abs(cost_basis) if cost_basis else Decimal(0)
        lastday = nbbo.prev_close if nbbo is not None and nbbo.prev_close > 0 else price
        if opened_today:
            intraday, intraday_base = unrealized, abs(cost_basis)
        else:
            intraday, intraday_base = h.qty * (price - lastday), abs(h.qty * lastday)
        change = (price - lastday) / lastday if lastday else Decimal(0)
        return {
            "asset_id": inst.asset_id,
            "symbol": h.symbol,
            "exchange": inst.exchange,
            "asset_class": inst.asset_class,
            "asset_marginable": inst.marginable,
            "qty": dstr(h.qty),
            "qty_available": dstr(available),
            "avg_entry_price": dstr(h.avg_entry_price),
            "side": "long" if h.qty > 0 else "short",
            "market_value": dstr(q9(market_value)),
            "cost_basis": dstr(q9(cost_basis)),
            "unrealized_pl": dstr(q9(unrealized)),
            "unrealized_plpc": dstr(q9(plpc)),
            "unrealized_intraday_pl": dstr(q9(intraday)),
            "unrealized_intraday_plpc": dstr(q9(intraday / intraday_base if intraday_base else Decimal(0))),
            "current_price": dstr(price),
            "lastday_price": dstr(lastday),
            "change_today": dstr(q9(change)),
        }
