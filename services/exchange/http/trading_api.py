"""Alpaca trading REST handlers (/v2/...), shaped exactly as docs/alpaca-protocol.md §2 lists.

Authentication, rate limiting and turning :class:`ApiError` into a JSON body are the server's
middleware; handlers here parse defensively (alpaca-py sends booleans as ``True``, numbers as
floats, lists comma-joined) and raise :class:`ApiError` for every bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web

from services.domain.calendar import NEW_YORK
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.exchange.errors import ApiError, not_found, unprocessable
from services.exchange.http.clock_api import ClockApi
from services.exchange.http.entities import account_json, order_json, position_json, positions_json
from services.exchange.http.order_requests import replace_json, submit_json
from services.exchange.http.params import (
    bool_param,
    date_param,
    direction_param,
    int_param,
    json_answer,
    json_body,
    time_param,
)
from services.exchange.http.trading_stream import STREAM_PATHS, TradeStreamHub
from services.exchange.ledger import dstr, position_symbol, q9
from services.exchange.orders import OPEN_STATUSES, VenueOrder
from services.exchange.venue import TradingVenue

MAX_ORDERS_LIMIT = 500
MAX_ACTIVITY_PAGE = 100
# GET /v2/orders ?asset_class: the classes Alpaca accepts (its Trading API changelog 2026-06-24 added
# the last seven); only us_equity and crypto orders exist on this exchange, the others match nothing.
ORDER_ASSET_CLASSES = frozenset(
    {
        "us_equity",
        "us_option",
        "crypto",
        "crypto_perp",
        "treasury",
        "ipo",
        "corporate",
        "global_equity",
        "us_index",
        "us_equity_chain",
    }
)
_PERIOD_UNITS = {"D": 1, "W": 7, "M": 30, "A": 365}
_TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86400}


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
        self.clocks = ClockApi(venue.calendar, venue.clock)

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
        r.add_get("/v2/clock", self.clocks.get_clock)
        r.add_get("/v2/calendar", self.clocks.get_calendar)
        r.add_get("/v3/clock", self.clocks.get_clock_v3)
        r.add_get("/v3/calendar/{market}", self.clocks.get_calendar_v3)

    # ---- account ------------------------------------------------------------------------------
    async def get_account(self, request: web.Request) -> web.Response:
        return json_answer(account_json(self.venue))

    async def get_configurations(self, request: web.Request) -> web.Response:
        return json_answer(
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
            return json_answer([])  # the paper venue only produces FILL activities
        after, until = time_param(q, "after"), time_param(q, "until")
        day = date_param(q, "date")
        direction = direction_param(q)
        page_size = int_param(q, "page_size", MAX_ACTIVITY_PAGE, hi=MAX_ACTIVITY_PAGE)
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
        return json_answer(out)

    async def get_portfolio_history(self, request: web.Request) -> web.Response:
        q = request.query
        now = self.venue.clock()
        end = time_param(q, "end") or time_param(q, "date_end") or now
        start = time_param(q, "start")
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
        return json_answer(
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
        body = await json_body(request)
        order = self.venue.run(lambda: submit_json(self.engine, body))
        return json_answer(order_json(self.engine, order))

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = (q.get("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise unprocessable(f"invalid status: {status!r} (open, closed or all)")
        limit = int_param(q, "limit", 50, hi=MAX_ORDERS_LIMIT)
        after, until = time_param(q, "after"), time_param(q, "until")
        direction = direction_param(q)
        nested = bool_param(q, "nested")
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
            out.append(order_json(self.engine, o, nested=nested))
            if len(out) >= limit:
                break
        return json_answer(out)

    def _order(self, request: web.Request) -> VenueOrder:
        return self.engine.get(request.match_info["order_id"])

    async def get_order(self, request: web.Request) -> web.Response:
        o = self._order(request)
        return json_answer(order_json(self.engine, o, nested=bool_param(request.query, "nested", True)))

    async def get_by_client_id(self, request: web.Request) -> web.Response:
        coid = request.query.get("client_order_id")
        if not coid:
            raise unprocessable("client_order_id is required")
        o = self.engine.by_client_id.get(coid)
        if o is None:
            raise not_found("order not found")
        return json_answer(order_json(self.engine, o))

    async def replace_order(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        order_id = request.match_info["order_id"]
        new = self.venue.run(lambda: replace_json(self.engine, order_id, body))
        return json_answer(order_json(self.engine, new))

    async def cancel_order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        self.venue.run(lambda: self.engine.cancel(order_id))
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        canceled = self.venue.run(self.engine.cancel_all)
        body = [{"id": o.id, "status": 200, "body": order_json(self.engine, o)} for o in canceled]
        return json_answer(body, status=207)

    # ---- positions ----------------------------------------------------------------------------
    async def list_positions(self, request: web.Request) -> web.Response:
        held = sorted(
            self.venue.ledger.positions.values(), key=lambda h: position_symbol(self.venue.universe[h.symbol])
        )
        return json_answer(positions_json(self.venue, held))

    async def get_position(self, request: web.Request) -> web.Response:
        inst = self.engine.position_instrument(request.match_info["symbol"])
        held = self.venue.ledger.positions.get(inst.symbol) if inst is not None else None
        if held is None:
            raise not_found("position does not exist")
        return json_answer(position_json(self.venue, held))

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = self._decimal_query(q, "qty")
        pct = self._decimal_query(q, "percentage")
        key = request.match_info["symbol"]
        order = self.venue.run(lambda: self.engine.close_position(key, qty=qty, percentage=pct))
        return json_answer(order_json(self.engine, order))

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
        cancel = bool_param(request.query, "cancel_orders")
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
                body = order_json(self.engine, order)
                out.append({"symbol": wire, "status": 200, "order_id": order.id, "body": body})
        return json_answer(out, status=207)

    # ---- assets ------------------------------------------------------------------------------
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
        return json_answer(out)

    async def get_asset(self, request: web.Request) -> web.Response:
        key = request.match_info["symbol"]
        inst = self.engine.lookup_instrument(key)
        if inst is None:
            raise not_found(f"asset not found for {key}")
        return json_answer(self._asset_json(inst))
