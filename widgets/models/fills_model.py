"""Fills model: our executions as the OrderStore books them (append-only, bounded), and the symbol
filter the blotter's Fills tab shares with its Orders tab."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression

from services.domain.models import Fill
from widgets.models.common import DOWN, UP, fmt_money, fmt_price, fmt_qty, fmt_timestamp, zoned
from widgets.models.table import Row, RowFilterProxy, RowTableModel

MAX_FILLS = 10_000


def fill_key(fill: Fill) -> str:
    return f"{fill.order_id}:{fill.execution_id}"


class FillsTableModel(RowTableModel):
    COLUMNS = (zoned("Time"), "Symbol", "Side", "Qty", "Price", "Value", "Order id", "Execution id")
    HEADER_TIPS = ("When the execution happened", "", "", "Quantity executed", "Execution price",
                   "Quantity x price", "The broker's order id", "The broker's execution id")  # fmt: skip
    NUMERIC = frozenset({3, 4, 5})

    def __init__(self, parent: QObject | None = None, *, max_rows: int = MAX_FILLS) -> None:
        super().__init__(parent, max_rows=max_rows)

    def make_row(self, key: str, payload: Fill) -> Row:
        f = payload
        value = f.qty * f.price  # display of a fill's value (qty x price), not a P&L figure
        cells = [
            fmt_timestamp(f.ts),
            f.symbol,
            f.side.value.upper(),
            fmt_qty(f.qty),
            fmt_price(f.price),
            fmt_money(value),
            f.order_id,
            f.execution_id,
        ]
        sort = [f.ts.timestamp(), f.symbol, f.side.value, float(f.qty), float(f.price), float(value),
                f.order_id, f.execution_id]  # fmt: skip
        return Row(key, cells, sort, f, {2: UP if f.side.value == "buy" else DOWN}, f.symbol)


class FillsFilterProxy(RowFilterProxy):
    """The fills whose symbol contains the filter text (the same rule as the orders' filter)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.symbol_text = ""
        self.set_symbol_text("")

    def set_symbol_text(self, text: str) -> None:
        self.symbol_text = text.strip().upper()
        self.setFilterRegularExpression(QRegularExpression(f"^[^;]*{re.escape(self.symbol_text)}"))


#: the fills CSV: every value as data (see :mod:`widgets.csv_export`)
FILL_CSV: tuple[tuple[str, Any], ...] = (
    ("time", lambda f: f.ts),
    ("symbol", lambda f: f.symbol),
    ("side", lambda f: f.side),
    ("qty", lambda f: f.qty),
    ("price", lambda f: f.price),
    ("value", lambda f: f.qty * f.price),
    ("order_id", lambda f: f.order_id),
    ("client_order_id", lambda f: f.client_order_id),
    ("execution_id", lambda f: f.execution_id),
)
