"""Clock and calendar routes: /v2/clock, /v2/calendar (with settlement dates), /v3/clock and
/v3/calendar/{market} (alpaca-py pull request #702: MarketClock, PublicCalendarResp)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web

from services.domain.calendar import NEW_YORK, MarketCalendar, Session, nyse_holidays
from services.exchange.errors import bad_request, not_found, unprocessable
from services.exchange.http.params import date_param, json_answer

# "The calendar API serves the full list of market days from 1970 to 2029" (Alpaca's Calendar docs).
CALENDAR_FIRST = date(1970, 1, 1)
CALENDAR_LAST = date(2029, 12, 31)
# The markets /v3/clock and /v3/calendar/{market} serve: US equities on the NYSE calendar.
V3_MARKETS: dict[str, dict[str, str]] = {
    "NYSE": {
        "acronym": "NYSE",
        "name": "New York Stock Exchange",
        "timezone": "America/New_York",
        "mic": "XNYS",
    },
    "NASDAQ": {"acronym": "NASDAQ", "name": "Nasdaq", "timezone": "America/New_York", "mic": "XNAS"},
}
_MARKET_ALIASES = {"XNYS": "NYSE", "XNAS": "NASDAQ"}


# ---- settlement ------------------------------------------------------------------------------------
def _nth_monday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7 * (n - 1))


@lru_cache(maxsize=256)
def _bank_holidays_on_trading_days(year: int) -> frozenset[date]:
    """Federal holidays on which the NYSE trades but securities do not settle (banks and DTC closed)."""
    out: set[date] = set()
    if year >= 1971:
        out.add(_nth_monday(year, 10, 2))  # Columbus Day
    else:
        out.add(date(year, 10, 12))
    if 1971 <= year <= 1977:
        out.add(_nth_monday(year, 10, 4))  # Veterans Day on the fourth Monday of October
    else:
        vet = date(year, 11, 11)
        if vet.weekday() == 6:
            vet += timedelta(days=1)
        if vet.weekday() < 5:
            out.add(vet)
    return frozenset(out)


def settlement_cycle(day: date) -> int:
    """Business days to settlement under SEC Rule 15c6-1: T+3 from 1995-06-07, T+2 from 2017-09-05,
    T+1 from 2024-05-28 (T+5 before)."""
    if day >= date(2024, 5, 28):
        return 1
    if day >= date(2017, 9, 5):
        return 2
    if day >= date(1995, 6, 7):
        return 3
    return 5


@lru_cache(maxsize=1 << 15)
def settlement_date(day: date) -> date:
    """The settlement day of a trade on ``day``: the cycle counted in business days (NYSE trading
    days that are not bank holidays)."""
    left = settlement_cycle(day)
    out = day
    while left:
        out += timedelta(days=1)
        if (
            out.weekday() < 5
            and out not in nyse_holidays(out.year)
            and out not in _bank_holidays_on_trading_days(out.year)
        ):
            left -= 1
    return out


def _calendar_range(q: Any) -> tuple[date, date]:
    start = date_param(q, "start") or CALENDAR_FIRST
    end = date_param(q, "end") or CALENDAR_LAST
    if end < start:
        raise unprocessable("end must not be before start")
    return max(start, CALENDAR_FIRST), min(end, CALENDAR_LAST)


def _v3_market(name: str) -> dict[str, str] | None:
    key = name.strip().upper()
    return V3_MARKETS.get(_MARKET_ALIASES.get(key, key))


def _v3_time(ts: datetime, utc: bool) -> str:
    if utc:
        return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ts.astimezone(NEW_YORK).isoformat(timespec="seconds")


@lru_cache(maxsize=8)
def _v2_calendar_body(always_open: bool, start: date, end: date) -> bytes:
    """GET /v2/calendar's JSON body (Alpaca's Calendar entity with session_open/close, settlement)."""
    out = []
    for s in MarketCalendar(always_open=always_open).sessions(start, end):
        o, c = s.open.astimezone(NEW_YORK), s.close.astimezone(NEW_YORK)
        eo, ec = s.extended_open.astimezone(NEW_YORK), s.extended_close.astimezone(NEW_YORK)
        close = c.strftime("%H:%M") if c.date() == s.day else "23:59"  # always-open days end at midnight
        ext_close = ec.strftime("%H%M") if ec.date() == s.day else "2359"
        out.append(
            {
                "date": s.day.isoformat(),
                "open": o.strftime("%H:%M"),
                "close": close,
                "session_open": eo.strftime("%H%M"),
                "session_close": ext_close,
                "settlement_date": settlement_date(s.day).isoformat(),
            }
        )
    return json.dumps(out, separators=(",", ":")).encode()


@lru_cache(maxsize=8)
def _v3_calendar_days(always_open: bool, start: date, end: date, utc: bool) -> bytes:
    """The ``calendar`` array of GET /v3/calendar/{market} (alpaca-py PR #702 CalendarDay)."""
    days = [
        {
            "date": s.day.isoformat(),
            "pre_start": _v3_time(s.extended_open, utc),
            "pre_end": _v3_time(s.open, utc),
            "core_start": _v3_time(s.open, utc),
            "core_end": _v3_time(s.close, utc),
            "post_start": _v3_time(s.close, utc),
            "post_end": _v3_time(s.extended_close, utc),
            "settlement_date": settlement_date(s.day).isoformat(),
        }
        for s in MarketCalendar(always_open=always_open).sessions(start, end)
    ]
    return json.dumps(days, separators=(",", ":")).encode()


class ClockApi:
    """The clock and calendar routes of one exchange."""

    def __init__(self, calendar: MarketCalendar, clock: Callable[[], datetime]) -> None:
        self.calendar = calendar
        self.clock = clock

    async def get_clock(self, request: web.Request) -> web.Response:
        now = self.clock()
        cal = self.calendar
        return json_answer(
            {
                "timestamp": now.astimezone(NEW_YORK).isoformat(),
                "is_open": cal.is_open(now),
                "next_open": cal.next_open(now).astimezone(NEW_YORK).isoformat(),
                "next_close": cal.next_close(now).astimezone(NEW_YORK).isoformat(),
            }
        )

    async def get_calendar(self, request: web.Request) -> web.Response:
        start, end = _calendar_range(request.query)
        # Up to 60 years of sessions: rendered off the event loop, and cached (the calendar is pure).
        body = await asyncio.to_thread(_v2_calendar_body, self.calendar.always_open, start, end)
        return web.Response(body=body, content_type="application/json")

    def _market_clock(self, market: dict[str, str], now: datetime) -> dict[str, Any]:
        cal = self.calendar
        today = cal.session(now.astimezone(NEW_YORK).date())
        # The session of the market day in progress (until its close), else the next one.
        current = today if today is not None and now < today.close else None
        upcoming = current or self._next_session(now)
        phase, until = "closed", upcoming.extended_open
        if today is not None and today.extended_open <= now < today.extended_close:
            if now < today.open:
                phase, until = "pre", today.open
            elif now < today.close:
                phase, until = "core", today.close
            else:
                phase, until = "post", today.extended_close
        elif today is not None and now < today.extended_open:
            until = today.extended_open
        return {
            "market": market,
            "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "is_market_day": today is not None,
            "next_market_open": _v3_time(upcoming.open, False),
            "next_market_close": _v3_time(upcoming.close, False),
            "phase": phase,
            "phase_until": _v3_time(until, False),
        }

    def _next_session(self, now: datetime) -> Session:
        day = now.astimezone(NEW_YORK).date() + timedelta(days=1)
        for _ in range(15):
            s = self.calendar.session(day)
            if s is not None:
                return s
            day += timedelta(days=1)
        raise RuntimeError("no session within 15 days")  # pragma: no cover - calendar invariant

    async def get_clock_v3(self, request: web.Request) -> web.Response:
        q = request.query
        names = [m for m in (q.get("markets") or "NYSE").split(",") if m.strip()]
        markets = []
        for name in names or ["NYSE"]:
            market = _v3_market(name)
            if market is None:
                raise bad_request(
                    f"unsupported market: {name.strip()!r} (this exchange serves {', '.join(V3_MARKETS)})"
                )
            markets.append(market)
        raw = q.get("time")
        if raw:
            try:
                now = datetime.fromisoformat(raw.strip().replace(" ", "+").replace("Z", "+00:00"))
            except ValueError:
                raise bad_request(f"invalid time: {raw!r} (expected RFC3339)") from None
            if now.tzinfo is None:
                raise bad_request(f"invalid time: {raw!r} (a time zone offset is required)")
            if not CALENDAR_FIRST.year <= now.year <= CALENDAR_LAST.year:
                span = f"{CALENDAR_FIRST.year}-{CALENDAR_LAST.year}"
                raise bad_request(f"invalid time: {raw!r} is outside {span}")
            now = now.astimezone(UTC)
        else:
            now = self.clock()
        return json_answer({"clocks": [self._market_clock(m, now) for m in markets]})

    async def get_calendar_v3(self, request: web.Request) -> web.Response:
        market = _v3_market(request.match_info["market"])
        if market is None:
            name = request.match_info["market"]
            raise not_found(f"unknown market: {name!r} (this exchange serves {', '.join(V3_MARKETS)})")
        q = request.query
        tz = (q.get("timezone") or "").strip().upper()
        if tz not in ("", "UTC"):
            raise unprocessable(f"invalid timezone: {q.get('timezone')!r} (UTC, or none for the market's)")
        start, end = _calendar_range(q)
        days = await asyncio.to_thread(_v3_calendar_days, self.calendar.always_open, start, end, tz == "UTC")
        head = json.dumps(market, separators=(",", ":")).encode()
        body = b'{"market":' + head + b',"calendar":' + days + b"}"
        return web.Response(body=body, content_type="application/json")
