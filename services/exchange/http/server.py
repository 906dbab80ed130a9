"""The exchange's aiohttp application: universe, simulator, venue, routes and middlewares.

``build_app(config)`` wires everything; the middlewares, outermost first, are:

1. errors: :class:`ApiError` → its JSON body; unknown path → 404, wrong method → 405, body over
   1 MiB → 413, anything unexpected → 500 (logged). Always Alpaca's ``{"code","message"}`` JSON;
   never a redirect, never HTML.
2. auth: APCA key headers or Basic auth (keyless crypto data allowed; websockets auth in-band).
3. rate limit: token bucket per key with ``X-RateLimit-*`` headers (admin routes exempt).
4. REST faults from the admin routes (latency, 429 and 5xx bursts).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.domain.calendar import MarketCalendar
from services.exchange.contracts import Instrument, KeyStore, MarketView
from services.exchange.errors import BAD_REQUEST, INTERNAL, NOT_FOUND, ApiError
from services.exchange.http.admin import PREFIX as ADMIN_PREFIX
from services.exchange.http.admin import Admin, RestFaults, fault_middleware
from services.exchange.http.auth import ApiKey, StaticKeyStore, auth_middleware
from services.exchange.http.datastream import DataStreamHub
from services.exchange.http.identity import identity_middleware
from services.exchange.http.marketdata_api import MarketDataApi
from services.exchange.http.ratelimit import RateLimiter, ratelimit_middleware
from services.exchange.http.responses import error_response, json_error
from services.exchange.http.trading_api import add_trading_routes
from services.exchange.market.history import BarSource, HistoryGenerator
from services.exchange.market.simulator import DEFAULT_RATE, MarketSimulator
from services.exchange.market.universe import build_universe
from services.exchange.venue import TradingVenue

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Venue(Protocol):
    """What the server needs of the trading venue (services/exchange/venue.py: TradingVenue)."""

    faults: Any

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def on_quote(self, symbol: str) -> None: ...

    def on_trade(self, symbol: str, price: Decimal) -> None: ...

    def wants_trades(self, symbol: str) -> bool: ...

    def set_cancel_delay(self, seconds: float) -> None: ...

    def set_replace_race(self, count: int) -> None: ...

    def set_matching_paused(self, paused: bool) -> None: ...

    async def kill_streams(self) -> int: ...

    def stats(self) -> dict[str, int]: ...


VenueFactory = Callable[..., Venue]
VenueRoutes = Callable[[web.Application, Any], None]


@dataclass(frozen=True)
class ExchangeConfig:
    data_dir: Path
    key: ApiKey
    symbols: tuple[str, ...] = ()
    seed: int = 0
    rate_limit: int = 200
    always_open: bool = False
    admin: bool = False
    rate: float = DEFAULT_RATE
    tick_interval: float = 0.02
    starting_cash: Decimal = Decimal("100000")
    account_type: str = "margin"  # "margin" (2x/4x, may short) or "cash" (1x, no shorts)


@dataclass
class Exchange:
    """The parts of one running exchange (kept on the app under :data:`EXCHANGE`)."""

    config: ExchangeConfig
    universe: Mapping[str, Instrument]
    calendar: MarketCalendar
    keys: StaticKeyStore
    history: HistoryGenerator
    market: MarketSimulator
    venue: Venue
    streams: DataStreamHub
    limiter: RateLimiter
    faults: RestFaults
    errors: dict[str, int] = field(default_factory=lambda: {"internal_errors": 0})


EXCHANGE = web.AppKey("exchange", Exchange)


def _default_venue(**kwargs: Any) -> Venue:
    return TradingVenue(**kwargs)


def error_middleware(counters: dict[str, int]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            status = exc.status
            if status == 404:
                return json_error(404, NOT_FOUND, "not found")
            if status == 405:
                return json_error(405, 40510000, "method not allowed")
            if status == 413:
                return json_error(413, 41310000, f"request body too large (limit {MAX_BODY} bytes)")
            if 400 <= status < 500:
                return json_error(status, status * 100_000, exc.reason or "bad request")
            if status < 400:  # never answer with a redirect
                return json_error(404, NOT_FOUND, "not found")
            return json_error(status, INTERNAL, exc.reason or "server error")
        except asyncio.CancelledError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            # A handler that let malformed input escape: still the client's fault, not a 500.
            log.warning("unhandled bad input on %s %s: %s", request.method, request.path, exc)
            return json_error(400, BAD_REQUEST, "malformed request")
        except Exception:
            counters["internal_errors"] += 1
            log.exception("internal error on %s %s", request.method, request.path)
            return json_error(500, INTERNAL, "internal server error")

    return middleware


def build_app(
    config: ExchangeConfig,
    *,
    venue_factory: VenueFactory | None = None,
    venue_routes: VenueRoutes = add_trading_routes,
    clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """The whole exchange as an aiohttp application (start it with AppRunner or TestServer).

    ``venue_routes`` serves the venue the factory made (the trading routes and /stream by default)."""
    universe = build_universe(config.symbols)
    calendar = MarketCalendar(always_open=config.always_open)
    keys = StaticKeyStore(config.key)
    history = HistoryGenerator(universe, calendar, config.seed)
    market = MarketSimulator(
        universe,
        calendar,
        history,
        seed=config.seed,
        rate=config.rate,
        clock=clock,
        tick_interval=config.tick_interval,
    )
    factory = venue_factory or _default_venue
    market_view: MarketView = market
    key_store: KeyStore = keys
    venue = factory(
        data_dir=config.data_dir,
        universe=universe,
        market=market_view,
        calendar=calendar,
        keys=key_store,
        seed=config.seed,
        starting_cash=config.starting_cash,
        account_type=config.account_type,
        **({"clock": clock} if clock is not None else {}),
    )
    market.on_nbbo(venue.on_quote)
    market.on_trade(venue.on_trade, venue.wants_trades)
    streams = DataStreamHub(market, universe, keys)
    limiter = RateLimiter(config.rate_limit)
    faults = RestFaults()
    ex = Exchange(config, universe, calendar, keys, history, market, venue, streams, limiter, faults)

    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            error_middleware(ex.errors),
            identity_middleware(config.key.secret, config.data_dir),
            auth_middleware(keys),
            ratelimit_middleware(limiter, exempt_prefixes=(ADMIN_PREFIX,)),
            fault_middleware(faults, random.Random(config.seed)),
        ],
    )
    app[EXCHANGE] = ex
    MarketDataApi(universe, market, BarSource(history, market), config.seed).add_routes(app)
    streams.add_routes(app)
    venue_routes(app, venue)
    if config.admin:
        Admin(
            faults,
            market,
            venue,
            streams,
            extra_stats=lambda: {"rate_limited": limiter.rejected, **ex.errors},
        ).add_routes(app)

    _run_with_app(app, ex)
    return app


def _run_with_app(app: web.Application, ex: Exchange) -> None:
    """Start the venue, the data streams and the market with the application; stop them with it."""

    async def on_startup(_: web.Application) -> None:
        await ex.venue.start()
        ex.streams.start()
        ex.market.start()

    async def on_shutdown(_: web.Application) -> None:
        await ex.market.close()
        await ex.streams.close()
        await ex.venue.kill_streams()

    async def on_cleanup(_: web.Application) -> None:
        await ex.venue.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)


def utcnow() -> datetime:
    return datetime.now(UTC)
