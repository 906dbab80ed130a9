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

Fill rules (docs/alpaca-protocol.md §7): an order fills only when marketable against the NBBO, buys at
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

import uuid
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradeUpdateKind
from services.exchange import order_checks
from services.exchange.contracts import NBBO, Instrument
from services.exchange.errors import ApiError, forbidden, not_found, unprocessable
from services.exchange.fills import FillEngine
from services.exchange.ledger import dstr, q9
from services.exchange.order_checks import QTY_QUANTUM, check_increment, check_tradable, whole
from services.exchange.orders import CANCELABLE, REPLACEABLE, ZERO, VenueOrder
from services.exchange.requests import OrderRequest, ReplaceRequest

__all__ = ["MatchingEngine"]


class MatchingEngine(FillEngine):
    """Order entry on top of matching: submit, replace, cancel and close positions."""

    # ---- submit ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> VenueOrder:
        """Check a parsed order request and accept it (or raise ApiError). Returns the parent."""
        try:
            return self._submit(request)
        except ApiError:
            self.counters["orders_rejected"] += 1
            raise

    def _submit(self, req: OrderRequest) -> VenueOrder:
        now = self.clock()
        inst = req.instrument
        check_tradable(inst)
        limit_price = order_checks.order_class_limit(req)
        order_checks.check_prices(req, limit_price)
        order_checks.check_time_in_force(self.calendar, req.type, req.time_in_force, now)
        order_checks.check_asset_class(req)
        nbbo = self.market.nbbo(inst.symbol)
        if nbbo is None or nbbo.bid <= 0 or nbbo.ask <= 0:
            raise unprocessable(f'no quote for "{inst.symbol}" yet; orders cannot be priced')
        order_checks.check_against_touch(req, limit_price, nbbo)
        pos = self.ledger.position_qty(inst.symbol)
        opens_short = self._check_position(req, nbbo, pos)
        # ---- account rules (services/exchange/rules.py): shorting, PDT, minimums, crypto cash ----
        self._check_account_rules(
            inst, req.side, req.type, req.qty, req.notional, limit_price, nbbo, pos, opens_short
        )
        parent = self._new_order(req, limit_price, nbbo, pos, opens_short, now)
        cost = self._reservation(parent)
        if cost > 0 and cost > self.buying_power():
            raise forbidden(
                "insufficient buying power",
                buying_power=dstr(q9(self.buying_power())),
                cost_basis=dstr(q9(cost)),
            )
        self._accept(parent, self._exit_legs(req, parent, now), now)
        return parent

    def _check_position(self, req: OrderRequest, nbbo: NBBO, pos: Decimal) -> bool:
        """What the position allows: an exit no larger than what is held and not yet claimed, a
        short sale only of a shortable stock in whole shares. True when the order opens a short."""
        inst, side, qty, notional = req.instrument, req.side, req.qty, req.notional
        est_price = nbbo.ask if side == OrderSide.BUY else nbbo.bid
        req_qty = qty if qty is not None else q9(notional / est_price) if notional is not None else ZERO
        exit_order = req.order_class == OrderClass.OCO  # an OCO pair only exits an existing position
        increasing = (side == OrderSide.BUY and pos >= 0) or (side == OrderSide.SELL and pos <= 0)
        if not increasing or exit_order:
            held = self.held_for_orders(inst.symbol, side)
            available = max(abs(pos) - held, ZERO) if not increasing else ZERO
            if req_qty > available:
                raise self._insufficient_qty(inst.symbol, req_qty, available, pos, held)
        elif side == OrderSide.SELL:
            if inst.is_crypto or not inst.shortable:
                raise forbidden(f'asset "{inst.symbol}" cannot be sold short')
            if not whole(req_qty):
                raise forbidden("fractional orders cannot be sold short")
            return True
        return False

    @staticmethod
    def _insufficient_qty(
        symbol: str, requested: Decimal, available: Decimal, pos: Decimal, held: Decimal | str
    ) -> ApiError:
        return forbidden(
            f"insufficient qty available for order (requested: {dstr(requested)}, "
            f"available: {dstr(available)})",
            available=dstr(available),
            existing_qty=dstr(pos),
            held_for_orders=held if isinstance(held, str) else dstr(held),
            symbol=symbol,
        )

    def _new_order(
        self,
        req: OrderRequest,
        limit_price: Decimal | None,
        nbbo: NBBO,
        pos: Decimal,
        opens_short: bool,
        now: datetime,
    ) -> VenueOrder:
        inst = req.instrument
        parent = VenueOrder(
            id=str(uuid.uuid4()),
            client_order_id=req.client_order_id,
            symbol=inst.symbol,
            asset_id=inst.asset_id,
            asset_class=inst.asset_class,
            side=req.side,
            type=req.type,
            time_in_force=req.time_in_force,
            order_class=req.order_class,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
            submitted_at=now,
            qty=req.qty,
            notional=req.notional,
            limit_price=limit_price,
            stop_price=req.stop_price,
            trail_price=req.trail_price,
            trail_percent=req.trail_percent,
            extended_hours=req.extended_hours,
            opens_short=opens_short,
            position_intent=self._intent(req.side, pos),
        )
        self._set_window(parent, inst, now)
        if req.type == OrderType.TRAILING_STOP:
            # The high-water mark follows prints from the last one on; the quote when none yet.
            side = req.side
            parent.hwm = nbbo.last if nbbo.last > 0 else (nbbo.bid if side == OrderSide.SELL else nbbo.ask)
            parent.stop_price = self._trail_stop(parent)
        return parent

    def _exit_legs(self, req: OrderRequest, parent: VenueOrder, now: datetime) -> list[VenueOrder]:
        """The take-profit and stop-loss legs of a bracket, OCO or OTO order, linked to ``parent``."""
        tp_limit = req.take_profit.limit_price if req.take_profit else None
        sl_stop = req.stop_loss.stop_price if req.stop_loss else None
        sl_limit = req.stop_loss.limit_price if req.stop_loss else None
        exit_side = OrderSide.SELL if req.side == OrderSide.BUY else OrderSide.BUY
        legs: list[VenueOrder] = []
        if req.order_class == OrderClass.OCO:
            # Both sides of an OCO pair exit the same position, so they trade the same side; the
            # stop-loss is held until a print elects its stop, as a bracket's is.
            legs.append(self._leg(parent, req.side, "stop", sl_stop, sl_limit, now))
        else:
            if tp_limit is not None:
                legs.append(self._leg(parent, exit_side, "limit", None, tp_limit, now))
            if sl_stop is not None:
                legs.append(self._leg(parent, exit_side, "stop", sl_stop, sl_limit, now))
        for leg in legs:
            leg.qty = req.qty
        parent.leg_ids = [leg.id for leg in legs]
        if req.order_class == OrderClass.BRACKET:
            legs[0].oco_ids = [legs[1].id]
            legs[1].oco_ids = [legs[0].id]
        elif req.order_class == OrderClass.OCO:
            parent.oco_ids = [legs[0].id]
            legs[0].oco_ids = [parent.id]
        return legs

    def _accept(self, parent: VenueOrder, legs: list[VenueOrder], now: datetime) -> None:
        self.counters["orders_accepted"] += 1
        for o in (parent, *legs):
            self.orders[o.id] = o
            self.by_client_id[o.client_order_id] = o
            self._touch(o, now)
        self._emit(TradeUpdateKind.NEW, parent, now)
        for leg in legs:
            if leg.status == OrderStatus.NEW:
                self._emit(TradeUpdateKind.NEW, leg, now)
        self.pending.append(parent)  # matched once the request is answered: see match_pending

    @staticmethod
    def _intent(side: OrderSide, pos: Decimal) -> str:
        if side == OrderSide.BUY:
            return "buy_to_close" if pos < 0 else "buy_to_open"
        return "sell_to_close" if pos > 0 else "sell_to_open"

    def _leg(
        self,
        parent: VenueOrder,
        side: OrderSide,
        kind: str,
        stop: Decimal | None,
        limit: Decimal | None,
        now: datetime,
        *,
        status: OrderStatus = OrderStatus.HELD,
    ) -> VenueOrder:
        if kind == "limit":
            otype = OrderType.LIMIT
        else:
            otype = OrderType.STOP_LIMIT if limit is not None else OrderType.STOP
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
            position_intent="sell_to_close" if side == OrderSide.SELL else "buy_to_close",
        )
        leg.expires_at = parent.expires_at
        return leg

    def _set_window(self, o: VenueOrder, inst: Instrument, now: datetime) -> None:
        """When the order may trade (eligible_at) and when it lapses (expires_at)."""
        if inst.is_crypto or o.time_in_force in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK):
            return
        if o.time_in_force == TimeInForce.DAY:
            o.expires_at = self.calendar.next_close(now)
        elif o.time_in_force == TimeInForce.OPG:
            o.eligible_at = self.calendar.next_open(now)
            o.expires_at = o.eligible_at + timedelta(minutes=1)
        elif o.time_in_force == TimeInForce.CLS:
            close = self.calendar.next_close(now)
            o.eligible_at = close - timedelta(minutes=1)
            o.expires_at = close

    def cancel(self, order_id: str) -> VenueOrder:
        o = self.get(order_id)
        if o.status not in CANCELABLE or o.id in self.pending_cancels:
            raise unprocessable(f'order is already in "{o.status}" state')
        now = self.clock()
        if self.cancel_delay_s > 0:
            o.status = OrderStatus.PENDING_CANCEL
            self._touch(o, now)
            self._emit(TradeUpdateKind.PENDING_CANCEL, o, now)
            self.pending_cancels[o.id] = now + timedelta(seconds=self.cancel_delay_s)
            return o
        self._cancel(o, now, event=TradeUpdateKind.CANCELED)
        return o

    def cancel_all(self) -> list[VenueOrder]:
        now = self.clock()
        out: list[VenueOrder] = []
        for book in list(self.open_by_symbol.values()):
            for o in list(book.values()):
                if o.status in CANCELABLE and o.parent_id is None:
                    self._cancel(o, now, event=TradeUpdateKind.CANCELED)
                    out.append(o)
        for book in list(self.open_by_symbol.values()):  # orphans (legs whose parent already filled)
            for o in list(book.values()):
                if o.status in CANCELABLE:
                    self._cancel(o, now, event=TradeUpdateKind.CANCELED)
                    out.append(o)
        return out

    def check_replaceable(self, old: VenueOrder) -> None:
        if old.status not in REPLACEABLE or old.id in self.pending_cancels:
            raise unprocessable("unable to replace order in current state")

    def replace(self, old: VenueOrder, req: ReplaceRequest) -> VenueOrder:
        """PATCH: a new order takes the old one's place; the old becomes ``replaced``.

        The replacement starts unfilled and works its whole ``qty``: the one asked for, else the old
        order's original qty even when the old one was partially filled (Alpaca-API #165). It is
        checked as a new order would be: it never flips a position, and what it reserves beyond the
        old order's reservation must fit the buying power."""
        self.check_replaceable(old)
        now = self.clock()
        inst = self.universe[old.symbol]
        check_increment(inst, "limit_price", req.limit_price)
        check_increment(inst, "stop_price", req.stop_price)
        new = self._replacement(old, req, inst, now)
        # Buys and short sales: buying power is reduced by the larger of the two orders (PATCH
        # /v2/orders/{order_id}), so only what the replacement adds must fit.
        extra = self._reservation(new) - old.reserved
        if extra > 0 and extra > self.buying_power():
            raise forbidden("insufficient buying power")
        self._check_replacement_qty(old, new)
        race_price = old.limit_price if old.limit_price is not None else old.stop_price
        if self.replace_race_next > 0 and race_price is not None and old.qty is not None:
            self.replace_race_next -= 1
            return self._lose_replace_race(old, new, race_price, now)
        self._relink(old, new)
        old.status = OrderStatus.REPLACED
        old.replaced_by = new.id
        old.replaced_at = now
        old.leg_ids = []
        self._touch(old, now)
        self.orders[new.id] = new
        self.by_client_id[new.client_order_id] = new
        self._touch(new, now)
        self.counters["replaces"] += 1
        self._emit(TradeUpdateKind.REPLACED, old, now)
        self._emit(TradeUpdateKind.NEW, new, now)
        self.pending.append(new)  # matched once the request is answered, as a new order is
        return new

    def _replacement(
        self, old: VenueOrder, req: ReplaceRequest, inst: Instrument, now: datetime
    ) -> VenueOrder:
        """A copy of ``old`` under a new id, unfilled, with the fields ``req`` changes."""
        new = VenueOrder.from_record(old.to_record())
        new.id = str(uuid.uuid4())
        new.client_order_id = req.client_order_id
        new.created_at = new.updated_at = new.submitted_at = now
        new.replaces = old.id
        new.replaced_by = None
        new.reserved = ZERO
        new.status = OrderStatus.HELD if old.status == OrderStatus.HELD else OrderStatus.NEW
        new.filled_qty = ZERO
        new.filled_avg_price = None
        new.filled_at = None
        new.notional_qty = None
        new.time_in_force = req.time_in_force
        if req.qty is not None:
            new.qty = req.qty
        if req.limit_price is not None:
            new.limit_price = req.limit_price
        if req.stop_price is not None:
            new.stop_price = req.stop_price
        if req.trail is not None:
            if new.trail_price is not None:
                new.trail_price = req.trail
            else:
                new.trail_percent = req.trail
            new.stop_price = self._trail_stop(new)
        if req.time_in_force != old.time_in_force:
            new.expires_at = new.eligible_at = None
            self._set_window(new, inst, now)
        return new

    def _check_replacement_qty(self, old: VenueOrder, new: VenueOrder) -> None:
        """A replacement that exits may sell (or cover) no more than is held and not yet claimed."""
        pos = self.ledger.position_qty(old.symbol)
        exiting = (
            not new.opens_short
            and new.status != OrderStatus.HELD
            and (
                (new.side == OrderSide.SELL and pos > 0)
                or (new.side == OrderSide.BUY and pos < 0)
                or (new.position_intent or "").endswith("_to_close")
            )
        )
        if exiting and new.qty is not None:
            held = self.held_for_orders(old.symbol, new.side, exclude=[old.id, *old.oco_ids])
            same_side = pos > 0 if new.side == OrderSide.SELL else pos < 0
            available = max(abs(pos) - held, ZERO) if same_side else ZERO
            if new.qty > available:
                raise self._insufficient_qty(old.symbol, new.qty, available, pos, held)

    def _relink(self, old: VenueOrder, new: VenueOrder) -> None:
        """Re-link the order family: parent's legs, siblings, and legs' parent pointer."""
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
                if new.order_class == OrderClass.OCO:
                    leg.oco_ids = [new.id if i == old.id else i for i in leg.oco_ids]
                self.dirty_orders[leg.id] = leg

    def _lose_replace_race(
        self, old: VenueOrder, new: VenueOrder, price: Decimal, now: datetime
    ) -> VenueOrder:
        """The documented PATCH race: ``old`` fills (its remaining quantity, at its own price) before
        the replacement reaches the venue, and the replacement ``new`` is rejected."""
        self._fill(old, old.remaining, price, now)
        new.status = OrderStatus.REJECTED
        new.failed_at = now
        new.leg_ids = []
        new.oco_ids = []
        self.orders[new.id] = new
        self.by_client_id[new.client_order_id] = new
        self._touch(new, now)
        self.counters["orders_rejected"] += 1
        self.counters["replace_races"] = self.counters.get("replace_races", 0) + 1
        self._emit(TradeUpdateKind.REJECTED, new, now)
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
            if not inst.is_crypto and (not inst.fractionable or whole(size)) and percentage < 100:
                close_qty = close_qty.to_integral_value(rounding=ROUND_DOWN)
        elif qty is not None:
            close_qty = qty
        else:
            close_qty = size
        if close_qty <= 0:
            raise unprocessable("qty to close must be > 0")
        if close_qty > size:
            raise self._insufficient_qty(inst.symbol, close_qty, size, held.qty, "0")
        request = OrderRequest(
            instrument=inst,
            side=OrderSide.SELL if held.qty > 0 else OrderSide.BUY,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.GTC if inst.is_crypto else TimeInForce.DAY,
            order_class=OrderClass.SIMPLE,
            client_order_id=str(uuid.uuid4()),
            qty=close_qty,
        )
        try:  # the checks a request's qty passes (services/exchange/http/order_requests.py)
            check_tradable(inst)
            order_checks.check_quantity(close_qty)
        except ApiError:
            self.counters["orders_rejected"] += 1
            raise
        return self.submit(request)
