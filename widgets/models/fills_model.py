"""Fills model: our executions as the OrderStore books them (append-only, bounded)."""

from __future__ import annotations

from PySide6.QtCore import QObject

from services.domain.models import Fill
from widgets.models.common import DOWN, UP, fmt_money, fmt_price, fmt_qty, fmt_timestamp, zoned
from widgets.models.table import Row, RowTableModel

MAX_FILLS = 10_000


def fill_key(fill: Fill) -> str:
    return f"{fill.order_id}:{fill.execution_id}"


class FillsTableModel(RowTableModel):
    COLUMNS = (zoned("Time"), "Symbol", "Side", "Qty", "Price", "Value", "Order id", "Execution id")
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
        return Row(key, cells, sort, f, {2: UP if f.side.value == "buy" else DOWN})
