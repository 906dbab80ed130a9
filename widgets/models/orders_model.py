"""Blotter models: every order the OrderStore reports, bounded, with a status/symbol filter proxy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression, QSortFilterProxyModel, Qt

from services.domain.enums import OrderStatus
from services.domain.models import Order
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
from widgets.models.table import FILTER_ROLE, SORT_ROLE, Row, RowTableModel

MAX_ORDERS = 5_000

_NEG_INF = float("-inf")


@dataclass(frozen=True, slots=True)
class OrderRow:
    """What one blotter row shows: the store's :class:`Order` view plus who sent it."""

    order: Order
    source: str = ""


def status_group(status: OrderStatus) -> str:
    for name, members in STATUS_GROUPS.items():
        if members is not None and status in members:
            return name.lower()
    return "other"


def _f(value: Any) -> float:
    return _NEG_INF if value is None else float(value)


class OrdersTableModel(RowTableModel):
    """Rows keyed by the order's logical id (stable across replaces). Closed orders trim first."""

    COLUMNS = (
        zoned("Time"), "Symbol", "Side", "Type", "Qty", "Filled", "Limit", "Stop", "Avg fill",
        "Status", "TIF", "Source", "Client order id",
    )  # fmt: skip
    NUMERIC = frozenset({4, 5, 6, 7, 8})
    STATUS_COL = 9

    def __init__(self, parent: QObject | None = None, *, max_rows: int = MAX_ORDERS) -> None:
        super().__init__(parent, max_rows=max_rows)

    def make_row(self, key: str, payload: OrderRow) -> Row:
        o = payload.order
        qty = o.qty if o.qty is not None else None
        qty_text = fmt_qty(qty) if qty is not None else (f"${o.notional}" if o.notional is not None else DASH)
        ts = o.created_at
        cells = [
            fmt_timestamp(ts),
            o.symbol,
            o.side.value.upper(),
            o.type.value,
            qty_text,
            fmt_qty(o.filled_qty),
            fmt_price(o.limit_price),
            fmt_price(o.stop_price),
            fmt_price(o.filled_avg_price),
            o.status.value,
            o.time_in_force.value,
            payload.source,
            o.client_order_id,
        ]
        sort = [
            ts.timestamp(), o.symbol, o.side.value, o.type.value, _f(qty), float(o.filled_qty),
            _f(o.limit_price), _f(o.stop_price), _f(o.filled_avg_price), o.status.value,
            o.time_in_force.value, payload.source, o.client_order_id,
        ]  # fmt: skip
        colors = {2: UP if o.side.value == "buy" else DOWN}
        color = STATUS_COLORS.get(o.status)
        if color is not None:
            colors[self.STATUS_COL] = color
        return Row(key, cells, sort, payload, colors, f"{status_group(o.status)};{o.symbol}")

    def removable(self, row: Row) -> bool:
        return bool(row.payload.order.status.is_terminal)

    def order(self, key: str) -> Order | None:
        p = self.payload(key)
        return None if p is None else p.order


class OrdersFilterProxy(QSortFilterProxyModel):
    """Filter by status group and symbol text; sorting is the source model's own.

    Both filters are one regular expression over the row's ``"group;SYMBOL"`` key, so filtering
    runs in C++ (a Python ``filterAcceptsRow`` costs ~2 µs x every row on each change).
    :meth:`sort` (the header click) re-orders the source :class:`RowTableModel` by its
    precomputed numeric keys; this proxy keeps the source's order, so it never sorts through
    Python ``data()`` calls (3.4M of them for 100k rows).
    """

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        src = self.sourceModel()
        if isinstance(src, RowTableModel):
            src.sort(column, order)
            return
        super().sort(column, order)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterRole(FILTER_ROLE)
        self.setFilterKeyColumn(0)
        self.setDynamicSortFilter(True)
        self.group = "All"
        self.symbol_text = ""
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
        group = "[^;]*" if self.group == "All" else re.escape(self.group.lower())
        sym = re.escape(self.symbol_text)
        rx = QRegularExpression(f"^{group};[^;]*{sym}")
        self.setFilterRegularExpression(rx)

    def source_key(self, proxy_row: int) -> str:
        src = self.mapToSource(self.index(proxy_row, 0))
        return str(self.sourceModel().data(src, Qt.ItemDataRole.UserRole + 3))
