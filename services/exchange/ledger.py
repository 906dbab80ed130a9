"""The paper account: cash, signed positions, FILL activities and the equity series.

The ledger only knows fills (symbol, side, qty, price). Prices for valuation come from the caller
(the venue reads them from the MarketView at response time), so the ledger stays pure and testable.

Invariant: ``cash + sum(signed fill qty * fill price)`` over every fill equals the starting cash.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.domain.money import decimal_str
from services.exchange.contracts import NBBO, Instrument

PRICE_QUANTUM = Decimal("0.000000001")
ZERO = Decimal(0)
NEW_YORK = ZoneInfo("America/New_York")
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


def trading_day(ts: datetime) -> date:
    """The trading day a moment belongs to: its calendar date in New York."""
    return ts.astimezone(NEW_YORK).date()


@dataclass(slots=True)
class Holding:
    """One open position, priced the way Alpaca prices positions.

    Alpaca ("Position Average Entry Price Calculation", docs.alpaca.markets) uses a weighted average
    for the trades of the current day and compressed FIFO for what is carried from earlier days:

    - within a trading day (the New York date of the fill) an opening fill blends into the average,
      a closing fill leaves it unchanged and realizes ``(price - avg) * qty`` (mirrored for a short),
      and a fill through zero closes the position at its average and opens the rest at its price;
    - when the day is over, its opening fills become one lot at their weighted average, its closing
      quantity takes the lots first in, first out (carried lots, oldest first, then the day's lot),
      and the average becomes the remaining lots' cost over their quantity;
    - realized P&L follows the lots: at the roll it is restated from the day's exact cash flow, so
      realized P&L + remaining cost basis = what the fills received - what they paid.

    ``qty`` and ``cost`` are signed (negative when short); ``qty`` is never zero while held. A holding
    built from a quantity and an average alone (a position stored before lots were kept) is one lot
    carried from an earlier day.
    """

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    #: signed cost basis; ``avg_entry_price`` is ``cost / qty`` to nine decimals
    cost: Decimal | None = None
    realized_pl: Decimal = ZERO
    #: the trading day the intraday figures belong to (None: not known yet)
    day: date | None = None
    #: lots carried from earlier days, oldest first: (signed qty, signed cost)
    lots: list[tuple[Decimal, Decimal]] | None = None
    #: the day's opening fills per side (+1 long, -1 short): (qty, cost), both unsigned
    opened: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    #: the day's closing quantity per side of the position it closed (unsigned)
    closed: dict[int, Decimal] = field(default_factory=dict)
    #: realized P&L and cost at the start of the day, and the day's cash flow (sells - buys)
    bod_realized: Decimal = ZERO
    bod_cost: Decimal = ZERO
    day_cash: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.cost is None:
            self.cost = self.qty * self.avg_entry_price
        if self.lots is None:
            self.lots = [(self.qty, self.cost)] if self.qty else []
            self.bod_cost = self.cost

    @property
    def cost_basis(self) -> Decimal:
        """Unsigned, as the weighted average gives it today."""
        return abs(self._cost)

    @property
    def _cost(self) -> Decimal:
        assert self.cost is not None
        return self.cost

    def _set(self, qty: Decimal, cost: Decimal) -> None:
        self.qty, self.cost = qty, cost
        self.avg_entry_price = q9(cost / qty) if qty else ZERO

    # ---- fills -------------------------------------------------------------------------------
    def apply(self, side: str, qty: Decimal, price: Decimal, day: date | None = None) -> None:
        """Book one fill of ``qty`` (> 0) at ``price``; ``day`` is its trading day (None: today's)."""
        if day is not None:
            self.roll(day)
        sign = 1 if side == "buy" else -1
        self.day_cash -= sign * qty * price
        if self.qty == 0 or (self.qty > 0) == (sign > 0):
            self._open(sign, qty, price)
            return
        held = -sign  # the side of the position this fill closes
        closing = min(qty, abs(self.qty))
        removed = self._cost if closing == abs(self.qty) else self._cost * closing / abs(self.qty)
        self.realized_pl += held * closing * price - removed
        self.closed[held] = self.closed.get(held, ZERO) + closing
        self._set(self.qty - held * closing, self._cost - removed)
        if qty > closing:
            self._open(sign, qty - closing, price)

    def _open(self, sign: int, qty: Decimal, price: Decimal) -> None:
        self._set(self.qty + sign * qty, self._cost + sign * qty * price)
        q, c = self.opened.get(sign, (ZERO, ZERO))
        self.opened[sign] = (q + qty, c + qty * price)

    def compressed(self) -> list[tuple[Decimal, Decimal, bool]]:
        """The lots as they stand if the day ended now: (signed qty, signed cost, opened today)."""
        out: list[tuple[Decimal, Decimal, bool]] = []
        for sign in (1, -1):
            side = [(q, c, False) for q, c in self.lots or () if (q > 0) == (sign > 0)]
            if sign in self.opened:
                q, c = self.opened[sign]
                side.append((sign * q, sign * c, True))
            left = self.closed.get(sign, ZERO)
            for q, c, today in side:
                take = min(left, abs(q))
                left -= take
                if take < abs(q):
                    out.append((q - sign * take, c - c * take / abs(q), today))
        return out

    def roll(self, day: date) -> None:
        """Start trading day ``day``: compress the finished day (nothing for the same or an earlier day)."""
        if self.day is not None and day <= self.day:
            return
        finished = self.day is not None
        self.day = day
        if not finished or not (self.opened or self.closed):
            return
        lots = self.compressed()
        cost = sum((c for _, c, _ in lots), ZERO)
        self.realized_pl = self.bod_realized + self.day_cash + cost - self.bod_cost
        self.lots = [(q, c) for q, c, _ in lots]
        self._set(self.qty, cost)
        self.opened.clear()
        self.closed.clear()
        self.bod_realized, self.bod_cost, self.day_cash = self.realized_pl, cost, ZERO

    def as_of(self, day: date | None) -> Holding:
        """This holding as Alpaca shows it on ``day``: rolled when its day is over (self otherwise)."""
        if day is None or self.day is None or day <= self.day or not (self.opened or self.closed):
            return self
        view = self.from_record(self.symbol, self.to_record())
        view.roll(day)
        return view

    # ---- persistence ---------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {
            "qty": str(self.qty),
            "cost": str(self.cost),
            "realized_pl": str(self.realized_pl),
            "day": self.day.isoformat() if self.day is not None else None,
            "lots": [[str(q), str(c)] for q, c in self.lots or ()],
            "opened": {str(s): [str(q), str(c)] for s, (q, c) in self.opened.items()},
            "closed": {str(s): str(q) for s, q in self.closed.items()},
            "bod": [str(self.bod_realized), str(self.bod_cost), str(self.day_cash)],
        }

    @classmethod
    def from_record(cls, symbol: str, rec: Mapping[str, Any]) -> Holding:
        qty, cost = Decimal(rec["qty"]), Decimal(rec["cost"])
        bod = [Decimal(x) for x in rec["bod"]]
        h = cls(
            symbol,
            qty,
            q9(cost / qty) if qty else ZERO,
            cost=cost,
            realized_pl=Decimal(rec["realized_pl"]),
            day=date.fromisoformat(rec["day"]) if rec.get("day") else None,
            lots=[(Decimal(q), Decimal(c)) for q, c in rec["lots"]],
            opened={int(s): (Decimal(q), Decimal(c)) for s, (q, c) in rec["opened"].items()},
            closed={int(s): Decimal(q) for s, q in rec["closed"].items()},
        )
        h.bod_realized, h.bod_cost, h.day_cash = bod
        return h


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

    def apply_fill(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, at: datetime | None = None
    ) -> Decimal:
        """Book a fill and return the signed position quantity after it.

        ``at`` is the fill's time: its New York date is the trading day the fill belongs to (see
        :class:`Holding` for the average price and realized P&L). Cash moves by ``qty * price``.
        """
        self.cash -= (qty if side == "buy" else -qty) * price
        held = self.positions.get(symbol)
        if held is None:
            held = self.positions[symbol] = Holding(symbol, ZERO, ZERO)
        held.apply(side, qty, price, trading_day(at) if at is not None else None)
        if held.qty == 0:
            del self.positions[symbol]
        return held.qty

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

    def position_json(
        self,
        h: Holding,
        inst: Instrument,
        nbbo: NBBO | None,
        available: Decimal,
        *,
        today: date | None = None,
    ) -> dict[str, Any]:
        """Alpaca's position object on trading day ``today`` (None: the holding's own day).

        A holding whose day is over is shown compressed, as Alpaca shows it after its
        beginning-of-day job. The symbol of a crypto position has no slash (``BTCUSD``), as Alpaca
        lists it. ``unrealized_intraday_pl`` measures the shares carried from earlier days from the
        last close and the shares opened today from their entry; the day's closing fills take the
        carried shares first (first in, first out).
        """
        h = h.as_of(today)
        price = self.mark(nbbo, h)
        cost_basis = h.cost if h.cost is not None else h.qty * h.avg_entry_price  # signed, like Alpaca
        market_value = h.qty * price
        unrealized = market_value - cost_basis
        plpc = unrealized / abs(cost_basis) if cost_basis else Decimal(0)
        lastday = nbbo.prev_close if nbbo is not None and nbbo.prev_close > 0 else price
        intraday = intraday_base = Decimal(0)
        for qty, cost, opened_today in h.compressed():
            if opened_today:
                intraday += qty * price - cost
                intraday_base += abs(cost)
            else:
                intraday += qty * (price - lastday)
                intraday_base += abs(qty * lastday)
        change = (price - lastday) / lastday if lastday else Decimal(0)
        return {
            "asset_id": inst.asset_id,
            "symbol": position_symbol(inst),
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


def position_symbol(inst: Instrument) -> str:
    """The symbol Alpaca lists a position under: crypto without its slash (``BTCUSD``), while
    orders, fills, assets and data say ``BTC/USD`` (alpaca-py #179, #537)."""
    return inst.symbol.replace("/", "") if inst.is_crypto else inst.symbol
