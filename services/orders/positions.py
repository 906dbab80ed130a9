"""Where a fill changes a position: :class:`LocalPosition`, one symbol's position as Heron books it.

Positions are computed from fills only (Decimal): signed qty, average price and realized P&L, priced
the way Alpaca prices positions (weighted average intraday, compressed FIFO across trading days; see
the class docstring). :class:`services.orders.store.OrderStore` applies every booked fill here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.domain.enums import OrderSide

log = logging.getLogger(__name__)
ZERO = Decimal(0)
NEW_YORK = ZoneInfo("America/New_York")


def trading_day(ts: datetime) -> date:
    """The trading day a moment belongs to: its calendar date in New York, where Alpaca's day rolls."""
    return ts.astimezone(NEW_YORK).date()


@dataclass(slots=True)
class LocalPosition:
    """One symbol's position as Heron books it, priced the way Alpaca prices positions.

    Alpaca ("Position Average Entry Price Calculation", docs.alpaca.markets) uses a weighted average
    for intraday trades and compressed FIFO for positions carried from previous trading days:

    - during a trading day (New York date) ``avg_price`` is the weighted average: a buy (a sell, for a
      short) blends into it, a closing trade leaves it unchanged and realizes ``(price - avg) * qty``;
    - when a fill of a later day arrives, or :meth:`roll` is told the day changed, the finished day is
      compressed: its opening trades become one lot at their weighted average, its closing quantity
      consumes the lots first in, first out (older days first, the compressed day last), and
      ``avg_price`` becomes the remaining lots' cost over their quantity;
    - realized P&L follows the same lots: a roll restates it by the change of the remaining cost basis,
      so realized + cost basis still equals what the fills paid and received.

    Fills without a time (``at=None``) stay in the current day. ``count_volume=False`` marks an operator
    adjustment (adopting the broker's position): it sets the position, realizes nothing, counts no
    volume, and what it opens is carried as one lot at the adopted price.
    """

    symbol: str
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pl: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    buy_notional: Decimal = ZERO
    sell_notional: Decimal = ZERO
    #: signed cost basis (positive long, negative short); ``avg_price`` is ``cost / qty``
    cost: Decimal = ZERO
    #: the trading day the current intraday figures belong to (None until a timed fill or a roll)
    day: date | None = None
    #: compressed lots carried from previous days, oldest first: (signed qty, cost), one side only
    lots: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    #: ``avg_price`` before the last roll, kept until the next fill (the broker may not have rolled yet)
    previous_day_avg: Decimal | None = None
    # the current day's trades, split into opening and closing quantity per side (+1 long, -1 short)
    _opened_qty: dict[int, Decimal] = field(default_factory=dict)
    _opened_cost: dict[int, Decimal] = field(default_factory=dict)
    _closed_qty: dict[int, Decimal] = field(default_factory=dict)
    # realized P&L and cost basis at the start of the day, and the day's cash flow (sells - buys): a
    # roll restates realized P&L from these exact sums rather than from rounded intraday figures
    _bod_realized: Decimal = ZERO
    _bod_cost: Decimal = ZERO
    _day_cash: Decimal = ZERO

    @property
    def cost_basis(self) -> Decimal:
        """Signed: positive for a long, negative for a short."""
        return self.cost

    def _set(self, qty: Decimal, cost: Decimal) -> None:
        self.qty, self.cost = qty, cost
        self.avg_price = ZERO if qty == 0 else cost / qty

    def apply(
        self,
        side: OrderSide,
        qty: Decimal,
        price: Decimal,
        *,
        count_volume: bool = True,
        at: datetime | None = None,
    ) -> None:
        if at is not None:
            self.roll(trading_day(at))
        self.previous_day_avg = None
        if not count_volume:
            self._adjust(side, qty, price)
            return
        if side is OrderSide.BUY:
            self.bought += qty
            self.buy_notional += qty * price
        else:
            self.sold += qty
            self.sell_notional += qty * price
        self._day_cash -= qty * price * side.sign
        signed = qty * side.sign
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self._open(side.sign, qty, price)
            return
        direction = 1 if self.qty > 0 else -1
        closing = min(qty, abs(self.qty))
        removed = self.cost if closing == abs(self.qty) else self.cost * closing / abs(self.qty)
        self.realized_pl += price * closing * direction - removed
        self._closed_qty[direction] = self._closed_qty.get(direction, ZERO) + closing
        self._set(self.qty - closing * direction, self.cost - removed)
        rest = qty - closing
        if rest > 0:
            self._open(side.sign, rest, price)

    def _open(self, sign: int, qty: Decimal, price: Decimal) -> None:
        self._set(self.qty + qty * sign, self.cost + qty * price * sign)
        self._opened_qty[sign] = self._opened_qty.get(sign, ZERO) + qty
        self._opened_cost[sign] = self._opened_cost.get(sign, ZERO) + qty * price

    def _adjust(self, side: OrderSide, qty: Decimal, price: Decimal) -> None:
        signed = qty * side.sign
        if self.qty != 0 and (self.qty > 0) != (signed > 0) and qty == abs(self.qty):
            self._set(ZERO, ZERO)  # the adjustment that closes
        else:  # the adjustment that opens the adopted position: one carried lot at the adopted price
            self._set(self.qty + signed, self.cost + signed * price)
        self.lots = [] if self.qty == 0 else [(self.qty, self.cost)]
        self._clear_day()

    def _clear_day(self) -> None:
        self._opened_qty.clear()
        self._opened_cost.clear()
        self._closed_qty.clear()
        self._bod_realized, self._bod_cost, self._day_cash = self.realized_pl, self.cost, ZERO

    def compressed(self) -> list[tuple[Decimal, Decimal]]:
        """The lots as they would be if the current day ended now (see the class docstring)."""
        out: list[tuple[Decimal, Decimal]] = []
        for sign in (1, -1):
            side = [(q, c) for q, c in self.lots if (q > 0) == (sign > 0)]
            opened = self._opened_qty.get(sign, ZERO)
            if opened:
                side.append((opened * sign, self._opened_cost[sign] * sign))
            left = self._closed_qty.get(sign, ZERO)
            for q, c in side:
                take = min(left, abs(q))
                left -= take
                if take == abs(q):
                    continue
                out.append((q - take * sign, c - c * take / abs(q)))
        return out

    def compressed_avg(self) -> Decimal:
        """The average price the lots give if the current day ended now (Alpaca's next-day figure)."""
        lots = self.compressed()
        qty = sum((q for q, _ in lots), ZERO)
        return ZERO if qty == 0 else sum((c for _, c in lots), ZERO) / qty

    def roll(self, day: date) -> None:
        """Start trading day ``day``: compress the finished day (no-op for the same or an earlier day)."""
        if self.day is None:
            self.day = day
            return
        if day <= self.day:
            return
        self.day = day
        if not (self._opened_qty or self._closed_qty):
            return
        lots = self.compressed()
        realized = self._bod_realized + self._day_cash
        bod_cost = self._bod_cost
        held = sum((q for q, _ in lots), ZERO)
        if held != self.qty:  # cannot happen with consistent books; keep the weighted figure then
            log.error("%s: compressed lots hold %s, the position %s; lots reset", self.symbol, held, self.qty)
            self.lots = [] if self.qty == 0 else [(self.qty, self.cost)]
            self._clear_day()
            return
        cost = sum((c for _, c in lots), ZERO)
        self.lots = lots
        if self.qty != 0:
            self.previous_day_avg = self.avg_price
        self.realized_pl = realized + cost - bod_cost
        self._set(self.qty, cost)
        self._clear_day()

    def accepted_avg_prices(self) -> set[Decimal]:
        """Average prices the broker may show for this position now: the weighted average, the
        compressed one, and, before any fill today, the figure before the last roll."""
        out = {self.avg_price, self.compressed_avg()}
        if self.previous_day_avg is not None:
            out.add(self.previous_day_avg)
        return out

    def unrealized(self, mark: Decimal | None) -> Decimal | None:
        if mark is None:
            return None
        return mark * self.qty - self.cost
