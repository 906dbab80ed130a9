"""Blotter models: every order the OrderStore reports, bounded, with a status/symbol filter proxy.

Bracket, OCO and OTO orders are shown as a group: Alpaca reports the exit orders of a multi-leg
order as its ``legs`` (``GET /v2/orders?nested=true`` "rolls up multi-leg orders under the legs
field of primary order"; each leg is an order with its own id), and Heron's store keeps each leg as
its own record pointing at its parent. :class:`OrdersTableModel` keeps every leg directly under its
parent, whatever the sort column (the group sorts by its parent's value), marks the parent ``▾`` /
``▸`` and each leg ``└``, and names the leg's role (take profit / stop loss) in the Class column. A
collapsed parent hides its legs through :class:`OrdersFilterProxy`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression, Signal

from services.domain.enums import OrderClass, OrderStatus, OrderType
from services.domain.models import Order
from services.domain.money import decimal_str
from widgets.models.common import (
    DASH,
    DOWN,
    STATUS_COLORS,
    STATUS_GROUPS,
    UP,
    fmt_price,
    fmt_qty,
    fmt_timestamp,
    zoned,
)
from widgets.models.table import Row, RowFilterProxy, RowTableModel

MAX_ORDERS = 5_000

_NEG_INF = float("-inf")

EXPANDED = "▾ "
COLLAPSED = "▸ "
LEG = "   └ "


@dataclass(frozen=True, slots=True)
class OrderRow:
    """What one blotter row shows: the store's :class:`Order` view, who sent it, and (for a leg of
    a bracket / OCO / OTO order) its parent's logical id."""

    order: Order
    source: str = ""
    parent: str | None = None


class LegRole(StrEnum):
    """What an exit leg does. Alpaca's take-profit leg is a limit order and its stop-loss leg a stop
    or stop-limit order (Alpaca docs, "Orders": bracket orders)."""

    TAKE_PROFIT = "take profit"
    STOP_LOSS = "stop loss"


def leg_role(order: Order) -> LegRole:
    return LegRole.TAKE_PROFIT if order.type is OrderType.LIMIT else LegRole.STOP_LOSS


def status_group(status: OrderStatus) -> str:
    for name, members in STATUS_GROUPS.items():
        if members is not None and status in members:
            return name.lower()
    return "other"


_GROUP_OF = {status: status_group(status) for status in OrderStatus}


def trail_text(order: Order) -> str:
    """``$1.50`` for a trail amount, ``2.5%`` for a trail percent, a dash otherwise."""
    if order.trail_price is not None:
        return f"${decimal_str(order.trail_price)}"
    if order.trail_percent is not None:
        return f"{decimal_str(order.trail_percent)}%"
    return DASH


def _f(value: Any) -> float:
    return _NEG_INF if value is None else float(value)


class OrdersTableModel(RowTableModel):
    """Rows keyed by the order's logical id (stable across replaces). Closed orders trim first.

    Legs sort with their parent (see the module docstring); :meth:`set_collapsed` folds a group.
    """

    COLUMNS = (
        zoned("Time"), "Symbol", "Side", "Type", "Class", "Qty", "Filled", "Limit", "Stop", "Trail",
        "Avg fill", "Status", "TIF", "Source", "Client order id",
    )  # fmt: skip
    HEADER_TIPS = (
        "When the order was created (▾ / ▸: a bracket, OCO or OTO order with its legs; click to "
        "fold)",
        "", "",
        "Order type",
        "Order class: simple, bracket, OCO or OTO; a leg shows its role (take profit / stop loss)",
        "Quantity ordered (or the notional amount)", "Quantity filled so far", "Limit price",
        "Stop price", "Trailing stop: trail amount ($) or trail percent (%)", "Average fill price",
        "", "Time in force", "Who sent the order", "",
    )  # fmt: skip
    NUMERIC = frozenset({5, 6, 7, 8, 9, 10})
    CLASS_COL = 4
    TRAIL_COL = 9
    STATUS_COL = 11

    #: a group was folded or unfolded (the proxy re-filters)
    collapsedChanged = Signal()

    def __init__(self, parent: QObject | None = None, *, max_rows: int = MAX_ORDERS) -> None:
        super().__init__(parent, max_rows=max_rows)
        self._parent_of: dict[str, str] = {}
        self._children: dict[str, list[str]] = {}
        self._legs: dict[str, OrderRow] = {}  # the newest payload of every leg
        self.collapsed: set[str] = set()

    # -- groups -----------------------------------------------------------------------------------
    def _link(self, key: str, payload: OrderRow) -> None:
        parent = payload.parent
        if parent is None or parent == key:
            return
        self._legs[key] = payload
        if self._parent_of.get(key) != parent:
            self._parent_of[key] = parent
            self._children.setdefault(parent, []).append(key)

    def legs_of(self, key: str) -> list[str]:
        """The logical ids of ``key``'s legs, in arrival order."""
        return list(self._children.get(key, ()))

    def parent_of(self, key: str) -> str | None:
        return self._parent_of.get(key)

    def _in_group(self, key: str) -> bool:
        return key in self._parent_of or key in self._children

    def set_collapsed(self, key: str, collapsed: bool) -> None:
        """Fold (hide the legs of) or unfold the group of parent ``key``."""
        if collapsed == (key in self.collapsed):
            return
        if collapsed:
            self.collapsed.add(key)
        else:
            self.collapsed.discard(key)
        payload = self.payload(key)
        if payload is not None:
            self.stage(key, payload)
            self.flush()
        self.collapsedChanged.emit()

    def stage(self, key: str, payload: Any) -> None:
        self._link(key, payload)
        super().stage(key, payload)
        if payload.parent is not None:
            # the parent's row shows its legs' statuses in its filter key and its fold marker
            parent = self._pending.get(payload.parent) or self.payload(payload.parent)
            if parent is not None:
                super().stage(payload.parent, parent)

    def stage_many(self, items: Any) -> None:
        legs: list[tuple[str, OrderRow]] = []

        def simple() -> Any:  # the common case goes to the base class's loop untouched
            for key, payload in items:
                if payload.parent is None:
                    yield key, payload
                else:
                    legs.append((key, payload))

        super().stage_many(simple())
        for key, payload in legs:
            self.stage(key, payload)

    def reset_rows(self, items: Any) -> None:
        items = list(items)
        self._parent_of.clear()
        self._children.clear()
        self._legs.clear()
        for key, payload in items:
            self._link(key, payload)
        super().reset_rows(items)

    def flush(self) -> int:
        grouped = bool(self._parent_of) and any(self._in_group(k) for k in self._pending)
        n = super().flush()
        if grouped:
            # a leg's place depends on its parent's row: re-order once, after every row is made
            self._relayout()
        return n

    def _key(self, row: Row) -> tuple[Any, ...]:
        c = self._sort_col
        if not self._parent_of:  # no group at all: the plain key (the hot path of big blotters)
            return (row.seq,) if c < 0 else (row.sort[c], row.seq)
        parent = self._parent_of.get(row.key)
        anchor = self._by_key.get(parent) if parent is not None else None
        if anchor is None:
            return (row.seq, 0) if c < 0 else (row.sort[c], row.seq, 0)
        sub = -row.seq if self._desc else row.seq  # legs follow their parent in arrival order
        return (anchor.seq, sub) if c < 0 else (anchor.sort[c], anchor.seq, sub)

    def _trim(self) -> None:
        before = self.trimmed_total
        super()._trim()
        if self.trimmed_total != before:
            self._forget_gone()

    def remove_key(self, key: str) -> bool:
        removed = super().remove_key(key)
        self._forget_gone()
        return removed

    def _forget_gone(self) -> None:
        for key in [k for k in self._legs if k not in self._by_key]:
            del self._legs[key]
            parent = self._parent_of.pop(key, None)
            siblings = self._children.get(parent or "")
            if siblings is not None and key in siblings:
                siblings.remove(key)
                if not siblings:
                    del self._children[parent or ""]
        self.collapsed &= set(self._by_key)

    def removable(self, row: Row) -> bool:
        if not row.payload.order.status.is_terminal:
            return False
        legs = self._children.get(row.key, ())
        return all(self._legs[k].order.status.is_terminal for k in legs if k in self._legs)

    # -- rows -------------------------------------------------------------------------------------
    def make_row(self, key: str, payload: OrderRow) -> Row:
        o = payload.order
        qty = o.qty if o.qty is not None else None
        qty_text = fmt_qty(qty) if qty is not None else (f"${o.notional}" if o.notional is not None else DASH)
        ts = o.created_at
        children = self._children.get(key)
        legs = [self._legs[k] for k in children if k in self._legs] if children else []
        is_leg = key in self._parent_of
        time_text = fmt_timestamp(ts)
        if legs:
            time_text = (COLLAPSED if key in self.collapsed else EXPANDED) + time_text
        elif is_leg:
            time_text = LEG + time_text
        if is_leg:
            class_text = f"{leg_role(o).value}"
        elif o.order_class is OrderClass.SIMPLE and not legs:
            class_text = "simple"
        else:
            class_text = o.order_class.value if o.order_class is not OrderClass.SIMPLE else "multi-leg"
        cells = [
            time_text, o.symbol, o.side.value.upper(), o.type.value, class_text, qty_text,
            fmt_qty(o.filled_qty), fmt_price(o.limit_price), fmt_price(o.stop_price), trail_text(o),
            fmt_price(o.filled_avg_price), o.status.value, o.time_in_force.value, payload.source,
            o.client_order_id,
        ]  # fmt: skip
        trail = o.trail_price if o.trail_price is not None else o.trail_percent
        sort = [
            ts.timestamp(), o.symbol, o.side.value, o.type.value, class_text, _f(qty),
            float(o.filled_qty), _f(o.limit_price), _f(o.stop_price), _f(trail), _f(o.filled_avg_price),
            o.status.value, o.time_in_force.value, payload.source, o.client_order_id,
        ]  # fmt: skip
        colors = {2: UP if o.side.value == "buy" else DOWN}
        color = STATUS_COLORS.get(o.status)
        if color is not None:
            colors[self.STATUS_COL] = color
        # a parent is listed under every status group one of its legs is in (a filled entry whose
        # stop-loss still works is an open bracket); a leg under its own; the parent id comes last
        groups = _GROUP_OF[o.status]
        if legs:
            groups = ",".join(sorted({groups} | {_GROUP_OF[lg.order.status] for lg in legs}))
        parent_id = self._parent_of.get(key, "") if is_leg else ""
        filter_key = f"{groups};{o.symbol};{parent_id}"
        return Row(key, cells, sort, payload, colors, filter_key)

    def order(self, key: str) -> Order | None:
        p = self.payload(key)
        return None if p is None else p.order

    def working_keys(self) -> list[str]:
        """The keys of every order this model holds that is still working (legs included)."""
        return [r.key for r in self._rows if r.payload.order.status.is_open]


class OrdersFilterProxy(RowFilterProxy):
    """Filter by status group and symbol text, and hide the legs of folded groups; sorting is the
    source model's own.

    All three are one regular expression over the row's ``"groups;SYMBOL;parent"`` key, so
    filtering runs in C++.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group = "All"
        self.symbol_text = ""
        self._apply()

    def setSourceModel(self, source: Any) -> None:
        old = self.sourceModel()
        if isinstance(old, OrdersTableModel):
            old.collapsedChanged.disconnect(self._apply)
        super().setSourceModel(source)
        if isinstance(source, OrdersTableModel):
            source.collapsedChanged.connect(self._apply)
        self._apply()

    def set_group(self, group: str) -> None:
        if group not in STATUS_GROUPS:
            raise ValueError(f"unknown status group {group!r}; known: {', '.join(STATUS_GROUPS)}")
        self.group = group
        self._apply()

    def set_symbol_text(self, text: str) -> None:
        self.symbol_text = text.strip().upper()
        self._apply()

    def _apply(self) -> None:
        group = "[^;]*" if self.group == "All" else f"(?:[^;]*,)?{re.escape(self.group.lower())}(?:,[^;]*)?"
        sym = re.escape(self.symbol_text)
        src = self.sourceModel()
        folded = sorted(src.collapsed) if isinstance(src, OrdersTableModel) else []
        hide = f"(?!(?:{'|'.join(re.escape(k) for k in folded)})$)" if folded else ""
        self.setFilterRegularExpression(QRegularExpression(f"^{group};[^;]*{sym}[^;]*;{hide}"))


def _leg_role_of(row: OrderRow) -> str | None:
    return leg_role(row.order).value if row.parent is not None else None


#: the orders CSV: every value as data (see :mod:`widgets.csv_export`)
ORDER_CSV: tuple[tuple[str, Any], ...] = (
    ("created_at", lambda r: r.order.created_at),
    ("symbol", lambda r: r.order.symbol),
    ("side", lambda r: r.order.side),
    ("type", lambda r: r.order.type),
    ("order_class", lambda r: r.order.order_class),
    ("leg_role", _leg_role_of),
    ("parent_client_order_id", lambda r: r.parent),
    ("qty", lambda r: r.order.qty),
    ("notional", lambda r: r.order.notional),
    ("filled_qty", lambda r: r.order.filled_qty),
    ("limit_price", lambda r: r.order.limit_price),
    ("stop_price", lambda r: r.order.stop_price),
    ("trail_price", lambda r: r.order.trail_price),
    ("trail_percent", lambda r: r.order.trail_percent),
    ("filled_avg_price", lambda r: r.order.filled_avg_price),
    ("status", lambda r: r.order.status),
    ("time_in_force", lambda r: r.order.time_in_force),
    ("source", lambda r: r.source or None),
    ("client_order_id", lambda r: r.order.client_order_id),
    ("order_id", lambda r: r.order.id or None),
)
