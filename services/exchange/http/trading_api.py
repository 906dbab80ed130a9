"""Alpaca trading REST handlers (/v2/...), shaped exactly as alpaca-protocol.md §2 lists.

Authentication, rate limiting and turning :class:`ApiError` into a JSON body are the server's
middleware; handlers here parse defensively (alpaca-py sends booleans as ``True``, numbers as
floats, lists comma-joined) and raise :class:`ApiError` for every bad input.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from aiohttp import web

from services.domain.calendar import NEW_YORK, MarketCalendar, Session, nyse_holidays
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.exchange.errors import ApiError, bad_request, not_found, unprocessable
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.http.trading_stream import STREAM_PATHS, TradeStreamHub
from services.exchange.ledger import dstr, position_symbol, q9
from services.exchange.orders import OPEN_STATUSES, VenueOrder
from services.exchange.venue import TradingVenue

MAX_ORDERS_LIMIT = 500
MAX_ACTIVITY_PAGE = 100
# "The calendar API serves the full list of market days from 1970 to 2029" (Alpaca's Calendar docs).
CALENDAR_FIRST = date(1970, 1, 1)
CALENDAR_LAST = date(2029, 12, 31)
# GET /v2/orders ?asset_class: the classes Alpaca accepts (its Trading API changelog 2026-06-24 added
# the last seven); only us_equity and crypto orders exist on this exchange, the others match nothing.
ORDER_ASSET_CLASSES = frozenset({
    "us_equity", "us_option", "crypto", "crypto_perp", "treasury", "ipo", "corporate", "global_equity",
    "us_index", "us_equity_chain",
})
# The markets /v3/clock and /v3/calendar/{market} serve: US equities on the NYSE calendar.
V3_MARKETS: dict[str, dict[str, str]] = {
    "NYSE": {"acronym": "NYSE", "name": "New York Stock Exchange", "timezone": "America/New_York",
             "mic": "XNYS"},
    "NASDAQ": {"acronym": "NASDAQ", "name": "Nasdaq", "timezone": "America/New_York", "mic": "XNAS"},
}
_MARKET_ALIASES = {"XNYS": "NYSE", "XNAS": "NASDAQ"}

_PERIOD_UNITS = {"D": 1, "W": 7, "M": 30, "A": 365}
_TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86400}


# ---- query parsing ---------------------------------------------------------------------------------
def _bool_param(q: Any, key: str, default: bool = False) -> bool:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise unprocessable(f"invalid {key}: {raw!r} (expected true or false)")


def _int_param(q: Any, key: str, default: int, *, lo: int = 1, hi: int | None = None) -> int:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r}") from None
    if value < lo:
        raise unprocessable(f"{key} must be >= {lo}")
    return min(value, hi) if hi is not None else value


def _time_param(q: Any, key: str) -> datetime | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    text = raw.strip().replace(" ", "+")  # an unencoded '+' in a query string arrives as a space
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r} (expected RFC3339 or YYYY-MM-DD)") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _date_param(q: Any, key: str) -> date | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r} (expected YYYY-MM-DD)") from None


def _direction(q: Any) -> str:
    d = (q.get("direction") or "desc").lower()
    if d not in ("asc", "desc"):
        raise unprocessable(f"invalid direction: {d!r}")
    return d


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body is empty")
    try:
        return json.loads(raw, parse_float=str, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"malformed JSON body: {e}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )


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
    start = _date_param(q, "start") or CALENDAR_FIRST
    end = _date_param(q, "end") or CALENDAR_LAST
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


def add_trading_routes(app: web.Application, venue: TradingVenue) -> None:
    """Serve ``venue``: the /v2 trading routes, and /stream through a hub attached to the venue."""
    hub = TradeStreamHub(venue.keys, venue.faults)
    venue.hub = hub
    TradingApi(venue).add_routes(app)
    for path in STREAM_PATHS:
        app.router.add_get(path, hub.handle)


class TradingApi:
    """The /v2 trading routes of one venue."""

    def __init__(self, venue: TradingVenue) -> None:
        self.venue = venue
        self.engine = venue.engine

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/account", self.get_account)
        r.add_get("/v2/account/configurations", self.get_configurations)
        r.add_get("/v2/account/activities", self.get_activities)
        r.add_get("/v2/account/activities/{activity_type}", self.get_activities)
        r.add_get("/v2/account/portfolio/history", self.get_portfolio_history)
        r.add_post("/v2/orders", self.post_order)
        r.add_get("/v2/orders", self.list_orders)
        r.add_delete("/v2/orders", self.cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self.get_by_client_id)
        r.add_get("/v2/orders/{order_id}", self.get_order)
        r.add_patch("/v2/orders/{order_id}", self.replace_order)
        r.add_delete("/v2/orders/{order_id}", self.cancel_order)
        r.add_get("/v2/positions", self.list_positions)
        r.add_delete("/v2/positions", self.close_all)
        r.add_get("/v2/positions/{symbol:.+}", self.get_position)
        r.add_delete("/v2/positions/{symbol:.+}", self.close_position)
        r.add_get("/v2/assets", self.list_assets)
        r.add_get("/v2/assets/{symbol:.+}", self.get_asset)
        r.add_get("/v2/clock", self.get_clock)
        r.add_get("/v2/calendar", self.get_calendar)
        r.add_get("/v3/clock", self.get_clock_v3)
        r.add_get("/v3/calendar/{market}", self.get_calendar_v3)

    # ---- account ------------------------------------------------------------------------------
    async def get_account(self, request: web.Request) -> web.Response:
        return _json(self.venue.account_json())

    async def get_configurations(self, request: web.Request) -> web.Response:
        return _json(
            {
                "dtbp_check": "entry",
                "fractional_trading": True,
                "max_margin_multiplier": "1",
                "no_shorting": False,
                "pdt_check": "entry",
                "suspend_trade": False,
                "trade_confirm_email": "none",
                "ptp_no_exception_entry": False,
                "max_options_trading_level": 0,
            }
        )

    async def get_activities(self, request: web.Request) -> web.Response:
        q = request.query
        kind = request.match_info.get("activity_type")
        types = (
            {kind.upper()}
            if kind
            else {t.strip().upper() for t in q.get("activity_types", "FILL").split(",")}
        )
        if "FILL" not in types and not types & {"TRANS", "ALL"}:
            return _json([])  # the paper venue only produces FILL activities
        after, until = _time_param(q, "after"), _time_param(q, "until")
        day = _date_param(q, "date")
        direction = _direction(q)
        page_size = _int_param(q, "page_size", MAX_ACTIVITY_PAGE, hi=MAX_ACTIVITY_PAGE)
        token = q.get("page_token")
        items: Iterable[dict[str, Any]] = self.venue.ledger.activities
        if direction == "desc":
            items = reversed(self.venue.ledger.activities)
        out: list[dict[str, Any]] = []
        passed_token = token is None
        for a in items:
            if not passed_token:
                passed_token = a["id"] == token
                continue
            ts = datetime.fromisoformat(a["transaction_time"].replace("Z", "+00:00"))
            if (after and ts <= after) or (until and ts >= until):
                continue
            if day and ts.astimezone(NEW_YORK).date() != day:
                continue
            out.append(a)
            if len(out) >= page_size:
                break
        return _json(out)

    async def get_portfolio_history(self, request: web.Request) -> web.Response:
        q = request.query
        now = self.venue.clock()
        end = _time_param(q, "end") or _time_param(q, "date_end") or now
        start = _time_param(q, "start")
        period = q.get("period")
        if start is None:
            days = self._period_days(period or "1M")
            start = end - timedelta(days=days)
        elif period:
            end = min(end, start + timedelta(days=self._period_days(period)))
        span = end - start
        tf_name = q.get("timeframe") or (
            "1D" if span >= timedelta(days=7) else "15Min" if span > timedelta(days=1) else "5Min"
        )
        tf = _TIMEFRAMES.get(tf_name)
        if tf is None:
            raise unprocessable(f"invalid timeframe: {tf_name!r} (one of {', '.join(_TIMEFRAMES)})")
        series = [*self.venue.equity_series]
        live = (int(now.timestamp()), q9(self.venue.equity()))
        if start <= now <= end and (not series or series[-1][0] < live[0]):
            series.append(live)
        lo, hi = start.timestamp(), end.timestamp()
        base: Decimal | None = None
        buckets: dict[int, Decimal] = {}
        for ts, eq in series:
            if ts < lo:
                base = eq
                continue
            if ts > hi:
                break
            buckets[self._bucket(ts, tf)] = eq  # the last sample in a window wins
        if base is None and buckets:
            base = buckets[min(buckets)]
        stamps = sorted(buckets)
        equity = [buckets[t] for t in stamps]
        base_value = base if base is not None else Decimal(0)
        pl = [e - base_value for e in equity]
        pct = [float(p / base_value) if base_value else 0.0 for p in pl]
        return _json(
            {
                "timestamp": stamps,
                "equity": [float(e) for e in equity],
                "profit_loss": [float(p) for p in pl],
                "profit_loss_pct": pct,
                "base_value": float(base_value),
                "timeframe": tf_name,
            }
        )

    @staticmethod
    def _period_days(period: str) -> int:
        p = period.strip().upper()
        if len(p) >= 2 and p[:-1].isdigit() and p[-1] in _PERIOD_UNITS:
            return int(p[:-1]) * _PERIOD_UNITS[p[-1]]
        raise unprocessable(f"invalid period: {period!r} (e.g. 1D, 1W, 1M, 1A)")

    @staticmethod
    def _bucket(ts: int, tf: int) -> int:
        if tf < 86400:
            return ts - ts % tf
        d = datetime.fromtimestamp(ts, UTC).astimezone(NEW_YORK).date()
        return int(datetime.combine(d, time(0), tzinfo=NEW_YORK).timestamp())

    # ---- orders -------------------------------------------------------------------------------
    async def post_order(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        order = self.venue.run(lambda: submit_json(self.engine, body))
        return _json(self.venue.order_json(order))

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = (q.get("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise unprocessable(f"invalid status: {status!r} (open, closed or all)")
        limit = _int_param(q, "limit", 50, hi=MAX_ORDERS_LIMIT)
        after, until = _time_param(q, "after"), _time_param(q, "until")
        direction = _direction(q)
        nested = _bool_param(q, "nested")
        side = q.get("side")
        if side not in (None, "", "buy", "sell"):
            raise unprocessable(f"invalid side: {side!r}")
        classes: set[str] | None = None
        if q.get("asset_class"):
            classes = {c.strip().lower() for c in q["asset_class"].split(",") if c.strip()}
            unknown = classes - ORDER_ASSET_CLASSES - {"all"}
            if unknown:
                known = ", ".join(sorted(ORDER_ASSET_CLASSES))
                bad = ", ".join(sorted(unknown))
                raise unprocessable(f"invalid asset_class: {bad} (one of {known}, all)")
            if "all" in classes:
                classes = None
        symbols: set[str] | None = None
        if q.get("symbols"):
            try:
                symbols = {normalize_symbol(s) for s in q["symbols"].split(",") if s.strip()}
            except InvalidSymbolError as e:
                raise unprocessable(str(e)) from None
        if status == "open":
            pool: Iterable[VenueOrder] = sorted(
                (o for b in self.engine.open_by_symbol.values() for o in b.values()),
                key=lambda o: o.submitted_at,
            )
        else:
            pool = self.engine.orders.values()
        candidates = list(pool)
        if direction == "desc":
            candidates.reverse()
        out: list[dict[str, Any]] = []
        for o in candidates:
            if status == "closed" and o.status in OPEN_STATUSES:
                continue
            if nested and o.parent_id is not None:
                continue
            if side and o.side != side:
                continue
            if classes is not None and o.asset_class not in classes:
                continue
            if symbols is not None and o.symbol not in symbols:
                continue
            if (after and o.submitted_at <= after) or (until and o.submitted_at >= until):
                continue
            out.append(self.venue.order_json(o, nested=nested))
            if len(out) >= limit:
                break
        return _json(out)

    def _order(self, request: web.Request) -> VenueOrder:
        return self.engine.get(request.match_info["order_id"])

    async def get_order(self, request: web.Request) -> web.Response:
        o = self._order(request)
        return _json(self.venue.order_json(o, nested=_bool_param(request.query, "nested", True)))

    async def get_by_client_id(self, request: web.Request) -> web.Response:
        coid = request.query.get("client_order_id")
        if not coid:
            raise unprocessable("client_order_id is required")
        o = self.engine.by_client_id.get(coid)
        if o is None:
            raise not_found("order not found")
        return _json(self.venue.order_json(o))

    async def replace_order(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        order_id = request.match_info["order_id"]
        new = self.venue.run(lambda: replace_json(self.engine, order_id, body))
        return _json(self.venue.order_json(new))

    async def cancel_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        self.venue.run(lambda: self.engine.cancel(order_id))
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        canceled = self.venue.run(self.engine.cancel_all)
        body = [{"id": o.id, "status": 200, "body": self.venue.order_json(o)} for o in canceled]
        return _json(body, status=207)

    # ---- positions ----------------------------------------------------------------------------
    async def list_positions(self, request: web.Request) -> web.Response:
        held = sorted(
            self.venue.ledger.positions.values(), key=lambda h: position_symbol(self.venue.universe[h.symbol])
        )
        return _json(self.venue.positions_json(held))

    async def get_position(self, request: web.Request) -> web.Response:
        inst = self.engine.position_instrument(request.match_info["symbol"])
        held = self.venue.ledger.positions.get(inst.symbol) if inst is not None else None
        if held is None:
            raise not_found("position does not exist")
        return _json(self.venue.position_json(held))

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = self._decimal_query(q, "qty")
        pct = self._decimal_query(q, "percentage")
        key = request.match_info["symbol"]
        order = self.venue.run(lambda: self.engine.close_position(key, qty=qty, percentage=pct))
        return _json(self.venue.order_json(order))

    @staticmethod
    def _decimal_query(q: Any, key: str) -> Decimal | None:
        raw = q.get(key)
        if raw is None or raw == "":
            return None
        try:
            return to_decimal(raw, field=key)
        except InvalidNumberError as e:
            raise unprocessable(str(e)) from None

    async def close_all(self, request: web.Request) -> web.Response:
        cancel = _bool_param(request.query, "cancel_orders")
        if cancel:
            self.venue.run(self.engine.cancel_all)
        out: list[dict[str, Any]] = []
        # Each entry names the position as it is listed (``BTCUSD``); the order inside trades the
        # pair (``BTC/USD``), as in alpaca-py's test_close_all_positions.
        held = [self.venue.universe[sym] for sym in self.venue.ledger.positions]
        listed = {position_symbol(inst): inst for inst in held}
        for wire in sorted(listed):
            try:
                order = self.venue.run(partial(self.engine.close_position, listed[wire].asset_id))
            except ApiError as e:
                out.append({"symbol": wire, "status": e.status, "body": e.body()})
            else:
                body = self.venue.order_json(order)
                out.append({"symbol": wire, "status": 200, "order_id": order.id, "body": body})
        return _json(out, status=207)

    # ---- assets, clock, calendar --------------------------------------------------------------
    def _asset_json(self, inst: Any) -> dict[str, Any]:
        return {
            "id": inst.asset_id,
            "class": inst.asset_class,
            "exchange": inst.exchange,
            "symbol": inst.symbol,
            "name": inst.name,
            "status": "active",
            "tradable": inst.tradable,
            "marginable": inst.marginable,
            "maintenance_margin_requirement": 30 if not inst.is_crypto else 100,
            "margin_requirement_long": "30" if not inst.is_crypto else "100",
            "margin_requirement_short": "30" if not inst.is_crypto else "100",
            "shortable": inst.shortable and not inst.is_crypto,
            "easy_to_borrow": inst.easy_to_borrow and not inst.is_crypto,
            "fractionable": inst.fractionable,
            "min_order_size": dstr(inst.min_order_size),
            "min_trade_increment": dstr(inst.min_trade_increment),
            "price_increment": dstr(inst.tick),
            "attributes": ["fractional_eh_enabled"] if inst.fractionable and not inst.is_crypto else [],
        }

    async def list_assets(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status")
        if status not in (None, "", "active", "inactive"):
            raise unprocessable(f"invalid status: {status!r}")
        asset_class = q.get("asset_class")
        exchange = q.get("exchange")
        out = []
        if status != "inactive":
            for inst in self.venue.universe.values():
                if asset_class and inst.asset_class != asset_class:
                    continue
                if exchange and inst.exchange != exchange:
                    continue
                out.append(self._asset_json(inst))
        return _json(out)

    async def get_asset(self, request: web.Request) -> web.Response:
        key = request.match_info["symbol"]
        inst = self.engine.lookup_instrument(key)
        if inst is None:
            raise not_found(f"asset not found for {key}")
        return _json(self._asset_json(inst))

    async def get_clock(self, request: web.Request) -> web.Response:
        now = self.venue.clock()
        cal = self.venue.calendar
        return _json(
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
        body = await asyncio.to_thread(_v2_calendar_body, self.venue.calendar.always_open, start, end)
        return web.Response(body=body, content_type="application/json")

    # ---- /v3 clock and calendar (alpaca-py pull request #702: MarketClock, PublicCalendarResp) -------
    def _market_clock(self, market: dict[str, str], now: datetime) -> dict[str, Any]:
        cal = self.venue.calendar
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
            s = self.venue.calendar.session(day)
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
            now = self.venue.clock()
        return _json({"clocks": [self._market_clock(m, now) for m in markets]})

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
        days = await asyncio.to_thread(
            _v3_calendar_days, self.venue.calendar.always_open, start, end, tz == "UTC"
        )
        head = json.dumps(market, separators=(",", ":")).encode()
        body = b'{"market":' + head + b',"calendar":' + days + b"}"
        return web.Response(body=body, content_type="application/json")
