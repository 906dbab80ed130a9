"""NYSE trading sessions (regular hours, holidays, early closes), or a market that never closes.

Holidays follow NYSE's published rules, computed for any year, so the exchange and its history
generator agree on which minutes are trading minutes without a stored table. Shared by the terminal
(risk hours, trading start-up) and the local exchange (sessions, clock, calendar routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
PRE_MARKET_OPEN = time(4, 0)
AFTER_HOURS_CLOSE = time(20, 0)


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day: regular open and close as UTC datetimes, plus the extended-hours bounds."""

    day: date
    open: datetime
    close: datetime
    extended_open: datetime
    extended_close: datetime


def _easter(year: int) -> date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date) -> date | None:
    if d.weekday() == 5:  # Saturday -> Friday before (NYSE skips this for New Year's Day)
        return None if (d.month, d.day) == (1, 1) else d - timedelta(days=1)
    if d.weekday() == 6:  # Sunday -> Monday
        return d + timedelta(days=1)
    return d


@lru_cache(maxsize=64)
def nyse_holidays(year: int) -> frozenset[date]:
    """Full-day NYSE closures in ``year``."""
    fixed = [date(year, 1, 1), date(year, 7, 4), date(year, 12, 25)]
    if year >= 2022:
        fixed.append(date(year, 6, 19))
    days = {obs for d in fixed if (obs := _observed(d)) is not None}
    # New Year's Day of next year falling on a Saturday is not observed on Dec 31.
    days |= {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
    }
    return frozenset(d for d in days if d.year == year)


@lru_cache(maxsize=64)
def nyse_early_closes(year: int) -> frozenset[date]:
    """Days NYSE closes at 13:00 New York time."""
    holidays = nyse_holidays(year)
    candidates = [
        date(year, 7, 3),
        _nth_weekday(year, 11, 3, 4) + timedelta(days=1),  # day after Thanksgiving
        date(year, 12, 24),
    ]
    return frozenset(d for d in candidates if d.weekday() < 5 and d not in holidays)


def _at(day: date, t: time) -> datetime:
    return datetime.combine(day, t, tzinfo=NEW_YORK).astimezone(UTC)


class MarketCalendar:
    """Trading sessions for US equities. ``always_open=True`` makes every minute a trading minute.

    Crypto trades around the clock regardless; ask :meth:`is_open_for` with the asset class.
    All methods take and return UTC-aware datetimes and are pure (safe from any thread).
    """

    def __init__(self, *, always_open: bool = False) -> None:
        self.always_open = always_open

    def session(self, day: date) -> Session | None:
        """The session on ``day`` (a New York calendar date), or None when the market is closed."""
        if self.always_open:
            start = datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK).astimezone(UTC)
            return Session(day, start, end, start, end)
        if day.weekday() >= 5 or day in nyse_holidays(day.year):
            return None
        close = EARLY_CLOSE if day in nyse_early_closes(day.year) else REGULAR_CLOSE
        ext_close = time(17, 0) if close == EARLY_CLOSE else AFTER_HOURS_CLOSE
        return Session(
            day,
            _at(day, REGULAR_OPEN),
            _at(day, close),
            _at(day, PRE_MARKET_OPEN),
            _at(day, ext_close),
        )

    def sessions(self, start: date, end: date) -> list[Session]:
        """Every session from ``start`` to ``end`` inclusive."""
        out: list[Session] = []
        day = start
        while day <= end:
            s = self.session(day)
            if s is not None:
                out.append(s)
            day += timedelta(days=1)
        return out

    def is_open(self, ts: datetime) -> bool:
        """Regular-hours equity market open at ``ts``."""
        s = self.session(ts.astimezone(NEW_YORK).date())
        return s is not None and s.open <= ts < s.close

    def is_extended(self, ts: datetime) -> bool:
        """Inside pre-market or after-hours (but not regular hours)."""
        s = self.session(ts.astimezone(NEW_YORK).date())
        if s is None or self.always_open:
            return False
        return s.extended_open <= ts < s.extended_close and not (s.open <= ts < s.close)

    def is_open_for(self, asset_class: str, ts: datetime) -> bool:
        return asset_class == "crypto" or self.is_open(ts)

    def next_open(self, ts: datetime) -> datetime:
        day = ts.astimezone(NEW_YORK).date()
        for _ in range(15):
            s = self.session(day)
            if s is not None and s.open > ts:
                return s.open
            day += timedelta(days=1)
        raise RuntimeError("no session within 15 days")  # pragma: no cover - calendar invariant

    def next_close(self, ts: datetime) -> datetime:
        day = ts.astimezone(NEW_YORK).date()
        for _ in range(15):
            s = self.session(day)
            if s is not None and s.close > ts:
                return s.close
            day += timedelta(days=1)
        raise RuntimeError("no session within 15 days")  # pragma: no cover - calendar invariant

    def current_session(self, ts: datetime) -> Session | None:
        """The session whose regular hours contain ``ts``."""
        s = self.session(ts.astimezone(NEW_YORK).date())
        return s if s is not None and s.open <= ts < s.close else None
