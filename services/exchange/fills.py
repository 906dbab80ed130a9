"""Matching: when resting orders trade against the simulated NBBO, when prints elect stops, and
what a fill changes (the order, the position through ``Ledger.apply_fill``, the OCO sibling and the
bracket's exit legs). The rules are summarised in services/exchange/matching.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from services.domain.calendar import MarketCalendar
from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradeUpdateKind
from services.exchange.book import OrderBook
from services.exchange.ledger import q9
from services.exchange.order_checks import QTY_QUANTUM, whole
from services.exchange.orders import Execution, VenueOrder

PARTIAL_FILL_PROBABILITY = 0.10
# An elected buy stop on a stock is a stop-limit this far above its stop (Alpaca docs, stop orders).
STOP_COLLAR_UNDER_50 = Decimal("1.04")
STOP_COLLAR_50_AND_UP = Decimal("1.025")
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


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


class FillEngine(OrderBook):
    """The order book plus matching: quotes, prints, sweeps and fills."""

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
                if leg is not None and leg.is_open and leg.status != OrderStatus.HELD:
                    self._evaluate(leg, now)
            self._finish_immediate(o, now)

    def _finish_immediate(self, o: VenueOrder, now: datetime) -> None:
        """IOC/FOK: whatever did not fill at once is canceled."""
        if o.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and o.is_open:
            self._cancel(o, now, event=TradeUpdateKind.CANCELED)

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
                    self._cancel(pending, now, event=TradeUpdateKind.CANCELED)
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
            if t == OrderType.LIMIT or (t == OrderType.STOP_LIMIT and o.triggered):
                lp = o.limit_price
                if lp is not None and (lp < ask if o.side == OrderSide.BUY else lp > bid):
                    continue
            elif t in STOP_TYPES and not o.triggered:
                continue  # a stop waits for a print (on_trade), not for the quote
            candidates.append(o)
        if not candidates:
            return
        session = _SessionCache(self.calendar, now)
        for o in candidates:
            if o.is_open and o.status != OrderStatus.HELD:
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
            return o.hwm - o.trail_price if o.side == OrderSide.SELL else o.hwm + o.trail_price
        if o.trail_percent is not None:
            f = o.trail_percent / 100
            return q9(o.hwm * (1 - f) if o.side == OrderSide.SELL else o.hwm * (1 + f))
        return None

    def _evaluate(self, o: VenueOrder, now: datetime, session: _SessionCache | None = None) -> None:
        if self.paused or not o.is_open or o.status == OrderStatus.HELD:
            return
        nbbo = self.market.nbbo(o.symbol)
        if nbbo is None or nbbo.bid <= 0 or nbbo.ask <= 0 or self.market.is_halted(o.symbol):
            return
        if not self._session_ok(o, now, session or _SessionCache(self.calendar, now)):
            return
        buy = o.side == OrderSide.BUY
        touch = nbbo.ask if buy else nbbo.bid
        limit: Decimal | None = None
        if o.type == OrderType.LIMIT:
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
                self._cancel(o, now, event=TradeUpdateKind.CANCELED)
                return
            o.notional_qty = qty
        remaining = o.remaining
        if remaining <= 0:
            return
        qty = remaining
        if o.time_in_force != TimeInForce.FOK and self.rng.random() < PARTIAL_FILL_PROBABILITY:
            qty = self._partial(o, remaining)
        self._fill(o, qty, touch, now)

    @staticmethod
    def _elected_limit(o: VenueOrder) -> Decimal | None:
        """The limit an elected stop works at: its own for a stop-limit, Alpaca's collar for a buy
        stop on a stock, none (a market order) for a sell stop or a trailing stop."""
        if o.type == OrderType.STOP_LIMIT:
            return o.limit_price
        buy_stock_stop = o.type == OrderType.STOP and o.side == OrderSide.BUY and o.asset_class != "crypto"
        if buy_stock_stop and o.stop_price is not None:
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
            buy = o.side == OrderSide.BUY
            new_mark = o.hwm is None or (price < o.hwm if buy else price > o.hwm)
            if o.type == OrderType.TRAILING_STOP and new_mark:
                o.hwm = price
                o.stop_price = self._trail_stop(o)
                self._touch(o, now)
            stop = o.stop_price
            if stop is None or (price < stop if buy else price > stop):
                continue
            if o.status == OrderStatus.HELD:
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
        return o.order_class == OrderClass.OCO or parent.status == OrderStatus.FILLED

    def _activate_stop_loss(self, o: VenueOrder, now: datetime) -> None:
        """The elected stop-loss takes over: its take-profit is canceled, then it works."""
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is not None and sib.is_open:
                self._cancel(sib, now, event=TradeUpdateKind.CANCELED, cascade=False)
        o.status = OrderStatus.NEW
        self._touch(o, now)
        self._emit(TradeUpdateKind.NEW, o, now)

    def _partial(self, o: VenueOrder, remaining: Decimal) -> Decimal:
        if o.notional is None and o.qty is not None and whole(o.qty):
            shares = int(remaining)
            if shares < 2:
                return remaining
            return Decimal(self.rng.randint(1, shares - 1))
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
        o.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
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
            TradeUpdateKind.FILL if done else TradeUpdateKind.PARTIAL_FILL,
            o,
            now,
            Execution(str(uuid.uuid4()), price, qty, position_qty),
        )
        # OCO: a complete fill of one side cancels the other; a partial fill shrinks the other to
        # this side's remaining quantity, so the pair never sells more than the position.
        for sib_id in o.oco_ids:
            sib = self.orders.get(sib_id)
            if sib is None or not sib.is_open:
                continue
            if done:
                self._cancel(sib, now, event=TradeUpdateKind.CANCELED, cascade=False)
            elif sib.qty is not None and o.qty is not None and sib.qty - sib.filled_qty > o.remaining:
                sib.qty = sib.filled_qty + o.remaining
                self._touch(sib, now)
        if done and o.leg_ids and o.order_class in (OrderClass.BRACKET, OrderClass.OTO):
            for leg_id in o.leg_ids:
                leg = self.orders.get(leg_id)
                if leg is not None and leg.status == OrderStatus.HELD:
                    if o.order_class == OrderClass.BRACKET and leg.type in STOP_TYPES:
                        continue  # the stop-loss stays held until a print elects its stop
                    leg.status = OrderStatus.NEW
                    self._touch(leg, now)
                    self._emit(TradeUpdateKind.NEW, leg, now)
