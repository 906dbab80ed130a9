"""Small helpers shared by the panels: number formatting, colours, confirmations, widget naming.

Formatting only: nothing here computes a business number.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMessageBox, QWidget

from services.domain.enums import OrderClass, OrderStatus, TradingState
from services.domain.models import OrderRequest
from services.domain.money import decimal_str
from widgets import theme

log = logging.getLogger("heron.widgets")

DASH = "—"
UP = QColor(theme.UP)
DOWN = QColor(theme.DOWN)
MUTED = QColor(theme.MUTED)
WARN = QColor(theme.WARN)
INFO = QColor(theme.INFO)

#: Status groups for the blotter filter.
STATUS_GROUPS: dict[str, frozenset[OrderStatus] | None] = {
    "Open": frozenset(s for s in OrderStatus if s.is_open),
    "All": None,
    "Filled": frozenset({OrderStatus.FILLED}),
    "Canceled": frozenset(
        {OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED, OrderStatus.DONE_FOR_DAY}
    ),
    "Rejected": frozenset({OrderStatus.REJECTED, OrderStatus.SUSPENDED}),
}

#: The trading state's colour (account panel and status bar).
TRADING_STATE_COLORS: dict[TradingState, str] = {
    TradingState.ACTIVE: theme.UP,
    TradingState.REDUCING: theme.WARN,
    TradingState.HALTED: theme.DOWN,
    TradingState.DISABLED: theme.MUTED,
}

STATUS_COLORS: dict[OrderStatus, QColor] = {
    OrderStatus.FILLED: UP,
    OrderStatus.PARTIALLY_FILLED: QColor(theme.PARTIAL),
    OrderStatus.NEW: INFO,
    OrderStatus.ACCEPTED: INFO,
    OrderStatus.PENDING_NEW: WARN,
    OrderStatus.PENDING_CANCEL: WARN,
    OrderStatus.PENDING_REPLACE: WARN,
    OrderStatus.CANCELED: MUTED,
    OrderStatus.EXPIRED: MUTED,
    OrderStatus.REPLACED: MUTED,
    OrderStatus.DONE_FOR_DAY: MUTED,
    OrderStatus.REJECTED: DOWN,
    OrderStatus.SUSPENDED: DOWN,
}


def fmt_price(value: Decimal | None) -> str:
    """Prices: 2 decimals at or above 1, up to 6 below (crypto and penny prices)."""
    if value is None:
        return DASH
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return decimal_str(value.quantize(Decimal("0.000001"))) or "0"


def fmt_timestamp(ts: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the timestamp's own zone. Not ``strftime``: under PySide6 every
    ``strftime`` call imports ``time`` through shiboken's Python import hook (~8 µs, twice), which
    was half the cost of building a blotter row."""
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} {ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"


def fmt_money(value: Decimal | None, *, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def fmt_qty(value: Decimal | None) -> str:
    if value is None:
        return DASH
    text = decimal_str(value) or "0"
    if abs(value) < 1000:
        return text
    whole, dot, frac = text.partition(".")
    return f"{int(whole):,}{dot}{frac}"  # 1,325.434855: thousands grouped, every decimal kept


def fmt_pct(value: Decimal | None) -> str:
    if value is None:
        return DASH
    return f"{value:+.2f}%"


def sign_color(value: Decimal | None) -> QColor | None:
    if value is None or value == 0:
        return None
    return UP if value > 0 else DOWN


def describe_request(request: OrderRequest) -> str:
    """One line naming an order request (side, amount, type, prices, time in force, legs)."""
    amount = (
        f"{decimal_str(request.qty)} {request.symbol}"
        if request.qty is not None
        else f"${decimal_str(request.notional)} of {request.symbol}"
    )
    parts = [f"{request.side.value.upper()} {amount}", request.type.value]
    if request.limit_price is not None:
        parts.append(f"limit {decimal_str(request.limit_price)}")
    if request.stop_price is not None:
        parts.append(f"stop {decimal_str(request.stop_price)}")
    if request.trail_price is not None:
        parts.append(f"trail ${decimal_str(request.trail_price)}")
    if request.trail_percent is not None:
        parts.append(f"trail {decimal_str(request.trail_percent)}%")
    parts.append(request.time_in_force.value)
    if request.extended_hours:
        parts.append("extended hours")
    if request.order_class is not OrderClass.SIMPLE:
        parts.append(f"{request.order_class.value}")
        if request.take_profit is not None:
            parts.append(f"TP {decimal_str(request.take_profit.limit_price)}")
        if request.stop_loss is not None:
            parts.append(f"SL {decimal_str(request.stop_loss.stop_price)}")
    return " · ".join(parts)


def confirm(parent: QWidget | None, title: str, text: str) -> bool:
    """A modal yes/no question; the default button is No (a stray Enter does not send anything)."""
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


W = TypeVar("W")


def named(widget: W, name: str, **props: Any) -> W:
    """Set ``objectName`` and Qt properties by setter (``placeholderText=`` → ``setPlaceholderText``);
    typed, unlike PySide's constructor keywords."""
    widget.setObjectName(name)  # type: ignore[attr-defined]
    for key, value in props.items():
        getattr(widget, "set" + key[0].upper() + key[1:])(value)
    return widget
