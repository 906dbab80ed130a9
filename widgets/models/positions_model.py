"""Positions model: the OrderStore's positions (from fills) marked with the QuoteBook's last price.

The numbers come from services: quantity, average price and realized P&L from
:class:`~services.orders.store.LocalPosition`, unrealized P&L from ``OrderStore.unrealized`` (or
``LocalPosition.unrealized`` with the book's mark), day P&L from the broker's position report when
one has been received (see :func:`day_pl`). Market value is shown as quantity x last price.

Day P&L has the account panel's meaning: today's change against the last close. Alpaca defines a
position's ``unrealized_intraday_pl`` as the "unrealized profit/loss in dollars for the day" and
``lastday_price`` as the "last day's asset price per share based on the closing value of the last
trading day" (alpaca-py ``Position``, from Alpaca's Trading API reference); shares bought today
count from their entry, not from the last close (docs/alpaca-rules.md). The account's day P&L is
``equity - last_equity``, the same change measured on the whole account (so it also holds today's
realized P&L and cash movements).
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
    day_pl: Decimal | None  # the broker's unrealized intraday P&L re-marked at ``last``
    realized: Decimal


def day_pl(qty: Decimal, last: Decimal | None, broker: Position | None) -> Decimal | None:
    """The broker's ``unrealized_intraday_pl`` re-marked at the live ``last`` price.

    Between two position reports only the price moves the figure: ``qty x (last - current_price)``
    is added to what the broker reported at its ``current_price``. None (nothing to show) without a
    report, or when the report's quantity is no longer the position's (a fill since then: which
    shares were bought today is known only to the broker until its next report).
    """
    if broker is None or broker.unrealized_intraday_pl is None or broker.qty != qty:
        return None
    if last is None or broker.current_price is None:
        return broker.unrealized_intraday_pl
    return broker.unrealized_intraday_pl + qty * (last - broker.current_price)


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
        day_pl=day_pl(pos.qty, last, bp),
        realized=pos.realized_pl,
    )


def _f(v: Decimal | None) -> float:
    return float("-inf") if v is None else float(v)


class PositionsTableModel(RowTableModel):
    COLUMNS = ("Symbol", "Qty", "Avg price", "Last", "Mkt value", "Unrealized", "Day P&L", "Realized")
    HEADER_TIPS = (
        "",
        "Quantity held (negative when short)",
        "Average entry price (weighted average today, compressed FIFO across days, as Alpaca)",
        "Last traded price (the mark for the P&L columns)",
        "Market value: quantity x last price",
        "Unrealized P&L: (last - average entry price) x quantity",
        "Day P&L: today's unrealized change against the last close, as the broker reports it "
        "(unrealized_intraday_pl; shares bought today count from their entry), re-marked at the last "
        "price. The account's Day P&L is equity minus the last close's equity, so it also holds "
        "today's realized P&L",
        "Realized P&L of the position's closed lots",
    )
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
