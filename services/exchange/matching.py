"""Orders and the matching engine of the local exchange (Alpaca paper rules).

Everything here is synchronous and runs on the exchange's event-loop thread. The engine never
does I/O: each operation changes state, marks what changed (``dirty_orders``, ``dirty_positions``,
``new_activities``, ``new_equity``) and queues trade updates in ``outbox``; the venue persists the
changes and only then publishes the updates, so a SIGKILL never loses a fill a client saw.

Order flow (Alpaca docs "Orders"): ``submit`` and ``replace`` only accept an order and queue it in
``pending``; ``match_pending`` runs its first match (IOC/FOK resolve there), and the venue calls it
right after it has answered the request, so the answer is the accepted order and every fill goes
out as a trade update. A notional order keeps ``qty`` null; the quantity its notional buys is fixed
at its first execution and kept in ``notional_qty``.

Fill rules (alpaca-protocol.md §7): an order fills only when marketable against the NBBO, buys at
the ask and sells at the bid (never better than the limit); 10 % of eligible fills are a random
partial fill from the engine's own seeded ``random.Random``; the remainder is re-evaluated on the
next quote. Stops, stop-limits and trailing stops are elected by prints (``on_trade``), never by a
bid/ask touch: a buy elects on a trade at or above its stop, a sell at or below. Once elected a buy
stop on a stock works as a stop-limit with Alpaca's collar (4 % above a stop under $50, 2.5 % at $50
and above); a sell stop works as a market order. Trailing stops track a high-water mark of prints
(sells: the highest; buys: the lowest) since submission.

Brackets and OCO: after the entry fills, the take-profit is ``new`` and the stop-loss ``held``; the
stop-loss becomes ``new`` (and its take-profit is canceled) when a print elects its stop. A partial
take-profit fill shrinks the held stop-loss to the take-profit's remaining quantity.

Buying power: the account's (Ledger.margin: 4x / 2x / 1x by account class and equity), minus what
open orders reserve: buys reserve remaining qty x limit price (stop price for stops, ask x 1.03 for
market and trailing orders, the notional for notional orders); sells that open a short reserve
MAX(limit, 1.03 x ask) x remaining qty (rules.short_sale_value). Exit legs of brackets/OCO reserve
nothing (they close a position). The other pre-trade account rules live in rules.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, normalize_symbol

from . import rules
from .contracts import NBBO, Instrument, MarketView
from .errors import ApiError, forbidden, not_found, unprocessable
from .ledger import DAYTRADE_MIN_EQUITY, SHORT_RESERVE, Ledger, dstr, q9, rfc3339
from .sessions import NEW_YORK, MarketCalendar

ZERO = Decimal(0)
PARTIAL_FILL_PROBABILITY = 0.10
MARKET_COLLAR = Decimal("1.03")
QTY_QUANTUM = Decimal("0.000000001")
# An elected buy stop on a stock is a stop-limit this far above its stop (Alpaca docs, stop orders).
STOP_COLLAR_UNDER_50 = Decimal("1.04")
STOP_COLLAR_50_AND_UP = Decimal("1.025")
TRAILING_TIFS = frozenset({"day", "gtc"})
# OPG orders are refused from 09:28 to 19:00 New York on a trading day (Alpaca docs, time in force).
OPG_CUTOFF = time(9, 28)
OPG_REOPENS = time(19, 0)
STOP_TYPES = frozenset({"stop", "stop_limit", "trailing_stop"})

ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIFS = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
CRYPTO_TIFS = frozenset({"gtc", "ioc"})
OPEN_STATUSES = frozenset(
    {"new", "partially_filled", "accepted", "pending_new", "held", "pending_cancel", "pending_replace"}
)
CANCELABLE = OPEN_STATUSES - {"pending_cancel"}
# PATCH /v2/orders/{id}: never while accepted / pending_new / pending_cancel / pending_replace; a
# partially filled order can be replaced (docs/alpaca-rules.md "Replace (PATCH)").
REPLACEABLE = frozenset({"new", "partially_filled", "held"})

_DECIMAL_FIELDS = {
    "qty",
    "notional",
    "notional_qty",
    "filled_qty",
    "filled_avg_price",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "hwm",
    "reserved",
}
_TIME_FIELDS = {
    "created_at",
    "updated_at",
    "submitted_at",
    "filled_at",
    "expired_at",
    "expires_at",
    "canceled_at",
    "failed_at",
    "replaced_at",
    "eligible_at",
}


@dataclass(slots=True)
class VenueOrder:
    """One order as the venue keeps it. Mutable; only the engine changes it."""

    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    order_class: str  # "simple" | "bracket" | "oco" | "oto"
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    qty: Decimal | None = None
    notional: Decimal | None = None
    # A notional order's quantity, fixed at its first execution (notional / price). ``qty`` stays
    # null as Alpaca documents for notional orders (Order entity; Alpaca-API #191).
    notional_qty: Decimal | None = None
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    expires_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    position_intent: str | None = None
    parent_id: str | None = None
    leg_ids: list[str] = field(default_factory=list)
    oco_ids: list[str] = field(default_factory=list)
    triggered: bool = False
    opens_short: bool = False
    eligible_at: datetime | None = None
    reserved: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def work_qty(self) -> Decimal | None:
        """The quantity the order works: ``qty``, or for a notional order the quantity its notional
        bought at its first execution (None until then)."""
        return self.qty if self.qty is not None else self.notional_qty

    @property
    def remaining(self) -> Decimal:
        work = self.work_qty
        if work is None:
            return Decimal(1)  # an unpriced notional order: something is still to trade
        return work - self.filled_qty

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Decimal):
                v = str(v)
            elif isinstance(v, datetime):
                v = v.isoformat()
            out[f.name] = v
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> VenueOrder:
        kw: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        for k, v in rec.items():
            if k not in names:
                continue
            if v is not None and k in _DECIMAL_FIELDS:
                v = Decimal(v)
            elif v is not None and k in _TIME_FIELDS:
                v = datetime.fromisoformat(v)
            kw[k] = v
        return cls(**kw)

    def to_json(self, legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Alpaca's Order JSON: every key, decimals as strings, RFC3339 ``Z`` timestamps."""

        def ts(v: datetime | None) -> str | None:
            return rfc3339(v) if v is not None else None

        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "submitted_at": rfc3339(self.submitted_at),
            "filled_at": ts(self.filled_at),
            "expired_at": ts(self.expired_at),
            "expires_at": ts(self.expires_at),
            "canceled_at": ts(self.canceled_at),
            "failed_at": ts(self.failed_at),
            "replaced_at": ts(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": dstr(self.notional),
            "qty": dstr(self.qty),
            "filled_qty": dstr(self.filled_qty),
            "filled_avg_price": dstr(self.filled_avg_price),
            "order_class": "" if self.order_class == "simple" else self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": dstr(self.limit_price),
            "stop_price": dstr(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": legs,
            "trail_percent": dstr(self.trail_percent),
            "trail_price": dstr(self.trail_price),
            "hwm": dstr(self.hwm),
            "subtag": None,
            "source": None,
        }


# ---- request parsing ----------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    """An enum-like request field as text: non-strings become their repr, so they fail the
    membership check with a 422 instead of raising (a list is not even hashable)."""
    if value is None or isinstance(value, str):
        return value
    return repr(value)[:64]


def _num(body: Mapping[str, Any], key: str, *, positive: bool = True) -> Decimal | None:
    raw = body.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = to_decimal(raw, field=key)
    except InvalidNumberError as e:
        raise unprocessable(f"invalid {key}: {e}") from None
    if value != 0 and not -12 <= value.adjusted() <= 12:
        raise unprocessable(f"invalid {key}: {raw!r} is out of range")
    if positive and value <= 0:
        raise unprocessable(f"{key} must be > 0")
    return value


def _bool(raw: Any, key: str) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise unprocessable(f"invalid {key}: {raw!r}")


def _check_increment(inst: Instrument, key: str, price: Decimal | None) -> None:
    if price is None or inst.is_crypto:
        return
    exponent = price.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 0
    if (price >= 1 and places > 2) or places > 4:
        raise unprocessable(
            f"invalid {key} {price}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def _whole(q: Decimal) -> bool:
    return q == q.to_integral_value()


class _SessionCache:
    """Session state at one instant, computed at most once per quote however many orders look."""

    __slots__ = ("_calendar", "_extended", "_now", "_open")

    def __init__(self, calendar: MarketCalendar, now: datetime) -> None:
        self._calendar = calendar
        self._now = now
        self._open: bool | None = None
        self._extended: bool | None = None

    @property
    def is_open(self) -> bool:
        if self._open is None:
            self._open = self._calendar.is_open(self._now)
        return self._open

    @property
    def is_extended(self) -> bool:
        if self._extended is None:
            self._extended = self._calendar.is_extended(self._now)
        return self._extended


class MatchingEngine:
    """Order book, lifecycle and fills for one paper account. Not thread-safe; one loop owns it."""

    def __init__(
        self,
        *,
        universe: Mapping[str, Instrument],
        market: MarketView,
        calendar: MarketCalendar,
        ledger: Ledger,
        clock: Callable[[], datetime],
        seed: int = 0,
    ) -> None:
        self.universe = universe
        self.market = market
        self.calendar = calendar
        self.ledger = ledger
        self.clock = clock
        self.rng = random.Random(seed)
        self.paused = False
        # Admin knob (fault tests): > 0 makes a cancel go to pending_cancel first and complete
        # after this many seconds; fills may still arrive meanwhile. 0 = Alpaca-paper-like instant.
        self.cancel_delay_s = 0.0
        self.pending_cancels: dict[str, datetime] = {}  # order id -> when the cancel completes
        # Admin knob (chaos runs): the next N replaces lose the race Alpaca documents for PATCH
        # /v2/orders/{id}: the old order fills before the replacement reaches the venue, and the
        # replacement is rejected; both events go out on trade_updates.
        self.replace_race_next = 0
        # Orders accepted (or replacements placed) whose first match waits until the venue has
        # answered the request: Alpaca answers POST /v2/orders with the order accepted and reports
        # fills afterwards on trade_updates. ``match_pending`` works through them.
        self.pending: list[VenueOrder] = []
        self.orders: dict[str, VenueOrder] = {}
        self.by_client_id: dict[str, VenueOrder] = {}
        # Open orders per symbol (held legs included) and the subset the matcher must look at.
        self.open_by_symbol: dict[str, dict[str, VenueOrder]] = {}
        self.resting: dict[str, dict[str, VenueOrder]] = {}
        self.reserved_total = ZERO
        self._day_trades: tuple[tuple[int, date], rules.DayTrades] | None = None
        # What changed since the venue last persisted/published.
        self.outbox: list[dict[str, Any]] = []
        self.dirty_orders: dict[str, VenueOrder] = {}
        self.dirty_positions: set[str] = set()
        self.new_activities: list[dict[str, Any]] = []
        self.new_equity: list[tuple[int, Decimal]] = []
        self.counters: dict[str, int] = {
            "orders_accepted": 0,
            "orders_rejected": 0,
            "fills": 0,
            "partial_fills": 0,
            "cancels": 0,
            "replaces": 0,
            "expirations": 0,
        }

    # ---- loading -----------------------------------------------------------------------------
    def load(self, orders: Iterable[VenueOrder]) -> None:
        for o in orders:
            self.orders[o.id] = o
            self.by_client_id[o.client_order_id] = o
            if o.is_open:
                self._index(o)
                self.reserved_total += o.reserved
                if o.status == "pending_cancel":  # a delayed cancel interrupted by a restart
                    self.pending_cancels[o.id] = self.clock()
                elif o.time_in_force in ("ioc", "fok"):  # accepted, but its first match never ran
                    self.pending.append(o)

    def _index(self, o: VenueOrder) -> None:
        self.open_by_symbol.setdefault(o.symbol, {})[o.id] = o
        if o.status != "held":
            self.resting.setdefault(o.symbol, {})[o.id] = o

    def _unindex(self, o: VenueOrder) -> None:
        for book in (self.open_by_symbol, self.resting):
            entries = book.get(o.symbol)
            if entries is not None:
                entries.pop(o.id, None)
                if not entries:
                    del book[o.symbol]

    # ---- helpers -----------------------------------------------------------------------------
    def quotes(self) -> dict[str, NBBO | None]:
        return {sym: self.market.nbbo(sym) for sym in self.ledger.positions}

    def instrument(self, raw: Any) -> Instrument:
        if not isinstance(raw, str) or not raw.strip():
            raise unprocessable("symbol is required")
        try:
            sym = normalize_symbol(raw)
        except InvalidSymbolError:
            raise unprocessable(f'asset "{raw}" not found') from None
        inst = self.universe.get(sym)
        if inst is None:
            raise unprocessable(f'asset "{raw}" not found')
        return inst

    def lookup_instrument(self, key: str) -> Instrument | None:
        """By symbol (any spelling) or by asset id; None when unknown."""
        for inst in self.universe.values():
            if inst.asset_id == key:
                return inst
        try:
            return self.universe.get(normalize_symbol(key))
        except InvalidSymbolError:
            return None

    def position_instrument(self, key: str) -> Instrument | None:
        """The instrument a ``/v2/positions/{symbol_or_asset_id}`` key names; None when unknown.

        A crypto position is named ``BTCUSD`` (or by asset id): ``/v2/positions/BTC/USD`` is a 404
        on Alpaca, for GET and DELETE alike (alpaca-py #179, #537; Alpaca-API #215)."""
        return None if "/" in key else self.lookup_instrument(key)

    def buying_power(self) -> Decimal:
        return self.ledger.buying_power(self.quotes(), self.reserved_total)

    # ---- account rules (services/exchange/rules.py) -------------------------------------------
    def day_trades(self) -> rules.DayTrades:
        """Day trades of the last 5 business days and the symbols opened today (stocks only).
        Cached until the next fill or the next New York day (positions change only with fills)."""
        now = self.clock()
        key = (len(self.ledger.activities), now.astimezone(NEW_YORK).date())
        if self._day_trades is not None and self._day_trades[0] == key:
            return self._day_trades[1]
        trades = rules.count_day_trades(
            self.ledger.activities,
            {sym: h.qty for sym, h in self.ledger.positions.items()},
            now=now,
            is_business_day=lambda d: self.calendar.session(d) is not None,
            is_crypto=lambda sym: (inst := self.universe.get(sym)) is not None and inst.is_crypto,
        )
        self._day_trades = (key, trades)
        return trades

    def crypto_cash_available(self) -> Decimal:
        """Cash not yet claimed by open crypto buys: what a crypto buy may spend (no margin)."""
        claimed = sum(
            (o.reserved for book in self.open_by_symbol.values() for o in book.values()
             if o.asset_class == "crypto" and o.side == "buy"),
            ZERO,
        )
        return self.ledger.cash - claimed

    def _check_account_rules(
        self, inst: Instrument, side: str, otype: str, qty: Decimal | None, notional: Decimal | None,
        limit_price: Decimal | None, nbbo: NBBO, pos: Decimal, opens_short: bool,
    ) -> None:
        ledger = self.ledger
        closes = (side == "sell" and pos > 0) or (side == "buy" and pos < 0)
        pdt_applies = (
            closes and not inst.is_crypto and ledger.account_type == "margin"
            and ledger.last_equity < DAYTRADE_MIN_EQUITY
        )
        trades = self.day_trades() if pdt_applies else rules.DayTrades(0, frozenset())
        pending = [
            rules.PendingOrder(o.id, o.side, o.type)
            for o in self.open_by_symbol.get(inst.symbol, {}).values()
            if o.parent_id is None and o.order_class != "oco"
        ] if pos == 0 else []
        rules.check_order(
            rules.OrderRequest(
                instrument=inst, side=side, type=otype, qty=qty, notional=notional,
                limit_price=limit_price, ask=nbbo.ask, bid=nbbo.bid, position_qty=pos,
                opens_short=opens_short,
            ),
            rules.AccountState(
                account_type=ledger.account_type,
                equity=ledger.equity(self.quotes()),
                last_equity=ledger.last_equity,
                cash_available=self.crypto_cash_available() if inst.is_crypto else ledger.cash,
                daytrade_count=trades.count,
                opened_today=inst.symbol in trades.opened_today,
            ),
            pending,
        )

    def held_for_orders(
        self, symbol: str, side: str, *, exclude: str | Iterable[str] | None = None
    ) -> Decimal:
        """Quantity that open orders on ``side`` already claim (an OCO pair claims its qty once)."""
        total = ZERO
        seen_groups: set[str] = set()
        skip = {exclude} if isinstance(exclude, str) else set(exclude or ())
        for o in self.open_by_symbol.get(symbol, {}).values():
            if o.side != side or o.id in skip or o.opens_short:
                continue
            if o.status == "held" and o.parent_id is not None:
                parent = self.orders.get(o.parent_id)
                if parent is not None and parent.side != o.side and parent.status != "filled":
                    continue  # exit legs of an unfilled entry close shares that don't exist yet
            if o.oco_ids:
                group = min([o.id, *o.oco_ids])
                if group in seen_groups:
                    continue
                seen_groups.add(group)
            total += o.remaining if o.work_qty is not None else self._notional_estimate(o)
        return total

    def _notional_estimate(self, o: VenueOrder) -> Decimal:
        """The quantity an unpriced notional order would trade at the current touch."""
        nbbo = self.market.nbbo(o.symbol)
        touch = (nbbo.ask if o.side == "buy" else nbbo.bid) if nbbo is not None else ZERO
        if o.notional is None or touch <= 0:
            return ZERO
        return (o.notional / touch).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)

    def _reservation(self, o: VenueOrder) -> Decimal:
        if not o.is_open or o.status == "held" or o.parent_id is not None or o.order_class == "oco":
            return ZERO  # exits (legs, OCO pairs) close a position and reserve nothing
        if o.side == "buy":
            if o.position_intent == "buy_to_close":
                return ZERO  # covering a short: its 102.5 % is already held back
            if o.notional is not None:  # what is left of the notional to spend
                spent = o.filled_qty * (o.filled_avg_price or ZERO)
                return max(o.notional - spent, ZERO)
            price = o.limit_price or o.stop_price
            if price is None:
                nbbo = self.market.nbbo(o.symbol)
                price = nbbo.ask * MARKET_COLLAR if nbbo is not None else ZERO
            return o.remaining * price
        if o.opens_short:  # MAX(limit, 1.03 x ask) x qty (account rules, rules.short_sale_value)
            if o.notional is not None and o.work_qty is None:
                return o.notional * SHORT_RESERVE
            nbbo = self.market.nbbo(o.symbol)
            ask = nbbo.ask if nbbo is not None else ZERO
            return rules.short_sale_value(o.remaining, o.limit_price, ask)
        return ZERO

    def _touch(self, o: VenueOrder, now: datetime) -> None:
        """Record that ``o`` changed: keep indexes, reservations and the dirty set consistent."""
        o.updated_at = now
        self.reserved_total -= o.reserved
        o.reserved = self._reservation(o)
        self.reserved_total += o.reserved
        if o.is_open:
            self._index(o)
            if o.status == "held":
                r = self.resting.get(o.symbol)
                if r is not None:
                    r.pop(o.id, None)
                    if not r:
                        del self.resting[o.symbol]
        else:
            self._unindex(o)
        self.dirty_orders[o.id] = o

    def order_json(self, o: VenueOrder, *, nested: bool = True) -> dict[str, Any]:
        legs = None
        if o.leg_ids and nested:
            legs = [self.orders[i].to_json() for i in o.leg_ids if i in self.orders]
        return o.to_json(legs)

    def _emit(self, event: str, o: VenueOrder, now: datetime, **extra: Any) -> None:
        data: dict[str, Any] = {"event": event, "timestamp": rfc3339(now), "order": self.order_json(o)}
        data.update(extra)
        self.outbox.append(data)

    # ---- submit ------------------------------------------------------------------------------
    def submit(self, body: Any) -> VenueOrder:
        """Validate an Alpaca order request and accept it (or raise ApiError). Returns the parent."""
        try:
            return self._submit(body)
        except ApiError:
            self.counters["orders_rejected"] += 1
            raise

    def _submit(self, body: Any) -> VenueOrder:
        if not isinstance(body, dict):
            raise unprocessable("request body must be a JSON object")
        now = self.clock()
        inst = self.instrument(body.get("symbol"))
        if not inst.tradable:
            raise unprocessable(f'asset "{inst.symbol}" is not tradable')
        side = _text(body.get("side"))
        if side not in ("buy", "sell"):
            raise unprocessable(f"invalid side: {side!r}")
        otype = _text(body.get("type", body.get("order_type")))
        if otype not in ORDER_TYPES:
            raise unprocessable(f"invalid order type: {otype!r}")
        tif = _text(body.get("time_in_force"))
        if tif not in TIFS:
            raise unprocessable(f"invalid time_in_force: {tif!r}")
        oclass = _text(body.get("order_class")) or "simple"
        if oclass not in ("simple", "bracket", "oco", "oto"):
            raise unprocessable(f"order_class {oclass!r} is not supported")
        qty = _num(body, "qty")
        notional = _num(body, "notional")
        if (qty is None) == (notional is None):
            raise unprocessable(
                "qty or notional is required" if qty is None else "qty and notional are exclusive"
            )
        if qty is not None and qty != qty.quantize(QTY_QUANTUM, rounding=ROUND_DOWN):
            raise unprocessable("qty must have at most 9 decimal places")
        limit_price = _num(body, "limit_price")
        stop_price = _num(body, "stop_price")
        trail_price = _num(body, "trail_price")
        trail_percent = _num(body, "trail_percent")
        extended = _bool(body.get("extended_hours"), "extended_hours")
        coid = body.get("client_order_id")
        if coid is None or coid == "":
            coid = str(uuid.uuid4())
        if not isinstance(coid, str):
            raise unprocessable("client_order_id must be a string")
        if len(coid) > 48:
            raise unprocessable("client_order_id must be no more than 48 characters")
        if coid in self.by_client_id:
            raise unprocessable("client_order_id must be unique")

        # Class-specific legs.
        tp = body.get("take_profit")
        sl = body.get("stop_loss")
        if (tp is not None and not isinstance(tp, dict)) or (sl is not None and not isinstance(sl, dict)):
            raise unprocessable("take_profit and stop_loss must be objects")
        tp_limit = _num(tp, "limit_price") if tp else None
        sl_stop = _num(sl, "stop_price") if sl else None
        sl_limit = _num(sl, "limit_price") if sl else None
        if oclass in ("bracket", "oco"):
            if tp_limit is None or sl_stop is None:
                raise unprocessable(
                    f"{oclass} orders require take_profit.limit_price and stop_loss.stop_price"
                )
        elif oclass == "oto":
            if tp_limit is None and sl_stop is None:
                raise unprocessable("oto orders require take_profit or stop_loss")
            if tp_limit is not None and sl_stop is not None:
                raise unprocessable("oto orders take either take_profit or stop_loss, not both")
        elif tp is not None or sl is not None:
            raise unprocessable("take_profit/stop_loss are only for bracket, oco and oto orders")
        if oclass == "oco":
            if otype != "limit":
                raise unprocessable("oco orders must be limit orders")
            if limit_price is not None and limit_price != tp_limit:
                raise unprocessable("oco orders take their limit price from take_profit.limit_price")
            limit_price = tp_limit
        if oclass == "bracket" and otype not in ("market", "limit"):
            raise unprocessable("bracket orders must be market or limit orders")
        if oclass != "simple" and tif not in ("day", "gtc"):
            raise unprocessable(f"{oclass} orders must be day or gtc orders")

        # Prices by type.
        if otype == "market" and any(
            p is not None for p in (limit_price, stop_price, trail_price, trail_percent)
        ):
            raise unprocessable("market orders must not have limit_price, stop_price or trail")
        if otype in ("limit", "stop_limit") and limit_price is None:
            raise unprocessable("limit_price is required for limit orders")
        if otype in ("stop", "stop_limit") and stop_price is None:
            raise unprocessable("stop_price is required for stop orders")
        if otype in ("market", "stop", "trailing_stop") and limit_price is not None:
            raise unprocessable(f"limit_price is not allowed for {otype} orders")
        if otype in ("market", "limit", "trailing_stop") and stop_price is not None:
            raise unprocessable(f"stop_price is not allowed for {otype} orders")
        if otype == "trailing_stop":
            if (trail_price is None) == (trail_percent is None):
                raise unprocessable("trailing stop orders need exactly one of trail_price or trail_percent")
            if trail_percent is not None and trail_percent >= 100:
                raise unprocessable("trail_percent must be less than 100")
        elif trail_price is not None or trail_percent is not None:
            raise unprocessable("trail_price/trail_percent are only for trailing_stop orders")
        for key, p in (("limit_price", limit_price), ("stop_price", stop_price)):
            _check_increment(inst, key, p)
        self._check_time_in_force(otype, tif, now)

        # Asset-class, fractional and session rules.
        if inst.is_crypto:
            rules.check_order_type(inst, otype)  # account rules: crypto order types
            if tif not in CRYPTO_TIFS:
                raise unprocessable(f"invalid crypto time_in_force: {tif} (crypto orders take gtc or ioc)")
            if extended:
                raise unprocessable("extended_hours is not supported for crypto orders")
            if oclass != "simple":
                raise unprocessable("crypto orders must be simple orders")
        else:
            fractional = notional is not None or (qty is not None and not _whole(qty))
            if fractional:
                if not inst.fractionable:
                    raise unprocessable(f'asset "{inst.symbol}" is not fractionable')
                if oclass != "simple":
                    raise unprocessable("fractional orders must be simple orders")
                if tif != "day":
                    raise unprocessable("fractional orders must be DAY orders")
                if otype != "market":
                    raise unprocessable("fractional orders must be market orders")
        if notional is not None and otype != "market":
            raise unprocessable("notional orders must be market orders")
        if extended and not (otype == "limit" and tif == "day"):
            raise unprocessable("extended hours order must be DAY limit orders")
        if qty is not None and inst.is_crypto and qty < inst.min_order_size:
            raise unprocessable(f"qty must be >= {inst.min_order_size}")

        nbbo = self.market.nbbo(inst.symbol)
        if nbbo is None or nbbo.bid <= 0 or nbbo.ask <= 0:
            raise unprocessable(f'no quote for "{inst.symbol}" yet; orders cannot be priced')

        # Stop-price side checks against the touch.
        if otype in ("stop", "stop_limit") and stop_price is not None:
            if side == "sell" and stop_price >= nbbo.bid:
                raise unprocessable(
                    "stop price must be less than current price",
                    market_price=dstr(nbbo.bid),
                    stop_price=dstr(stop_price),
                )
            if side == "buy" and stop_price <= nbbo.ask:
                raise unprocessable(
                    "stop price must be greater than current price",
                    market_price=dstr(nbbo.ask),
                    stop_price=dstr(stop_price),
                )
        exit_side = "sell" if side == "buy" else "buy"
        if oclass in ("bracket", "oto"):
            base = limit_price if limit_price is not None else (nbbo.ask if side == "buy" else nbbo.bid)
            sign = 1 if side == "buy" else -1
            if tp_limit is not None and (tp_limit - base) * sign < Decimal("0.01"):
                raise unprocessable(
                    f"take_profit.limit_price must be {'>=' if sign > 0 else '<='} base_price "
                    f"{'+' if sign > 0 else '-'} 0.01",
                    base_price=dstr(base),
                )
            if sl_stop is not None and (base - sl_stop) * sign < Decimal("0.01"):
                raise unprocessable(
                    f"stop_loss.stop_price must be {'<=' if sign > 0 else '>='} base_price "
                    f"{'-' if sign > 0 else '+'} 0.01",
                    base_price=dstr(base),
                )
        if oclass == "oco" and sl_stop is not None and tp_limit is not None:
            wrong = sl_stop >= tp_limit if side == "sell" else sl_stop <= tp_limit
            if wrong:
                raise unprocessable(
                    "stop_loss.stop_price must be on the losing side of take_profit.limit_price"
                )

        # Position, shorting and buying power.
        est_price = nbbo.ask if side == "buy" else nbbo.bid
        req_qty = qty if qty is not None else q9(notional / est_price) if notional is not None else ZERO
        pos = self.ledger.position_qty(inst.symbol)
        opens_short = False
        exit_order = oclass == "oco"  # an OCO pair only exits an existing position
        increasing = (side == "buy" and pos >= 0) or (side == "sell" and pos <= 0)
        if not increasing or exit_order:
            held = self.held_for_orders(inst.symbol, side)
            available = max(abs(pos) - held, ZERO) if not increasing else ZERO
            if req_qty > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {dstr(req_qty)}, "
                    f"available: {dstr(available)})",
                    available=dstr(available),
                    existing_qty=dstr(pos),
                    held_for_orders=dstr(held),
                    symbol=inst.symbol,
                )
        elif side == "sell":
            if inst.is_crypto or not inst.shortable:
                raise forbidden(f'asset "{inst.symbol}" cannot be sold short')
            if not _whole(req_qty):
                raise forbidden("fractional orders cannot be sold short")
            opens_short = True
        # ---- account rules (services/exchange/rules.py): shorting, PDT, minimums, crypto cash ----
        self._check_account_rules(inst, side, otype, qty, notional, limit_price, nbbo, pos, opens_short)
        # ---- end of account rules ----

        parent = VenueOrder(
            id=str(uuid.uuid4()),
            client_order_id=coid,
            symbol=inst.symbol,
            asset_id=inst.asset_id,
            asset_class=inst.asset_class,
            side=side,
            type=otype,
            time_in_force=tif,
            order_class=oclass,
            status="new",
            created_at=now,
            updated_at=now,
            submitted_at=now,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            stop_price=stop_price,
            trail_price=trail_price,
            trail_percent=trail_percent,
            extended_hours=extended,
            opens_short=opens_short,
            position_intent=self._intent(side, pos),
        )
        self._set_window(parent, inst, now)
        if otype == "trailing_stop":
            # The high-water mark follows prints from the last one on; the quote when none yet.
            parent.hwm = nbbo.last if nbbo.last > 0 else (nbbo.bid if side == "sell" else nbbo.ask)
            parent.stop_price = self._trail_stop(parent)
        cost = self._reservation(parent)
        if cost > 0 and cost > self.buying_power():
            raise forbidden(
                "insufficient buying power",
                buying_power=dstr(q9(self.buying_power())),
                cost_basis=dstr(q9(cost)),
            )

        legs: list[VenueOrder] = []
        leg_qty = qty
        if oclass == "oco":
            # Both sides of an OCO pair exit the same position, so they trade the same side; the
            # stop-loss is held until a print elects its stop, as a bracket's is.
            legs.append(self._leg(parent, side, "stop", sl_stop, sl_limit, now))
        else:
            if tp_limit is not None:
                legs.append(self._leg(parent, exit_side, "limit", None, tp_limit, now))
            if sl_stop is not None:
                legs.append(self._leg(parent, exit_side, "stop", sl_stop, sl_limit, now))
        for leg in legs:
            leg.qty = leg_qty
        parent.leg_ids = [leg.id for leg in legs]
        if oclass in ("bracket",):
            legs[0].oco_ids = [legs[1].id]
            legs[1].oco_ids = [legs[0].id]
        elif oclass == "oco":
            parent.oco_ids = [legs[0].id]
            legs[0].oco_ids = [parent.id]

        self.counters["orders_accepted"] += 1
        for o in (parent, *legs):
            self.orders[o.id] = o
            self.by_client_id[o.client_order_id] = o
            self._touch(o, now)
        self._emit("new", parent, now)
        for leg in legs:
            if leg.status == "new":
                self._emit("new", leg, now)
        self.pending.append(parent)  # matched once the request is answered: see match_pending
        return parent

    def _check_time_in_force(self, otype: str, tif: str, now: datetime) -> None:
        """Time-in-force rules by order type and by the hour of submission."""
        if otype == "trailing_stop" and tif not in TRAILING_TIFS:
            raise unprocessable(f"invalid time_in_force {tif} for trailing stop orders (day or gtc only)")
        if tif == "opg":
            local = now.astimezone(NEW_YORK)
            if self.calendar.session(local.date()) is not None and OPG_CUTOFF <= local.time() < OPG_REOPENS:
                raise unprocessable(
                    "opg orders are not accepted after 09:28 and before 19:00 ET; "
                    "after 19:00 they go to the next opening auction"
                )

    @staticmethod
    def _intent(side: str, pos: Decimal) -> str:
        if side == "buy":
            return "buy_to_close" if pos < 0 else "buy_to_open"
        return "sell_to_close" if pos > 0 else "sell_to_open"

    def _leg(
        self,
        parent: VenueOrder,
        side: str,
        kind: str,
        stop: Decimal | None,
        limit: Decimal | None,
        now: datetime,
        *,
        status: str = "held",
    ) -> VenueOrder:
        otype = "limit" if kind == "limit" else ("stop_limit" if limit is not None else "stop")
        leg = VenueOrder(
            id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),
            symbol=parent.symbol,
            asset_id=parent.asset_id,
            asset_class=parent.asset_class,
            side=side,
            type=otype,
            time_in_force=parent.time_in_force,
            order_class=parent.order_class,
            status=status,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            limit_price=limit,
            stop_price=stop,
            parent_id=parent.id,
            position_intent="sell_to_close" if side == "sell" else "buy_to_close",
        )
        leg.expires_at = parent.expires_at
        return leg

    def _set_window(self, o: VenueOrder, inst: Instrument, now: datetime) -> None:
        """When the order may trade (eligible_at) and when it lapses (expires_at)."""
        if inst.is_crypto or o.time_in_force in ("gtc", "ioc", "fok"):
            return
        if o.time_in_force == "day":
            o.expires_at = self.calendar.next_close(now)
        elif o.time_in_force == "opg":
            o.eligible_at = self.calendar.next_open(now)
            o.expires_at = o.eligible_at + timedelta(minutes=1)
        elif o.time_in_force == "cls":
            close = self.calendar.next_close(now)
            o.eligible_at = close - timedelta(minutes=1)
            o.expires_at = close

    def match_pending(self, now: datetime | None = None) -> None:
        """First match of the orders accepted since the last call (and their working legs); IOC and
        FOK resolve here. The venue runs this right after it has answered the request, so the
        answer is the accepted order and every fill reaches the client as a trade update."""
        if not self.pending:
            return
        now = now or self.clock()
        pending, self.pending = self.pending, []
        for o in pending:
            self._evaluate(o, now)
            for leg_id in o.leg_ids:
                leg = self.orders.get(leg_id)
                if leg is not None and leg.is_open and leg.status != "held":
                    self._evaluate(leg, now)
            self._finish_immediate(o, now)

    def _finish_immediate(self, o: VenueOrder, now: datetime) -> None:
        """IOC/FOK: whatever did not fill at once is canceled."""
        if o.time_in_force in ("ioc", "fok") and o.is_open:
            self._cancel(o, now, event="canceled")

    # ---- matching ----------------------------------------------------------------------------
    def on_quote(self, symbol: str) -> None:
        if self.pending:
            self.match_pending()
        book = self.resting.get(symbol)
        if not book or self.paused:
            return
        self.on_quote_at(symbol, self.clock())

    def sweep(self, now: datetime | None = None) -> None:
        """Periodic work: expire due orders, then look at every resting order once."""
        now = now or self.clock()
        for order_id, due in list(self.pending_cancels.items()):
            if now >= due:
                del self.pending_cancels[order_id]
                pending = self.orders.get(order_id)
                if pending is not None and pending.is_open:
                    self._cancel(pending, now, event="canceled")
        for book in list(self.open_by_symbol.values()):
            for o in list(book.values()):
                if o.is_open and o.expires_at is not None and now >= o.expires_at:
                    self._expire(o, now)
        self.match_pending(now)
        if self.paused:
            return
        for sym in list(self.resting):
            self.on_quote_at(sym, now)

    def on_quote_at(self, symbol: str, now: datetime) -> None:
        """Evaluate the resting orders of ``symbol``. Orders that cannot trade at this quote are
        skipped with two comparisons, so many far-away limits and stops stay cheap."""
        book = self.resting.get(symbol)
        if not book:
            return
        nbbo = self.market.nbbo(symbol)
        if nbbo is None or nbbo.bid <= 0 or nbbo.ask <= 0 or self.market.is_halted(symbol):
            return
        bid, ask = nbbo.bid, nbbo.ask
        candidates = []
        for o in book.values():
            t = o.type
            if t == "limit" or (t == "stop_limit" and o.triggered):
                lp = o.limit_price
                if lp is not None and (lp < ask if o.side == "buy" else lp > bid):
                    continue
            elif t in STOP_TYPES and not o.triggered:
                continue  # a stop waits for a print (on_trade), not for the quote
            candidates.append(o)
        if not candidates:
            return
        session = _SessionCache(self.calendar, now)
        for o in candidates:
            if o.is_open and o.status != "held":
                self._evaluate(o, now, session)

    def _session_ok(self, o: VenueOrder, now: datetime, session: _SessionCache) -> bool:
        if o.asset_class == "crypto":
            return True
        if o.expires_at is not None and now >= o.expires_at:
            return False
        if o.eligible_at is not None and now < o.eligible_at:
            return False
        if session.is_open:
            return True
        return o.extended_hours and session.is_extended

    def _trail_stop(self, o: VenueOrder) -> Decimal | None:
        if o.hwm is None:
            return None
        if o.trail_price is not None:
            return o.hwm - o.trail_price if o.side == "sell" else o.hwm + o.trail_price
        if o.trail_percent is not None:
            f = o.trail_percent / 100
            return q9(o.hwm * (1 - f) if o.side == "sell" else o.hwm * (1 + f))
        return None

    def _evaluate(self, o: VenueOrder, now: datetime, session: _SessionCache | None = None) -> None:
        if self.paused or not o.is_open or o.status == "held":
            return
        nbbo = self.market.nbbo(o.symbol)
        if nbbo is None or nbbo.bid <= 0 or nbbo.ask <= 0 or self.market.is_halted(o.symbol):
            return
        if not self._session_ok(o, now, session or _SessionCache(self.calendar, now)):
            return
        buy = o.side == "buy"
        touch = nbbo.ask if buy else nbbo.bid
        limit: Decimal | None = None
        if o.type == "limit":
            limit = o.limit_price
        elif o.type in STOP_TYPES:
            if not o.triggered:
                return  # elected only by a print (on_trade)
            limit = self._elected_limit(o)
        if limit is not None and ((buy and limit < touch) or (not buy and limit > touch)):
            return
        # Marketable: decide how much fills now.
        if o.work_qty is None:  # a notional order: its quantity is fixed at its first execution
            assert o.notional is not None
            qty = (o.notional / touch).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
            if qty <= 0:
                self._cancel(o, now, event="canceled")
                return
            o.notional_qty = qty
        remaining = o.remaining
        if remaining <= 0:
            return
        qty = remaining
        if o.time_in_force != "fok" and self.rng.random() < PARTIAL_FILL_PROBABILITY:
            qty = self._partial(o, remaining)
        self._fill(o, qty, touch, now)

    @staticmethod
    def _elected_limit(o: VenueOrder) -> Decimal | None:
        """The limit an elected stop works at: its own for a stop-limit, Alpaca's collar for a buy
        stop on a stock, none (a market order) for a sell stop or a trailing stop."""
        if o.type == "stop_limit":
            return o.limit_price
        if o.type == "stop" and o.side == "buy" and o.asset_class != "crypto" and o.stop_price is not None:
            collar = STOP_COLLAR_UNDER_50 if o.stop_price < 50 else STOP_COLLAR_50_AND_UP
            tick = Decimal("0.01") if o.stop_price >= 1 else Decimal("0.0001")
            return (o.stop_price * collar).quantize(tick, rounding=ROUND_DOWN)
        return None

    def on_trade(self, symbol: str, price: Decimal, now: datetime | None = None) -> None:
        """A print at ``price``: move trailing high-water marks and elect the stops it reaches."""
        book = self.open_by_symbol.get(symbol)
        if not book or self.paused or price <= 0 or self.market.is_halted(symbol):
            return
        now = now or self.clock()
        session = _SessionCache(self.calendar, now)
        for o in list(book.values()):
            if o.type not in STOP_TYPES or o.triggered or not o.is_open:
                continue
            if not self._session_ok(o, now, session):
                continue  # stops are not elected while the order may not trade
            buy = o.side == "buy"
            if o.type == "trailing_stop" and (o.hwm is None or (price < o.hwm if buy else price > o.hwm)):
                o.hwm = price
                o.stop_price = self._trail_stop(o)
                self._touch(o, now)
            stop = o.stop_price
            if stop is None or (price < stop if buy else price > stop):
                continue
            if o.status == "held":
                if not self._stop_loss_armed(o):
                    continue
                self._activate_stop_loss(o, now)
            o.triggered = True
            self._touch(o, now)
            self._evaluate(o, now, session)

    def _stop_loss_armed(self, o: VenueOrder) -> bool:
        """A held stop-loss may act once its position exists: the OCO pair's (always) or the
        bracket's after the entry filled."""
        parent = self.orders.get(o.parent_id) if o.parent_id is not None else None
        if parent is None:
            return False
        return o.order_class == "oco" or parent.status == "filled"

    def _activate_stop_loss(self, o: VenueOrder, now: datetime) -> None:
        """The elected stop-loss takes over: its take-profit is canceled, then it works."""
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is not None and sib.is_open:
                self._cancel(sib, now, event="canceled", cascade=False)
        o.status = "new"
        self._touch(o, now)
        self._emit("new", o, now)

    def _partial(self, o: VenueOrder, remaining: Decimal) -> Decimal:
        if o.notional is None and o.qty is not None and _whole(o.qty):
            whole = int(remaining)
            if whole < 2:
                return remaining
            return Decimal(self.rng.randint(1, whole - 1))
        part = (remaining * Decimal(str(round(self.rng.uniform(0.1, 0.9), 6)))).quantize(
            QTY_QUANTUM, rounding=ROUND_DOWN
        )
        return part if 0 < part < remaining else remaining

    def _fill(self, o: VenueOrder, qty: Decimal, price: Decimal, now: datetime) -> None:
        position_qty = self.ledger.apply_fill(o.symbol, o.side, qty, price, at=now)
        self.dirty_positions.add(o.symbol)
        prev = o.filled_qty
        o.filled_qty = prev + qty
        if o.filled_avg_price is None or prev == 0:
            o.filled_avg_price = price
        else:
            o.filled_avg_price = q9((o.filled_avg_price * prev + price * qty) / o.filled_qty)
        work = o.work_qty
        done = work is not None and o.filled_qty >= work
        o.status = "filled" if done else "partially_filled"
        if done:
            o.filled_at = now
        self._touch(o, now)
        self.counters["fills" if done else "partial_fills"] += 1
        activity = self.ledger.record_activity(
            ts=now,
            kind="fill" if done else "partial_fill",
            price=price,
            qty=qty,
            side=o.side,
            symbol=o.symbol,
            leaves_qty=o.remaining,
            order_id=o.id,
            cum_qty=o.filled_qty,
            order_status=o.status,
        )
        self.new_activities.append(activity)
        self.sample_equity(now)
        self._emit(
            "fill" if done else "partial_fill",
            o,
            now,
            execution_id=str(uuid.uuid4()),
            price=dstr(price),
            qty=dstr(qty),
            position_qty=dstr(position_qty),
        )
        # OCO: a complete fill of one side cancels the other; a partial fill shrinks the other to
        # this side's remaining quantity, so the pair never sells more than the position.
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is None or not sib.is_open:
                continue
            if done:
                self._cancel(sib, now, event="canceled", cascade=False)
            elif sib.qty is not None and o.qty is not None and sib.qty - sib.filled_qty > o.remaining:
                sib.qty = sib.filled_qty + o.remaining
                self._touch(sib, now)
        if done and o.leg_ids and o.order_class in ("bracket", "oto"):
            for leg_id in o.leg_ids:
                leg = self.orders.get(leg_id)
                if leg is not None and leg.status == "held":
                    if o.order_class == "bracket" and leg.type in STOP_TYPES:
                        continue  # the stop-loss stays held until a print elects its stop
                    leg.status = "new"
                    self._touch(leg, now)
                    self._emit("new", leg, now)

    def sample_equity(self, now: datetime) -> None:
        point = (int(now.timestamp()), q9(self.ledger.equity(self.quotes())))
        if self.new_equity and self.new_equity[-1][0] == point[0]:
            self.new_equity[-1] = point
        else:
            self.new_equity.append(point)

    # ---- cancel / expire / replace -----------------------------------------------------------
    def _cancel(self, o: VenueOrder, now: datetime, *, event: str, cascade: bool = True) -> None:
        o.status = event
        if event == "canceled":
            o.canceled_at = now
            self.counters["cancels"] += 1
        elif event == "expired":
            o.expired_at = now
            self.counters["expirations"] += 1
        self._touch(o, now)
        self._emit(event, o, now)
        if not cascade:
            return
        # A parent that dies unfilled takes its held legs with it; a leg takes its OCO sibling.
        for leg_id in o.leg_ids:
            leg = self.orders.get(leg_id)
            if leg is not None and leg.is_open and (leg.status == "held" or o.order_class == "oco"):
                self._cancel(leg, now, event=event, cascade=False)
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is not None and sib.is_open:
                self._cancel(sib, now, event=event, cascade=False)

    def _expire(self, o: VenueOrder, now: datetime) -> None:
        self._cancel(o, now, event="expired")

    def get(self, order_id: str) -> VenueOrder:
        o = self.orders.get(order_id)
        if o is None:
            raise not_found("order not found")
        return o

    def cancel(self, order_id: str) -> VenueOrder:
        o = self.get(order_id)
        if o.status not in CANCELABLE or o.id in self.pending_cancels:
            raise unprocessable(f'order is already in "{o.status}" state')
        now = self.clock()
        if self.cancel_delay_s > 0:
            o.status = "pending_cancel"
            self._touch(o, now)
            self._emit("pending_cancel", o, now)
            self.pending_cancels[o.id] = now + timedelta(seconds=self.cancel_delay_s)
            return o
        self._cancel(o, now, event="canceled")
        return o

    def cancel_all(self) -> list[VenueOrder]:
        now = self.clock()
        out: list[VenueOrder] = []
        for book in list(self.open_by_symbol.values()):
            for o in list(book.values()):
                if o.status in CANCELABLE and o.parent_id is None:
                    self._cancel(o, now, event="canceled")
                    out.append(o)
        for book in list(self.open_by_symbol.values()):  # orphans (legs whose parent already filled)
            for o in list(book.values()):
                if o.status in CANCELABLE:
                    self._cancel(o, now, event="canceled")
                    out.append(o)
        return out

    def replace(self, order_id: str, body: Any) -> VenueOrder:
        """PATCH: a new order takes the old one's place; the old becomes ``replaced``.

        The replacement starts unfilled and works its whole ``qty``: the one asked for, else the old
        order's original qty even when the old one was partially filled (Alpaca-API #165). It is
        checked as a new order would be: it never flips a position, and what it reserves beyond the
        old order's reservation must fit the buying power."""
        old = self.get(order_id)
        if not isinstance(body, dict):
            raise unprocessable("request body must be a JSON object")
        if old.status not in REPLACEABLE or old.id in self.pending_cancels:
            raise unprocessable("unable to replace order in current state")
        now = self.clock()
        qty = _num(body, "qty")
        if qty is not None and not _whole(qty):
            raise unprocessable("qty must be a whole number")
        if qty is not None and old.qty is not None and not _whole(old.qty):
            raise unprocessable("fractional orders cannot be replaced")
        tif = _text(body.get("time_in_force")) or old.time_in_force
        if tif not in TIFS:
            raise unprocessable(f"invalid time_in_force: {tif!r}")
        limit_price = _num(body, "limit_price")
        stop_price = _num(body, "stop_price")
        trail = _num(body, "trail")
        if limit_price is not None and old.type not in ("limit", "stop_limit"):
            raise unprocessable(f"limit_price is not allowed for {old.type} orders")
        if stop_price is not None and old.type not in ("stop", "stop_limit"):
            raise unprocessable(f"stop_price is not allowed for {old.type} orders")
        if trail is not None and old.type != "trailing_stop":
            raise unprocessable("trail is only for trailing_stop orders")
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(coid, str) or len(coid) > 48:
            raise unprocessable("client_order_id must be no more than 48 characters")
        if coid in self.by_client_id:
            raise unprocessable("client_order_id must be unique")
        inst = self.universe[old.symbol]
        _check_increment(inst, "limit_price", limit_price)
        _check_increment(inst, "stop_price", stop_price)
        new = VenueOrder.from_record(old.to_record())
        new.id = str(uuid.uuid4())
        new.client_order_id = coid
        new.created_at = new.updated_at = new.submitted_at = now
        new.replaces = old.id
        new.replaced_by = None
        new.reserved = ZERO
        new.status = "held" if old.status == "held" else "new"
        new.filled_qty = ZERO
        new.filled_avg_price = None
        new.filled_at = None
        new.notional_qty = None
        new.time_in_force = tif
        if qty is not None:
            new.qty = qty
        if limit_price is not None:
            new.limit_price = limit_price
        if stop_price is not None:
            new.stop_price = stop_price
        if trail is not None:
            if new.trail_price is not None:
                new.trail_price = trail
            else:
                new.trail_percent = trail
            new.stop_price = self._trail_stop(new)
        if tif != old.time_in_force:
            new.expires_at = new.eligible_at = None
            self._set_window(new, inst, now)
        # Buys and short sales: buying power is reduced by the larger of the two orders (PATCH
        # /v2/orders/{order_id}), so only what the replacement adds must fit.
        extra = self._reservation(new) - old.reserved
        if extra > 0 and extra > self.buying_power():
            raise forbidden("insufficient buying power")
        pos = self.ledger.position_qty(old.symbol)
        exiting = (
            not new.opens_short
            and new.status != "held"
            and (
                (new.side == "sell" and pos > 0)
                or (new.side == "buy" and pos < 0)
                or (new.position_intent or "").endswith("_to_close")
            )
        )
        if exiting and new.qty is not None:
            held = self.held_for_orders(old.symbol, new.side, exclude=[old.id, *old.oco_ids])
            same_side = pos > 0 if new.side == "sell" else pos < 0
            available = max(abs(pos) - held, ZERO) if same_side else ZERO
            if new.qty > available:
                raise forbidden(
                    f"insufficient qty available for order (requested: {dstr(new.qty)}, "
                    f"available: {dstr(available)})",
                    available=dstr(available),
                    existing_qty=dstr(pos),
                    held_for_orders=dstr(held),
                    symbol=old.symbol,
                )
        race_price = old.limit_price if old.limit_price is not None else old.stop_price
        if self.replace_race_next > 0 and race_price is not None and old.qty is not None:
            self.replace_race_next -= 1
            return self._lose_replace_race(old, new, race_price, now)
        # Re-link the order family: parent's legs, siblings, and legs' parent pointer.
        if old.parent_id is not None:
            parent = self.orders.get(old.parent_id)
            if parent is not None:
                parent.leg_ids = [new.id if i == old.id else i for i in parent.leg_ids]
                parent.oco_ids = [new.id if i == old.id else i for i in parent.oco_ids]
                self.dirty_orders[parent.id] = parent
        for sib_id in old.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is not None:
                sib.oco_ids = [new.id if i == old.id else i for i in sib.oco_ids]
                self.dirty_orders[sib.id] = sib
        for leg_id in old.leg_ids:
            leg = self.orders.get(leg_id)
            if leg is not None:
                leg.parent_id = new.id
                if new.order_class == "oco":
                    leg.oco_ids = [new.id if i == old.id else i for i in leg.oco_ids]
                self.dirty_orders[leg.id] = leg
        old.status = "replaced"
        old.replaced_by = new.id
        old.replaced_at = now
        old.leg_ids = []
        self._touch(old, now)
        self.orders[new.id] = new
        self.by_client_id[new.client_order_id] = new
        self._touch(new, now)
        self.counters["replaces"] += 1
        self._emit("replaced", old, now)
        self._emit("new", new, now)
        self.pending.append(new)  # matched once the request is answered, as a new order is
        return new

    def _lose_replace_race(self, old: VenueOrder, new: VenueOrder, price: Decimal,
                           now: datetime) -> VenueOrder:
        """The documented PATCH race: ``old`` fills (its remaining quantity, at its own price) before
        the replacement reaches the venue, and the replacement ``new`` is rejected."""
        self._fill(old, old.remaining, price, now)
        new.status = "rejected"
        new.failed_at = now
        new.leg_ids = []
        new.oco_ids = []
        self.orders[new.id] = new
        self.by_client_id[new.client_order_id] = new
        self._touch(new, now)
        self.counters["orders_rejected"] += 1
        self.counters["replace_races"] = self.counters.get("replace_races", 0) + 1
        self._emit("rejected", new, now)
        return new

    # ---- positions ---------------------------------------------------------------------------
    def close_position(
        self, key: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> VenueOrder:
        inst = self.position_instrument(key)
        held = self.ledger.positions.get(inst.symbol) if inst is not None else None
        if inst is None or held is None:
            raise not_found("position does not exist")
        size = abs(held.qty)
        if qty is not None and percentage is not None:
            raise unprocessable("qty and percentage are exclusive")
        if percentage is not None:
            if percentage <= 0 or percentage > 100:
                raise unprocessable("percentage must be in (0, 100]")
            close_qty = (size * percentage / 100).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
            if not inst.is_crypto and (not inst.fractionable or _whole(size)) and percentage < 100:
                close_qty = close_qty.to_integral_value(rounding=ROUND_DOWN)
        elif qty is not None:
            close_qty = qty
        else:
            close_qty = size
        if close_qty <= 0:
            raise unprocessable("qty to close must be > 0")
        if close_qty > size:
            raise forbidden(
                f"insufficient qty available for order (requested: {dstr(close_qty)}, "
                f"available: {dstr(size)})",
                available=dstr(size),
                existing_qty=dstr(held.qty),
                held_for_orders="0",
                symbol=inst.symbol,
            )
        body = {
            "symbol": inst.symbol,
            "qty": str(close_qty),
            "side": "sell" if held.qty > 0 else "buy",
            "type": "market",
            "time_in_force": "gtc" if inst.is_crypto else "day",
        }
        return self.submit(body)
