"""The order book of the local exchange: every order, the open ones indexed by symbol, what they
reserve of the buying power, the account rules that need them, and cancellation.

:class:`OrderBook` holds the state the matching engine works on (services/exchange/matching.py for
the overview); it records every change in ``dirty_orders`` and queues trade updates in ``outbox``
for the venue to persist and publish.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from services.domain.calendar import NEW_YORK, MarketCalendar
from services.domain.enums import OrderClass, OrderSide, OrderStatus, TimeInForce, TradeUpdateKind
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.exchange import rules
from services.exchange.contracts import NBBO, Instrument, MarketView
from services.exchange.errors import not_found
from services.exchange.ledger import DAYTRADE_MIN_EQUITY, SHORT_RESERVE, Ledger, q9
from services.exchange.order_checks import QTY_QUANTUM
from services.exchange.orders import ZERO, Execution, TradeUpdate, VenueOrder

MARKET_COLLAR = Decimal("1.03")
IMMEDIATE = frozenset({TimeInForce.IOC, TimeInForce.FOK})


class OrderBook:
    """The orders of one paper account, indexed by symbol, with what they reserve. The engine's
    base (fills.py adds matching, matching.py order entry). Not thread-safe; one loop owns it."""

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
        self.outbox: list[TradeUpdate] = []
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
                if o.status == OrderStatus.PENDING_CANCEL:  # a delayed cancel interrupted by a restart
                    self.pending_cancels[o.id] = self.clock()
                elif o.time_in_force in IMMEDIATE:  # accepted, but its first match never ran
                    self.pending.append(o)

    def _index(self, o: VenueOrder) -> None:
        self.open_by_symbol.setdefault(o.symbol, {})[o.id] = o
        if o.status != OrderStatus.HELD:
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
            (
                o.reserved
                for book in self.open_by_symbol.values()
                for o in book.values()
                if o.asset_class == "crypto" and o.side == OrderSide.BUY
            ),
            ZERO,
        )
        return self.ledger.cash - claimed

    def _check_account_rules(
        self,
        inst: Instrument,
        side: str,
        otype: str,
        qty: Decimal | None,
        notional: Decimal | None,
        limit_price: Decimal | None,
        nbbo: NBBO,
        pos: Decimal,
        opens_short: bool,
    ) -> None:
        ledger = self.ledger
        closes = (side == OrderSide.SELL and pos > 0) or (side == OrderSide.BUY and pos < 0)
        pdt_applies = (
            closes
            and not inst.is_crypto
            and ledger.account_type == "margin"
            and ledger.last_equity < DAYTRADE_MIN_EQUITY
        )
        trades = self.day_trades() if pdt_applies else rules.DayTrades(0, frozenset())
        pending = (
            [
                rules.PendingOrder(o.id, o.side, o.type)
                for o in self.open_by_symbol.get(inst.symbol, {}).values()
                if o.parent_id is None and o.order_class != OrderClass.OCO
            ]
            if pos == 0
            else []
        )
        rules.check_order(
            rules.OrderRequest(
                instrument=inst,
                side=side,
                type=otype,
                qty=qty,
                notional=notional,
                limit_price=limit_price,
                ask=nbbo.ask,
                bid=nbbo.bid,
                position_qty=pos,
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
            if o.status == OrderStatus.HELD and o.parent_id is not None:
                parent = self.orders.get(o.parent_id)
                if parent is not None and parent.side != o.side and parent.status != OrderStatus.FILLED:
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
        touch = (nbbo.ask if o.side == OrderSide.BUY else nbbo.bid) if nbbo is not None else ZERO
        if o.notional is None or touch <= 0:
            return ZERO
        return (o.notional / touch).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)

    def _reservation(self, o: VenueOrder) -> Decimal:
        exit_order = o.parent_id is not None or o.order_class == OrderClass.OCO
        if not o.is_open or o.status == OrderStatus.HELD or exit_order:
            return ZERO  # exits (legs, OCO pairs) close a position and reserve nothing
        if o.side == OrderSide.BUY:
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
            if o.status == OrderStatus.HELD:
                r = self.resting.get(o.symbol)
                if r is not None:
                    r.pop(o.id, None)
                    if not r:
                        del self.resting[o.symbol]
        else:
            self._unindex(o)
        self.dirty_orders[o.id] = o

    def _emit(
        self, event: TradeUpdateKind, o: VenueOrder, now: datetime, execution: Execution | None = None
    ) -> None:
        """Queue a trade update with ``o`` and its legs as they are now (they change afterwards)."""
        legs = tuple(copy.copy(self.orders[i]) for i in o.leg_ids if i in self.orders) if o.leg_ids else None
        self.outbox.append(TradeUpdate(event, now, copy.copy(o), legs, execution))

    # ---- cancel / expire ---------------------------------------------------------------------
    def _cancel(self, o: VenueOrder, now: datetime, *, event: TradeUpdateKind, cascade: bool = True) -> None:
        o.status = OrderStatus(event)
        if event == TradeUpdateKind.CANCELED:
            o.canceled_at = now
            self.counters["cancels"] += 1
        elif event == TradeUpdateKind.EXPIRED:
            o.expired_at = now
            self.counters["expirations"] += 1
        self._touch(o, now)
        self._emit(event, o, now)
        if not cascade:
            return
        # A parent that dies unfilled takes its held legs with it; a leg takes its OCO sibling.
        for leg_id in o.leg_ids:
            leg = self.orders.get(leg_id)
            if leg is None or not leg.is_open:
                continue
            if leg.status == OrderStatus.HELD or o.order_class == OrderClass.OCO:
                self._cancel(leg, now, event=event, cascade=False)
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is not None and sib.is_open:
                self._cancel(sib, now, event=event, cascade=False)

    def _expire(self, o: VenueOrder, now: datetime) -> None:
        self._cancel(o, now, event=TradeUpdateKind.EXPIRED)

    def get(self, order_id: str) -> VenueOrder:
        o = self.orders.get(order_id)
        if o is None:
            raise not_found("order not found")
        return o

    def sample_equity(self, now: datetime) -> None:
        point = (int(now.timestamp()), q9(self.ledger.equity(self.quotes())))
        if self.new_equity and self.new_equity[-1][0] == point[0]:
            self.new_equity[-1] = point
        else:
            self.new_equity.append(point)
