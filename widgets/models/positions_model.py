"""Positions model: the OrderStore's positions (from fills) marked with the QuoteBook's last price.

The numbers come from services: quantity, average price and realized P&L from
:class:`~services.orders.store.LocalPosition`, unrealized P&L from ``OrderStore.unrealized`` (or
``LocalPosition.unrealized`` with the book's mark), day P&L from the broker's position report when
one has been received. Market value is shown as quantity x last price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from PySide6.QtCore import QObject

from services.domain.models import Position
from services.orders.positions import LocalPosition
from widgets.models.common import MUTED, fmt_money, fmt_price, fmt_qty, sign_color
from widgets.models.table import Row, RowTableModel


class Marks(Protocol):
    def last_price(self, symbol: str) -> Decimal | None: ...


class PositionSource(Protocol):
    positions: dict[str, LocalPosition]

    def unrealized(self, symbol: str) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    qty: Decimal
    avg_price: Decimal
    last: Decimal | None
    market_value: Decimal | None
    unrealized: Decimal | None
    day_pl: Decimal | None  # the broker's unrealized intraday P&L, when reported
    realized: Decimal


def position_view(
    store: PositionSource, marks: Marks, symbol: str, broker: Mapping[str, Position] | None = None
) -> PositionView | None:
    pos = store.positions.get(symbol)
    if pos is None:
        return None
    last = marks.last_price(symbol)
    unreal = store.unrealized(symbol)
    if unreal is None:
        unreal = pos.unrealized(last)
    bp = broker.get(symbol) if broker else None
    return PositionView(
        symbol=symbol,
        qty=pos.qty,
        avg_price=pos.avg_price,
        last=last,
        market_value=pos.qty * last if last is not None else None,
        unrealized=unreal if pos.qty != 0 else Decimal(0),
        day_pl=bp.unrealized_intraday_pl if bp is not None else None,
        realized=pos.realized_pl,
    )


def _f(v: Decimal | None) -> float:
    return float("-inf") if v is None else float(v)


class PositionsTableModel(RowTableModel):
    COLUMNS = ("Symbol", "Qty", "Avg price", "Last", "Market value", "Unrealized P&L",
               "Day P&L", "Realized P&L")  # fmt: skip
    NUMERIC = frozenset({1, 2, 3, 4, 5, 6, 7})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent, max_rows=10_000)

    def make_row(self, key: str, payload: PositionView) -> Row:
        p = payload
        cells = [
            p.symbol,
            fmt_qty(p.qty),
            fmt_price(p.avg_price) if p.qty != 0 else "—",
            fmt_price(p.last),
            fmt_money(p.market_value),
            fmt_money(p.unrealized, signed=True),
            fmt_money(p.day_pl, signed=True),
            fmt_money(p.realized, signed=True),
        ]
        sort = [p.symbol, float(p.qty), float(p.avg_price), _f(p.last), _f(p.market_value),
                _f(p.unrealized), _f(p.day_pl), float(p.realized)]  # fmt: skip
        colors = {}
        for col, value in ((5, p.unrealized), (6, p.day_pl), (7, p.realized)):
            c = sign_color(value)
            if c is not None:
                colors[col] = c
        if p.qty == 0:
            colors[0] = colors[1] = MUTED
        return Row(key, cells, sort, p, colors)
