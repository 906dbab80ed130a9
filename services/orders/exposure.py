"""Working orders and exposure for the risk gate: what :meth:`ExecutionEngine.risk_context` counts.

Per symbol, working buys (sells) are the leaves of open buy (sell) orders. Legs of one bracket, OCO
or OTO count once per side (only one exit can fill), and exits on the other side of an entry count
only for what the entry has filled. Gross exposure is, per symbol, the larger of |position + working
buys| and |position - working sells| at the mark, so shorts and working short sales count. A
notional order's leaves are its notional at the mark (its qty is unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.domain.enums import OrderSide
from services.orders.records import OrderRecord
from services.orders.store import OrderStore

ZERO = Decimal(0)

LastPrice = Callable[[str], Decimal | None]


@dataclass(slots=True)
class WorkingOrders:
    """Leaves of working orders per symbol and side, and the number of open orders (legs apart)."""

    buys: dict[str, Decimal]
    sells: dict[str, Decimal]
    open_count: int


@dataclass(slots=True)
class Exposure:
    """Worst-case gross, net, and the working buys and sells valued at the mark."""

    gross: Decimal
    net: Decimal
    pending_buys: Decimal
    pending_sells: Decimal


def working_orders(
    store: OrderStore, opens: list[OrderRecord], last_price: LastPrice, replacing: str | None
) -> WorkingOrders:
    """``replacing`` leaves out the order a replacement would take the place of."""
    buys: dict[str, Decimal] = {}
    sells: dict[str, Decimal] = {}
    groups: dict[tuple[str, OrderSide, str], Decimal] = {}
    open_count = 0
    buy_side = OrderSide.BUY
    for rec in opens:
        parent = rec.parent_client_order_id
        if parent is None:
            open_count += 1
        if replacing is not None and replacing in (rec.client_order_id, parent):
            continue
        sym = rec.symbol
        qty = rec.qty
        if qty is None:  # notional order: value its remaining notional at the mark
            notional = rec.snapshot.notional if rec.snapshot is not None else None
            mark = last_price(sym)
            if notional is None or not mark:
                continue
            leaves = notional / mark - rec.filled_qty
        else:
            leaves = qty - rec.filled_qty
        if leaves <= 0:
            continue
        if parent is None:
            side_map = buys if rec.side is buy_side else sells
            side_map[sym] = side_map.get(sym, ZERO) + leaves
        else:
            key = (parent, rec.side, sym)
            if leaves > groups.get(key, ZERO):
                groups[key] = leaves
    for (parent_id, side, sym), leaves in groups.items():
        parent_rec = store.get(parent_id)
        if parent_rec is not None:
            if parent_rec.side is not side:  # exits of an entry: only what the entry filled
                leaves = min(leaves, parent_rec.filled_qty)
            elif parent_rec.state.is_open and parent_rec.leaves_qty:  # OCO: one of the two fills
                leaves = max(leaves - (parent_rec.leaves_qty or ZERO), ZERO)
        if leaves:
            side_map = buys if side is buy_side else sells
            side_map[sym] = side_map.get(sym, ZERO) + leaves
    return WorkingOrders(buys, sells, open_count)


def exposure(
    store: OrderStore,
    opens: list[OrderRecord],
    positions: Mapping[str, Decimal],
    working: WorkingOrders,
    last_price: LastPrice,
) -> Exposure:
    """Symbols without a mark are valued at their position's average price, else at a working
    order's limit or stop."""
    buys, sells = working.buys, working.sells
    gross = net = pend_buy = pend_sell = ZERO
    for sym in positions.keys() | buys.keys() | sells.keys():
        qty = positions.get(sym, ZERO)
        b = buys.get(sym, ZERO)
        s_ = sells.get(sym, ZERO)
        if not qty and not b and not s_:
            continue
        mark = last_price(sym)
        if not mark:
            pos = store.positions.get(sym)
            mark = pos.avg_price if pos is not None and pos.avg_price else order_price(store, opens, sym)
        gross += max(abs(qty + b), abs(qty - s_)) * mark
        net += qty * mark
        pend_buy += b * mark
        pend_sell += s_ * mark
    return Exposure(gross, net, pend_buy, pend_sell)


def order_price(store: OrderStore, opens: list[OrderRecord], symbol: str) -> Decimal:
    """A price for a symbol with working orders but no mark and no position: an order's limit
    or stop (zero when none has one)."""
    for rec in opens:
        if rec.symbol == symbol:
            meta = store.meta(rec.client_order_id)
            price = (meta.limit_price or meta.stop_price) if meta is not None else None
            if price:
                return price
    return ZERO
