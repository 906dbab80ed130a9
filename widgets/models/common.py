"""Small helpers shared by the panels: number and time formatting, colours, confirmations, widget
naming.

Times are shown in one zone for the whole window, :data:`TIMES` (exchange time, America/New_York,
by default: US equities trade on it; UTC or the computer's local zone as a setting). Every time
cell goes through :func:`fmt_timestamp` / :func:`fmt_clock` / :func:`fmt_minute`, and every time
column's title is :func:`zoned`, shown with its zone ("Time (ET)"). Changing the zone re-renders
the tables that show times (their models listen to ``TIMES.changed``).

Formatting only: nothing here computes a business number.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from PySide6.QtCore import QObject, Signal
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


class TimeDisplay(StrEnum):
    """The zone times are shown in (the ``ui.time_zone`` setting)."""

    EXCHANGE = "exchange"  # America/New_York: the US equity market's clock
    UTC = "utc"
    LOCAL = "local"  # this computer's zone


#: The US equity exchanges' time zone (NYSE/Nasdaq sessions are defined in it).
EXCHANGE_TZ = ZoneInfo("America/New_York")

TIME_DISPLAY_TEXT = {
    TimeDisplay.EXCHANGE: "Exchange time (ET, New York)",
    TimeDisplay.UTC: "UTC",
    TimeDisplay.LOCAL: "This computer's time zone",
}


class TimeZoneChoice(QObject):
    """The window's display zone; ``changed`` after :meth:`set` picks another. GUI thread only."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.display = TimeDisplay.EXCHANGE

    def set(self, display: TimeDisplay | str) -> None:
        display = TimeDisplay(display)
        if display is not self.display:
            self.display = display
            self.changed.emit()

    @property
    def tz(self) -> tzinfo | None:
        """None: the computer's local zone."""
        if self.display is TimeDisplay.EXCHANGE:
            return EXCHANGE_TZ
        return UTC if self.display is TimeDisplay.UTC else None

    def label(self) -> str:
        """What a header says: ``ET``, ``UTC`` or the local zone's abbreviation."""
        if self.display is TimeDisplay.EXCHANGE:
            return "ET"
        if self.display is TimeDisplay.UTC:
            return "UTC"
        return datetime.now().astimezone().tzname() or "local"


#: The one display zone of this window.
TIMES = TimeZoneChoice()


def in_display_zone(ts: datetime) -> datetime:
    """``ts`` (UTC-aware) in the display zone; a naive timestamp is taken as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(TIMES.tz)


def fmt_timestamp(ts: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the display zone. Not ``strftime``: under PySide6 every
    ``strftime`` call imports ``time`` through shiboken's Python import hook (~8 µs, twice), which
    was half the cost of building a blotter row."""
    ts = in_display_zone(ts)
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} {ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"


def fmt_clock(ts: datetime, *, ms: bool = False) -> str:
    """``HH:MM:SS`` (``.mmm`` with ``ms``) in the display zone."""
    ts = in_display_zone(ts)
    text = f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    return f"{text}.{ts.microsecond // 1000:03d}" if ms else text


def fmt_duration(seconds: float | None, *, compact: bool = False) -> str:
    """A span in whole seconds: ``4 min 05 s`` / ``2 h 03 min`` (``4m 05s`` / ``2h 03m`` compact);
    ``—`` for None. Negative spans read as 0."""
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    sec, minute, hour = ("s", "m", "h") if compact else (" s", " min", " h")
    if s < 60:
        return f"{s}{sec}"
    if s < 3600:
        return f"{s // 60}{minute} {s % 60:02d}{sec}"
    return f"{s // 3600}{hour} {s % 3600 // 60:02d}{minute}"


def fmt_minute(ts: datetime) -> str:
    """``YYYY-MM-DD HH:MM`` in the display zone."""
    return fmt_timestamp(ts)[:16]


class ZonedTitle(str):
    """A column title that names a time: shown with the display zone (:func:`header_text`)."""

    __slots__ = ()


def zoned(title: str) -> ZonedTitle:
    return ZonedTitle(title)


def header_text(title: str) -> str:
    """A column's header: a :class:`ZonedTitle` says its zone, ``Time (ET)``."""
    return f"{title} ({TIMES.label()})" if isinstance(title, ZonedTitle) else title


def shows_times(titles: Any) -> bool:
    """Whether any of ``titles`` (strings or columns with ``title``) is a time column."""
    return any(isinstance(t, ZonedTitle) or isinstance(getattr(t, "title", None), ZonedTitle) for t in titles)


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
