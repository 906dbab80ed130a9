"""The order ticket's form as data: what it offers per asset class and order type, and how the typed
text becomes an :class:`OrderRequest` or an error on the field that is wrong. No Qt here.

Alpaca's rules encoded (docs/alpaca-rules.md, each with its source):

- Crypto takes market, limit and stop_limit orders, time in force ``gtc`` or ``ioc`` only, simple
  orders only ("For Crypto Trading, Alpaca supports the following Time-In-Force designations: gtc,
  and ioc", Alpaca docs "Orders", Time in Force). The ticket defaults crypto to ``gtc``.
- ``opg`` and ``cls`` go with market or limit orders; a trailing stop takes ``day`` or ``gtc``;
  bracket, OCO and OTO take ``day`` or ``gtc``; extended hours take limit ``day`` orders only.
- An OCO is an exit: two orders on the same side, the take-profit a limit (``take_profit.limit_price``)
  on the profitable side and the stop-loss (``stop_loss.stop_price``, optional ``limit_price``) on the
  losing side; ``type`` is ``limit`` and the order's limit price is the take-profit's, so the ticket
  sends no separate ``limit_price`` (Alpaca docs "Orders", OCO Orders; alpaca-py #401 and PR #489).
  The stop must be at least 0.01 below (a sell's) the take-profit's limit (Alpaca docs "Orders",
  Threshold on stop price of stop-loss orders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import OrderLegSpec, OrderRequest
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, is_crypto, normalize_symbol

CENT = Decimal("0.01")
ZERO = Decimal(0)


class AmountKind(StrEnum):
    QTY = "qty"
    NOTIONAL = "notional"


class TrailKind(StrEnum):
    PRICE = "price"
    PERCENT = "percent"


TYPE_LABELS: dict[OrderType, str] = {
    OrderType.MARKET: "Market",
    OrderType.LIMIT: "Limit",
    OrderType.STOP: "Stop",
    OrderType.STOP_LIMIT: "Stop limit",
    OrderType.TRAILING_STOP: "Trailing stop",
}
CLASS_LABELS: dict[OrderClass, str] = {
    OrderClass.SIMPLE: "Simple",
    OrderClass.BRACKET: "Bracket (entry + exits)",
    OrderClass.OCO: "OCO exit (take profit / stop loss)",
    OrderClass.OTO: "OTO (entry + one exit)",
}
TIF_LABELS: dict[TimeInForce, str] = {
    TimeInForce.DAY: "Day",
    TimeInForce.GTC: "Good till canceled (GTC)",
    TimeInForce.OPG: "At the open (OPG)",
    TimeInForce.CLS: "At the close (CLS)",
    TimeInForce.IOC: "Immediate or cancel (IOC)",
    TimeInForce.FOK: "Fill or kill (FOK)",
}
CRYPTO_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT)
CRYPTO_TIFS = (TimeInForce.GTC, TimeInForce.IOC)
DAY_GTC = (TimeInForce.DAY, TimeInForce.GTC)
AUCTION_TYPES = (OrderType.MARKET, OrderType.LIMIT)
LEGGED = (OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO)


def order_types(crypto: bool) -> list[OrderType]:
    return list(CRYPTO_TYPES) if crypto else list(OrderType)


def order_classes(crypto: bool) -> list[OrderClass]:
    return [OrderClass.SIMPLE] if crypto else list(CLASS_LABELS)


def tif_choices(crypto: bool, otype: OrderType, oclass: OrderClass, extended: bool) -> list[TimeInForce]:
    """The times in force Alpaca takes for this asset class, type and class (module docstring)."""
    if crypto:
        return list(CRYPTO_TIFS)
    if extended or oclass in LEGGED or otype is OrderType.TRAILING_STOP:
        return [TimeInForce.DAY] if extended else list(DAY_GTC)
    tifs = [TimeInForce.DAY, TimeInForce.GTC]
    if otype in AUCTION_TYPES:
        tifs += [TimeInForce.OPG, TimeInForce.CLS]
    return [*tifs, TimeInForce.IOC, TimeInForce.FOK]


def default_tif(crypto: bool) -> TimeInForce:
    return TimeInForce.GTC if crypto else TimeInForce.DAY


def quantity_unit(symbol: str) -> str:
    """ "shares" for a stock, the coin for a crypto pair (``BTC/USD`` → ``BTC``)."""
    return symbol.split("/", 1)[0] if is_crypto(symbol) else "shares"


@dataclass(frozen=True, slots=True)
class Market:
    """The quote the ticket measures legs against (None where unknown)."""

    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None

    @property
    def reference(self) -> Decimal | None:
        """Alpaca's base for stops and legs: the last trade, else the mid."""
        if self.last is not None:
            return self.last
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return None


@dataclass(frozen=True, slots=True)
class FormValues:
    """What the ticket's fields hold (text as typed)."""

    symbol: str
    side: OrderSide
    amount_kind: AmountKind
    amount: str
    type: OrderType
    tif: TimeInForce
    order_class: OrderClass = OrderClass.SIMPLE
    limit: str = ""
    stop: str = ""
    trail_kind: TrailKind = TrailKind.PRICE
    trail: str = ""
    extended: bool = False
    take_profit: str = ""
    stop_loss: str = ""
    stop_loss_limit: str = ""


@dataclass(frozen=True, slots=True)
class TicketState:
    """The outcome of reading the form: a request, or the errors per field."""

    request: OrderRequest | None
    errors: dict[str, str] = field(default_factory=dict)


def positive(errors: dict[str, str], key: str, text: str, what: str, *, required: bool) -> Decimal | None:
    """The field's number when it is one above zero; otherwise None, with the problem in ``errors``."""
    text = text.strip()
    if not text:
        if required:
            errors[key] = f"{what} is required"
        return None
    try:
        value = to_decimal(text, field=what)
    except InvalidNumberError as exc:
        errors[key] = str(exc)
        return None
    if value <= 0:
        errors[key] = f"{what} must be greater than zero"
        return None
    return value


def read(values: FormValues, market: Market | None = None, position: Decimal = ZERO) -> TicketState:
    """Validate every field; the request, or the error per field (never raises).

    ``market`` and ``position`` (signed, in the symbol) let the legs be checked against the side
    of the market they must be on, each error on its own field."""
    errors: dict[str, str] = {}
    symbol = ""
    try:
        symbol = normalize_symbol(values.symbol)
    except InvalidSymbolError as exc:
        errors["symbol"] = str(exc)
    otype, oclass, tif = values.type, values.order_class, values.tif
    notional = values.amount_kind is AmountKind.NOTIONAL
    amount = positive(errors, "amount", values.amount, "notional" if notional else "quantity", required=True)
    oco = oclass is OrderClass.OCO
    needs_limit = otype in (OrderType.LIMIT, OrderType.STOP_LIMIT) and not oco
    needs_stop = otype in (OrderType.STOP, OrderType.STOP_LIMIT)
    limit = (
        positive(errors, "limit", values.limit, "limit price", required=needs_limit) if needs_limit else None
    )
    stop = positive(errors, "stop", values.stop, "stop price", required=True) if needs_stop else None
    trail_price = trail_pct = None
    if otype is OrderType.TRAILING_STOP:
        trail = positive(errors, "trail", values.trail, "trail", required=True)
        if trail is not None and values.trail_kind is TrailKind.PERCENT:
            if trail >= 100:
                errors["trail"] = "trail percent must be below 100"
            trail_pct = trail
        else:
            trail_price = trail
    if notional and otype is not OrderType.MARKET:
        errors["amount"] = "a notional amount needs a market order"
    crypto = bool(symbol) and is_crypto(symbol)
    if symbol and tif not in tif_choices(crypto, otype, oclass, values.extended):
        errors["tif"] = (
            "crypto orders take gtc or ioc"
            if crypto
            else f"{TIF_LABELS[tif]} is not offered for this order type and class"
        )
    take_profit = stop_loss = None
    if oclass is not OrderClass.SIMPLE:
        legs = _Legs(values, errors, market, notional)
        take_profit, stop_loss = legs.read(limit, amount, position)
    if errors or amount is None:
        return TicketState(None, errors)
    try:
        request = OrderRequest(
            symbol=symbol,
            side=values.side,
            type=otype,
            time_in_force=tif,
            qty=None if notional else amount,
            notional=amount if notional else None,
            limit_price=limit,
            stop_price=stop,
            trail_price=trail_price,
            trail_percent=trail_pct,
            extended_hours=values.extended,
            order_class=oclass,
            take_profit=take_profit,
            stop_loss=stop_loss,
        )
    except ValueError as exc:
        return TicketState(None, {"amount": str(exc)})
    return TicketState(request, {})


@dataclass(slots=True)
class _Legs:
    """The take-profit and stop-loss of a bracket, OCO or OTO order, each checked on its own field."""

    values: FormValues
    errors: dict[str, str]
    market: Market | None
    notional: bool

    def read(
        self, entry: Decimal | None, amount: Decimal | None, position: Decimal
    ) -> tuple[OrderLegSpec | None, OrderLegSpec | None]:
        v, errors = self.values, self.errors
        oclass = v.order_class
        both = oclass is not OrderClass.OTO
        tp = positive(errors, "take_profit", v.take_profit, "take-profit limit", required=both)
        sl = positive(errors, "stop_loss", v.stop_loss, "stop-loss stop", required=both)
        sl_limit = positive(errors, "stop_loss_limit", v.stop_loss_limit, "stop-loss limit", required=False)
        if oclass is OrderClass.OTO and tp is None and sl is None and "take_profit" not in errors:
            errors["take_profit"] = "an OTO order needs a take-profit or a stop-loss leg"
        if oclass is OrderClass.OTO and tp is not None and sl is not None:
            errors["stop_loss"] = "an OTO order takes one exit: a take-profit or a stop-loss, not both"
        if oclass is OrderClass.BRACKET and v.type not in (OrderType.MARKET, OrderType.LIMIT):
            errors["type"] = "a bracket's entry is a market or limit order"
        if self.notional:
            errors["amount"] = f"{oclass.value} orders need a quantity"
        if oclass is OrderClass.OCO:
            exits_long = v.side is OrderSide.SELL
            self._oco_position(exits_long, amount, position)
            base = None
        else:
            exits_long = v.side is OrderSide.BUY
            base = entry
        self._sides(exits_long, base, tp, sl)
        take_profit = OrderLegSpec(limit_price=tp) if tp is not None else None
        stop_loss = OrderLegSpec(stop_price=sl, limit_price=sl_limit) if sl is not None else None
        return take_profit, stop_loss

    def _oco_position(self, exits_long: bool, amount: Decimal | None, position: Decimal) -> None:
        """An OCO only exits: it trades the side that closes the position, at most its size."""
        if position == 0:
            self.errors["side"] = "an OCO order exits a position, and there is none in this symbol"
        elif (position > 0) != exits_long:
            held = "long" if position > 0 else "short"
            closing = "sell" if position > 0 else "buy"
            self.errors["side"] = f"an OCO exits the {held} position: {closing}"
        elif amount is not None and amount > abs(position) and "amount" not in self.errors:
            self.errors["amount"] = f"more than the {abs(position).normalize():f} held"

    def _sides(self, exits_long: bool, entry: Decimal | None, tp: Decimal | None, sl: Decimal | None) -> None:
        """Take-profit on the profitable side, stop-loss on the losing side (of the entry, else the
        market) and 0.01 or more apart."""
        errors = self.errors
        ref = entry if entry is not None else (self.market.reference if self.market else None)
        where = "the entry" if entry is not None else "the market"
        up, down = ("above", "below") if exits_long else ("below", "above")
        if ref is not None:
            shown = f"{ref.normalize():f}"
            if tp is not None and (tp <= ref if exits_long else tp >= ref) and "take_profit" not in errors:
                errors["take_profit"] = f"the take-profit must be {up} {where} ({shown})"
            if sl is not None and (sl >= ref if exits_long else sl <= ref) and "stop_loss" not in errors:
                errors["stop_loss"] = f"the stop-loss must be {down} {where} ({shown})"
        apart = tp is not None and sl is not None and (sl > tp - CENT if exits_long else sl < tp + CENT)
        if apart and "stop_loss" not in errors and "take_profit" not in errors:
            errors["stop_loss"] = f"the stop-loss must be at least 0.01 {down} the take-profit"
