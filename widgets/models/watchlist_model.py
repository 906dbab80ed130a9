"""Watchlist model: one row per watched symbol, cells from the QuoteBook's :class:`BookEntry`."""

from __future__ import annotations

from PySide6.QtCore import QObject

from services.marketdata.book import BookEntry
from widgets.models.common import DASH, fmt_pct, fmt_price, fmt_qty, sign_color
from widgets.models.table import Row, RowTableModel


def _f(v: object) -> float:
    return float("-inf") if v is None else float(v)  # type: ignore[arg-type]


class WatchlistTableModel(RowTableModel):
    """Rows in the user's order. ``None`` payload: the symbol has no data yet (all dashes)."""

    COLUMNS = ("Symbol", "Bid", "Ask", "Last", "Spread", "Chg %", "Volume")
    NUMERIC = frozenset({1, 2, 3, 4, 5, 6})
    REPAINT_SAME = False  # a quote whose sizes alone changed shows nothing new

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent, max_rows=10_000)

    def make_row(self, key: str, payload: BookEntry | None) -> Row:
        e = payload
        if e is None:
            return Row(key, [key] + [DASH] * 6, [key] + [float("-inf")] * 6, None)
        cells = [
            key,
            fmt_price(e.bid),
            fmt_price(e.ask),
            fmt_price(e.last),
            fmt_price(e.spread),
            fmt_pct(e.change_pct),
            fmt_qty(e.volume),
        ]
        sort = [key, _f(e.bid), _f(e.ask), _f(e.last), _f(e.spread), _f(e.change_pct), float(e.volume)]
        colors = {}
        color = sign_color(e.change_pct)
        if color is not None:
            colors[5] = color
        return Row(key, cells, sort, e, colors)

    def symbols(self) -> list[str]:
        return self.keys()
