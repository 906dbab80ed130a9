"""Fault injection for tests and chaos runs; only mounted with ``--admin`` (otherwise 404).

All routes live under ``/_heron/admin`` (a prefix Alpaca does not use), need the exchange's API key
like any REST call, are exempt from the rate limit and from the REST faults they configure, and take
and return JSON. Every POST answers with the resulting fault state (``GET /faults``).

=================================  ===================================================================
``POST /streams/kill``             ``{"which": "data"|"trading"|"all" = "all", "after_messages": N?}``
                                   close websockets now, or the data streams after N more messages
                                   (the trading stream after N more updates). → ``{"killed": n}``
``POST /rest/latency``             ``{"ms": 250, "jitter_ms": 50}`` delay every REST answer (0 = off)
``POST /rest/429``                 ``{"count": N}`` the next N REST requests get 429 (Alpaca's body)
``POST /rest/5xx``                 ``{"count": N, "status": 503}`` or ``{"count": N, "statuses":
                                   [500, 502, 503, 504]}`` (cycled) the next N REST requests fail
``POST /trade-updates``            ``{"drop_next": N, "duplicate_next": N, "reorder_next": N,
                                   "kill_after": N|null}`` faults on the trade_updates stream
``POST /matching``                 ``{"paused": true|false}`` stop / resume fills
``POST /cancel-delay``             ``{"seconds": 5}`` cancels go to pending_cancel (status and trade
                                   update) and complete after that delay; fills may still arrive
                                   meanwhile (0 = instant, Alpaca paper's behaviour)
``POST /replace-race``             ``{"count": N}`` the next N replaces lose the race Alpaca documents:
                                   the old order fills, the replacement is rejected
``POST /rest/garble``              ``{"count": N}`` the next N successful order answers (``/v2/orders``
                                   routes) carry one unreadable number (``"NaN"`` or a wrong type);
                                   what the request did stands
``POST /halt``                     ``{"symbol": "AAPL", "halted": true|false}`` halt / resume a symbol
``POST /datastream/malformed``     ``{"count": N}`` the next N data frames are garbage, truncated or
                                   wrongly typed
``POST /rate``                     ``{"msgs_per_s": 100000}`` the simulator's total message rate
``POST /reset``                    clear every REST and stream fault, resume matching and symbols
``GET  /faults``                   the current REST/stream fault settings
``GET  /stats``                    counters of the simulator, data streams, venue, rate limiter, faults
=================================  ===================================================================

Bad bodies get 400 ``{"code": 40010000, "message": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.exchange.errors import INTERNAL, TOO_MANY_REQUESTS, bad_request
from services.exchange.http.auth import PRINCIPAL
from services.exchange.http.responses import json_error

PREFIX = "/_heron/admin"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RestFaults:
    """REST fault state; the fault middleware consults it on every non-admin REST request."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fail_429: int = 0
    fail_5xx: int = 0
    statuses: list[int] = field(default_factory=lambda: [503])
    garble_orders: int = 0
    injected_429: int = 0
    injected_5xx: int = 0
    injected_garbled: int = 0
    #: "METHOD /path" of the REST requests waiting in the latency fault right now
    delayed: list[str] = field(default_factory=list)
    _cursor: int = 0

    def next_status(self) -> int:
        s = self.statuses[self._cursor % len(self.statuses)]
        self._cursor += 1
        return s

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_cursor")
        return d


def fault_middleware(faults: RestFaults, rng: random.Random) -> Middleware:
    """Latency, 429 bursts and 5xx bursts for REST (never for websockets or the admin routes)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PREFIX) or request.get(PRINCIPAL) == "ws":
            return await handler(request)
        if faults.latency_ms > 0 or faults.jitter_ms > 0:
            delay = faults.latency_ms + rng.uniform(0, faults.jitter_ms)
            waiting = f"{request.method} {request.path}"
            faults.delayed.append(waiting)
            try:
                await asyncio.sleep(max(0.0, delay) / 1000)
            finally:
                faults.delayed.remove(waiting)
        if faults.fail_429 > 0:
            faults.fail_429 -= 1
            faults.injected_429 += 1
            return json_error(429, TOO_MANY_REQUESTS, "too many requests")
        if faults.fail_5xx > 0:
            faults.fail_5xx -= 1
            faults.injected_5xx += 1
            status = faults.next_status()
            return json_error(status, INTERNAL + (status - 500), "injected server error (admin fault)")
        response = await handler(request)
        if faults.garble_orders > 0 and request.path.startswith("/v2/orders"):
            garbled = garble_body(response, rng)
            if garbled is not None:
                faults.garble_orders -= 1
                faults.injected_garbled += 1
                return garbled
        return response

    return middleware


GARBLE_FIELDS = ("qty", "filled_qty", "filled_avg_price", "limit_price", "notional")


def garble_body(response: web.StreamResponse, rng: random.Random) -> web.Response | None:
    """A copy of a successful JSON order answer with one number made unreadable, or None when the
    answer is not one (an error, an empty body, a list of nothing)."""
    if not isinstance(response, web.Response) or not 200 <= response.status < 300:
        return None
    if not isinstance(response.body, bytes | bytearray) or not response.body:
        return None
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    target = data[0] if isinstance(data, list) and data else data
    if not isinstance(target, dict) or "client_order_id" not in target:
        return None
    name = rng.choice(GARBLE_FIELDS)
    target[name] = rng.choice(["NaN", "Infinity", {"value": "1"}, [1, 2], "12,5"])
    return web.json_response(data, status=response.status)


class _Venue(Protocol):
    faults: Any

    def set_matching_paused(self, paused: bool) -> None: ...

    def set_cancel_delay(self, seconds: float) -> None: ...

    def set_replace_race(self, count: int) -> None: ...

    async def kill_streams(self) -> int: ...

    def stats(self) -> dict[str, int]: ...


class _Streams(Protocol):
    async def kill_all(self) -> int: ...

    def kill_after(self, messages: int | None) -> None: ...

    def malformed_next(self, frames: int) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class _Market(Protocol):
    index: dict[str, int]

    def halt(self, symbol: str, halted: bool) -> None: ...

    def set_rate(self, msgs_per_s: float) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class Admin:
    """The admin routes over the exchange's parts (see the module docstring)."""

    def __init__(
        self,
        faults: RestFaults,
        market: _Market,
        venue: _Venue,
        streams: _Streams,
        extra_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.faults = faults
        self.market = market
        self.venue = venue
        self.streams = streams
        self.extra_stats = extra_stats or dict
        self._halted: set[str] = set()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post(f"{PREFIX}/streams/kill", self.kill)
        r.add_post(f"{PREFIX}/rest/latency", self.latency)
        r.add_post(f"{PREFIX}/rest/429", self.burst_429)
        r.add_post(f"{PREFIX}/rest/5xx", self.burst_5xx)
        r.add_post(f"{PREFIX}/trade-updates", self.trade_updates)
        r.add_post(f"{PREFIX}/matching", self.matching)
        r.add_post(f"{PREFIX}/cancel-delay", self.cancel_delay)
        r.add_post(f"{PREFIX}/replace-race", self.replace_race)
        r.add_post(f"{PREFIX}/rest/garble", self.garble)
        r.add_post(f"{PREFIX}/halt", self.halt)
        r.add_post(f"{PREFIX}/datastream/malformed", self.malformed)
        r.add_post(f"{PREFIX}/rate", self.rate)
        r.add_post(f"{PREFIX}/reset", self.reset)
        r.add_get(f"{PREFIX}/faults", self.get_faults)
        r.add_get(f"{PREFIX}/stats", self.stats)

    # --------------------------------------------------------------------------------- helpers

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("admin body must be a JSON object") from None
        if not isinstance(data, dict):
            raise bad_request("admin body must be a JSON object")
        return data

    @staticmethod
    def _int(
        body: dict[str, Any], name: str, default: int | None = 0, *, lo: int = 0, hi: int = 10_000_000
    ) -> int | None:
        v = body.get(name, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise bad_request(f"{name} must be an integer between {lo} and {hi}")
        return v

    @staticmethod
    def _num(body: dict[str, Any], name: str, *, hi: float) -> float:
        v = body.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= hi:
            raise bad_request(f"{name} must be a number between 0 and {hi:g}")
        return float(v)

    def _state(self) -> dict[str, Any]:
        vf = self.venue.faults
        venue_faults = asdict(vf) if hasattr(vf, "__dataclass_fields__") else dict(vars(vf))
        return {"rest": self.faults.public(), "trade_updates": venue_faults, "halted": sorted(self._halted)}

    # --------------------------------------------------------------------------------- routes

    async def kill(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        which = body.get("which", "all")
        if which not in ("data", "trading", "all"):
            raise bad_request("which must be 'data', 'trading' or 'all'")
        after = self._int(body, "after_messages", None, lo=1)
        killed = 0
        if after is not None:
            if which in ("data", "all"):
                self.streams.kill_after(after)
            if which in ("trading", "all"):
                self.venue.faults.kill_after = after
            return web.json_response({"killed": 0, "scheduled_after_messages": after, **self._state()})
        if which in ("data", "all"):
            killed += await self.streams.kill_all()
        if which in ("trading", "all"):
            killed += await self.venue.kill_streams()
        return web.json_response({"killed": killed, **self._state()})

    async def latency(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.faults.latency_ms = self._num(body, "ms", hi=60_000)
        self.faults.jitter_ms = self._num(body, "jitter_ms", hi=60_000)
        return web.json_response(self._state())

    async def burst_429(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.faults.fail_429 = self._int(body, "count", lo=0, hi=100_000) or 0
        return web.json_response(self._state())

    async def burst_5xx(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        count = self._int(body, "count", lo=0, hi=100_000) or 0
        statuses = body.get("statuses", [body.get("status", 503)])
        if (
            not isinstance(statuses, list)
            or not statuses
            or any(isinstance(s, bool) or s not in (500, 502, 503, 504) for s in statuses)
        ):
            raise bad_request("status(es) must be among 500, 502, 503, 504")
        self.faults.fail_5xx = count
        self.faults.statuses = list(statuses)
        return web.json_response(self._state())

    async def trade_updates(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        vf = self.venue.faults
        for name in ("drop_next", "duplicate_next", "reorder_next"):
            if name in body:
                setattr(vf, name, self._int(body, name, hi=100_000))
        if "kill_after" in body:
            vf.kill_after = self._int(body, "kill_after", None, lo=1)
        return web.json_response(self._state())

    async def matching(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        paused = body.get("paused")
        if not isinstance(paused, bool):
            raise bad_request("paused must be true or false")
        self.venue.set_matching_paused(paused)
        return web.json_response({"matching_paused": paused, **self._state()})

    async def cancel_delay(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            raise bad_request("seconds must be a number between 0 and 3600")
        self.venue.set_cancel_delay(float(seconds))
        return web.json_response({"cancel_delay_s": float(seconds), **self._state()})

    async def replace_race(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        count = self._int(body, "count", lo=0, hi=100_000) or 0
        self.venue.set_replace_race(count)
        return web.json_response({"replace_race_next": count, **self._state()})

    async def garble(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.faults.garble_orders = self._int(body, "count", lo=0, hi=100_000) or 0
        return web.json_response(self._state())

    async def halt(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        symbol, halted = body.get("symbol"), body.get("halted", True)
        if not isinstance(symbol, str) or symbol not in self.market.index:
            raise bad_request(f"unknown symbol {symbol!r}")
        if not isinstance(halted, bool):
            raise bad_request("halted must be true or false")
        self.market.halt(symbol, halted)
        (self._halted.add if halted else self._halted.discard)(symbol)
        return web.json_response(self._state())

    async def malformed(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.streams.malformed_next(self._int(body, "count", lo=0, hi=100_000) or 0)
        return web.json_response(self._state())

    async def rate(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            self.market.set_rate(self._num(body, "msgs_per_s", hi=2_000_000))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return web.json_response({"msgs_per_s": body.get("msgs_per_s"), **self._state()})

    async def reset(self, request: web.Request) -> web.Response:
        await self._body(request)
        f = self.faults
        f.latency_ms = f.jitter_ms = 0.0
        f.fail_429 = f.fail_5xx = f.garble_orders = 0
        vf = self.venue.faults
        vf.drop_next = vf.duplicate_next = vf.reorder_next = 0
        vf.kill_after = None
        self.streams.kill_after(None)
        self.streams.malformed_next(0)
        self.venue.set_matching_paused(False)
        self.venue.set_cancel_delay(0.0)
        self.venue.set_replace_race(0)
        for s in list(self._halted):
            self.market.halt(s, False)
        self._halted.clear()
        return web.json_response(self._state())

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._state())

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "market": self.market.describe(),
                "datastream": self.streams.describe(),
                "venue": self.venue.stats(),
                "faults": self._state(),
                **self.extra_stats(),
            }
        )
