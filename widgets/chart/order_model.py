"""What the chart draws for a working order: one :class:`OrderLine` per price the order works at.

Qt-free and pure: :func:`lines_for` turns the order store's view of one order (plus the broker's
last snapshot of it, which carries the order class, the trail and the trailing stop's current stop)
into lines; :func:`round_to_tick` rounds a dragged or clicked price to a price Alpaca accepts.

- limit: its limit price; stop: its stop price; stop-limit: two lines (stop and limit);
- trailing stop: the current stop price the broker last reported (``stop_price``, else
  ``hwm`` ∓ trail), labelled with its trail; it cannot be dragged (a trail is not a price);
- bracket / OCO / OTO: the take-profit leg (a limit) and the stop-loss leg (a stop or stop-limit)
  are labelled TP and SL; an OCO's parent order is its take-profit leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType
from services.domain.models import Order
from services.domain.money import decimal_str

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE = Decimal(1)


class PriceField(StrEnum):
    """Which price of the order a line shows (and a drag replaces)."""

    LIMIT = "limit_price"
    STOP = "stop_price"
    TRAIL = "trail"


class LineRole(StrEnum):
    """What the line is to the trader; its label's type word."""

    LIMIT = "LMT"
    STOP = "STP"
    STOP_LIMIT = "STP LMT"
    TRAIL = "TRAIL"
    TAKE_PROFIT = "TP"
    STOP_LOSS = "SL"


# pending_* states: the broker has not yet said what the order works at now
PENDING = frozenset({OrderStatus.PENDING_NEW, OrderStatus.PENDING_REPLACE, OrderStatus.PENDING_CANCEL})


@dataclass(frozen=True, slots=True)
class Trailing:
    """A trailing stop as the broker last reported it: its mark (``hwm``: the high for a sell, the
    low for a buy), its trail, and when it was reported (epoch ns)."""

    side: OrderSide
    mark: Decimal
    trail_price: Decimal | None
    trail_percent: Decimal | None
    as_of_ns: int

    def stop(self, mark: Decimal) -> Decimal | None:
        """The stop for ``mark``: the mark less the trail for a sell, plus the trail for a buy."""
        sign = -1 if self.side is OrderSide.SELL else 1
        if self.trail_price is not None:
            return mark + sign * self.trail_price
        if self.trail_percent is not None:
            return mark * (1 + sign * self.trail_percent / 100)
        return None

    def beyond(self, price: Decimal, mark: Decimal) -> bool:
        """Whether a print at ``price`` makes a new mark past ``mark`` (Alpaca tracks hwm on prints)."""
        return price > mark if self.side is OrderSide.SELL else price < mark


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One price line of one working order. ``order_key`` is the engine's key for the order."""

    order_key: str
    symbol: str
    side: OrderSide
    qty: Decimal | None
    role: LineRole
    field: PriceField
    price: Decimal
    status: OrderStatus
    trail: str = ""  # "1.5" (price) or "0.5%" for a trailing stop
    pair: bool = False  # one of a stop-limit's two lines: the label says which price it is
    trailing: Trailing | None = None  # a trailing stop's trail, as last reported
    estimated: bool = False  # a trailing stop moved by the prints seen since that report

    @property
    def key(self) -> str:
        return f"{self.order_key}:{self.field.value}"

    @property
    def draggable(self) -> bool:
        return self.field is not PriceField.TRAIL and self.status not in PENDING

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    def label(self, price: Decimal | None = None) -> str:
        """``BUY 100 LMT 187.50``; a stop-limit says which price (``SELL 10 STP LMT stop 180.00``),
        a trailing stop its trail (``SELL 10 TRAIL 1.50 stop 186.40``)."""
        qty = decimal_str(self.qty) if self.qty is not None else "?"
        p = format_price(self.price if price is None else price)
        what = self.role.value
        if self.pair:
            what += " limit" if self.field is PriceField.LIMIT else " stop"
        elif self.role is LineRole.TRAIL:
            what += f" {self.trail} stop" + (" ≈" if self.estimated else "")
        text = f"{self.side.value.upper()} {qty} {what} {p}"
        if self.pending:
            text += f" ({self.status.value.replace('_', ' ')})"
        return text


def format_price(p: Decimal) -> str:
    """Two decimals at $1 and above, four below (Alpaca's price increments), more if the price has them."""
    places = 2 if abs(p) >= ONE else 4
    exponent = p.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        places = -exponent
    return f"{p:,.{places}f}"


def tick_size(price: Decimal, increment: Decimal | None = None) -> Decimal:
    """The smallest price step Alpaca accepts at ``price``: the instrument's own increment when the
    broker gives one (crypto), else 0.01 at $1.00 and above and 0.0001 below (sub-penny rule)."""
    if increment is not None and increment > 0:
        return increment
    return PENNY if price >= ONE else SUB_PENNY


def round_to_tick(price: float | Decimal, increment: Decimal | None = None) -> Decimal:
    """``price`` rounded to the nearest accepted increment (half up); never below one tick."""
    p = Decimal(str(price)) if isinstance(price, float) else price
    tick = tick_size(p, increment)
    rounded = (p / tick).quantize(ONE, rounding=ROUND_HALF_UP) * tick
    return max(rounded, tick).quantize(tick)


def _trail_text(snap: Order, stop: Decimal | None) -> str:
    """The trail as a trader reads it: ``0.5%``, or an amount in the stock's own price steps
    (``0.40`` on a $176 stock, not ``0.4000``)."""
    if snap.trail_percent is not None:
        return f"{decimal_str(snap.trail_percent)}%"
    if snap.trail_price is not None:
        places = 2 if stop is None or stop >= ONE else 4
        exponent = snap.trail_price.normalize().as_tuple().exponent
        if isinstance(exponent, int):
            places = max(places, -exponent)
        return f"{snap.trail_price:,.{places}f}"
    return ""


def trailing(order: Order, snap: Order | None) -> Trailing | None:
    """The trail of a trailing stop as last reported (None without a mark)."""
    src = snap or order
    if src.hwm is None:
        return None
    ts = int(src.updated_at.timestamp() * 1e9)
    return Trailing(order.side, src.hwm, src.trail_price, src.trail_percent, ts)


def trailing_stop_price(order: Order, snap: Order | None) -> Decimal | None:
    """The trailing stop's current stop as the broker last reported it: its ``stop_price``, else the
    high-water mark less the trail (a buy: the low-water mark plus the trail)."""
    src = snap or order
    if src.stop_price is not None:
        return src.stop_price
    trail = trailing(order, snap)
    return trail.stop(trail.mark) if trail is not None else None


def lines_for(order: Order, snap: Order | None = None, *, leg: bool = False) -> list[OrderLine]:
    """The lines of one order (none when it is not working or works at no price).

    ``order``: the store's view (status, remaining quantity, prices); ``snap``: the broker's last
    snapshot of the same order (order class, trail, hwm); ``leg``: a bracket / OCO / OTO exit leg.
    """
    if not order.status.is_open:
        return []
    qty = order.leaves_qty
    if qty is not None and qty <= 0:
        return []
    order_class = snap.order_class if snap is not None else order.order_class
    exit_leg = leg or (order_class is OrderClass.OCO and order.type is OrderType.LIMIT)

    def line(role: LineRole, field: PriceField, price: Decimal | None, **kw: object) -> list[OrderLine]:
        if price is None or price <= 0:
            return []
        return [OrderLine(order.client_order_id, order.symbol, order.side, qty, role, field, price,
                          order.status, **kw)]  # type: ignore[arg-type]  # fmt: skip

    t = order.type
    if t is OrderType.LIMIT:
        return line(LineRole.TAKE_PROFIT if exit_leg else LineRole.LIMIT, PriceField.LIMIT, order.limit_price)
    if t is OrderType.STOP:
        return line(LineRole.STOP_LOSS if exit_leg else LineRole.STOP, PriceField.STOP, order.stop_price)
    if t is OrderType.STOP_LIMIT:
        role = LineRole.STOP_LOSS if exit_leg else LineRole.STOP_LIMIT
        return [
            *line(role, PriceField.STOP, order.stop_price, pair=True),
            *line(role, PriceField.LIMIT, order.limit_price, pair=True),
        ]
    if t is OrderType.TRAILING_STOP:
        stop = trailing_stop_price(order, snap)
        return line(
            LineRole.TRAIL,
            PriceField.TRAIL,
            stop,
            trail=_trail_text(snap or order, stop),
            trailing=trailing(order, snap),
        )
    return []  # a market order works at no price
