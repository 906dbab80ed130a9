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


class Ledger:
    """Cash, positions and fill activities of the single paper account."""

    def __init__(self, *, account_id: str, cash: Decimal) -> None:
        self.account_id = account_id
        self.cash = cash
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

    def buying_power(self, quotes: Mapping[str, NBBO | None], reserved: Decimal) -> Decimal:
        """Cash-account buying power.

        cash, minus what open orders reserve, minus 102.5 % of the value of every short (the short
        sale's proceeds sit in cash but are owed back). Never negative.
        """
        _, short_mv = self.market_values(quotes)
        bp = self.cash + short_mv * SHORT_RESERVE - reserved
        return max(bp, Decimal(0))

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
