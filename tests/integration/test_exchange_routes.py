"""Trading API routes clients use beyond Heron's own: /v3 clock and calendar, the full default
/v2/calendar with settlement dates, ``asset_class`` on GET /v2/orders and ``/stream/``.

Requests go through alpaca-py's TradingClient request path (``client.get(path, params,
api_version=...)``: its URL building, auth headers and error handling), as alpaca-py's own
``get_v3_clock`` / ``get_v3_calendar`` do (alpacahq/alpaca-py pull request #702, commit fe4a8ef,
"feat(trading): add v3 clock and calendar": ``self.get("/clock", ..., api_version="v3")``); the
websocket test dials ``/stream/`` with Alpaca's documented handshake.

The exchange here runs on the NYSE calendar (not ``--always-open``), with a fixed seed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

from tests.support.exchange import ExchangeProcess

# Field names of alpaca-py's v3 models (pull request #702, alpaca/trading/models.py: PublicMarket,
# MarketClock, CalendarDay) and the values of its Phase enum (alpaca/trading/enums.py).
MARKET_FIELDS = {"acronym", "name", "timezone", "mic"}
CLOCK_FIELDS = {
    "market",
    "timestamp",
    "is_market_day",
    "next_market_open",
    "next_market_close",
    "phase",
    "phase_until",
}
CALENDAR_DAY_FIELDS = {
    "date",
    "pre_start",
    "pre_end",
    "core_start",
    "core_end",
    "post_start",
    "post_end",
    "settlement_date",
}
PHASES = {"closed", "pre", "core", "lunch", "post"}


@pytest.fixture(scope="module")
def nyse_exchange() -> Iterator[ExchangeProcess]:
    ex = ExchangeProcess.start(always_open=False)
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def client(nyse_exchange: ExchangeProcess) -> TradingClient:
    c = TradingClient(nyse_exchange.key_id, nyse_exchange.secret, url_override=nyse_exchange.url)
    c._retry = 0
    return c


# ---- /v2/calendar ----------------------------------------------------------------------------------


def test_v2_calendar_without_parameters_serves_1970_to_2029(client: TradingClient) -> None:
    """ "The calendar API serves the full list of market days from 1970 to 2029" (Alpaca's API v2
    Calendar docs, alpaca.markets/deprecated/docs/api-documentation/api-v2/calendar/); alpaca-py's
    ``get_calendar()`` without filters sends no parameters."""
    days = client.get_calendar()
    assert isinstance(days, list)
    assert days[0].date == date(1970, 1, 2)  # 1970-01-01 was New Year's Day
    assert days[-1].date == date(2029, 12, 31)
    assert len(days) > 15_000
    assert all(d.date.weekday() < 5 for d in days)


@pytest.mark.parametrize(
    ("day", "settles"),
    [
        ("2025-01-02", "2025-01-03"),  # alpaca-py PR #702 test fixture (T+1)
        ("2025-01-03", "2025-01-06"),  # Friday: the next business day is Monday
        ("2025-07-03", "2025-07-07"),  # Independence Day and the weekend are not business days
        ("2025-10-10", "2025-10-14"),  # Columbus Day: NYSE trades, banks and DTC do not settle
        ("2024-05-24", "2024-05-29"),  # the last T+2 day (T+1 from 2024-05-28, SEC Rule 15c6-1)
        ("2020-03-02", "2020-03-04"),  # T+2 (2017-09-05 to 2024-05-27)
    ],
)
def test_v2_calendar_settlement_date_is_business_days_later(
    client: TradingClient, day: str, settles: str
) -> None:
    """``settlement_date`` is the trade's settlement day counted in business days (docs/alpaca-rules.md
    "Trading API routes"; alpaca-py PR #702 fixture: 2025-01-02 settles 2025-01-03)."""
    body = client.get("/calendar", {"start": day, "end": day})
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["date"] == day
    assert body[0]["settlement_date"] == settles


# ---- /v3/clock -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "phase", "until", "is_day", "next_open", "next_close"),
    [
        # alpaca-py PR #702 test fixture: NYSE at 2025-01-02T14:30:00Z is in its core session.
        (
            "2025-01-02T14:30:00Z",
            "core",
            "2025-01-02T16:00:00-05:00",
            True,
            "2025-01-02T09:30:00-05:00",
            "2025-01-02T16:00:00-05:00",
        ),
        (
            "2025-01-02T12:00:00Z",
            "pre",
            "2025-01-02T09:30:00-05:00",
            True,
            "2025-01-02T09:30:00-05:00",
            "2025-01-02T16:00:00-05:00",
        ),
        (
            "2025-01-02T22:00:00Z",
            "post",
            "2025-01-02T20:00:00-05:00",
            True,
            "2025-01-03T09:30:00-05:00",
            "2025-01-03T16:00:00-05:00",
        ),
        (
            "2025-01-04T15:00:00Z",
            "closed",
            "2025-01-06T04:00:00-05:00",
            False,
            "2025-01-06T09:30:00-05:00",
            "2025-01-06T16:00:00-05:00",
        ),
        (
            "2025-11-28T18:30:00Z",
            "post",
            "2025-11-28T17:00:00-05:00",
            True,  # early close at 13:00
            "2025-12-01T09:30:00-05:00",
            "2025-12-01T16:00:00-05:00",
        ),
    ],
)
def test_v3_clock_phases(
    client: TradingClient, at: str, phase: str, until: str, is_day: bool, next_open: str, next_close: str
) -> None:
    """``GET /v3/clock?markets=NYSE&time=...``: ``{"clocks": [MarketClock]}`` with the fields of
    alpaca-py's MarketClock (PR #702) and a phase from its Phase enum."""
    body = client.get("/clock", {"markets": "NYSE", "time": at}, api_version="v3")
    assert isinstance(body, dict) and set(body) == {"clocks"}
    (clock,) = body["clocks"]
    assert set(clock) == CLOCK_FIELDS
    assert set(clock["market"]) == MARKET_FIELDS
    assert clock["market"]["acronym"] == "NYSE" and clock["market"]["mic"] == "XNYS"
    assert clock["market"]["timezone"] == "America/New_York"
    assert datetime.fromisoformat(clock["timestamp"]) == datetime.fromisoformat(at)
    assert clock["phase"] in PHASES
    assert (clock["phase"], clock["phase_until"], clock["is_market_day"]) == (phase, until, is_day)
    assert (clock["next_market_open"], clock["next_market_close"]) == (next_open, next_close)


def test_v3_clock_now_several_markets_and_bad_input(client: TradingClient) -> None:
    """Without ``time`` the clock is now; ``markets`` is comma-separated (alpaca-py PR #702 sends
    ``markets=NYSE,LSE``); a market the exchange does not serve is refused with a JSON error."""
    v2 = client.get("/clock")
    assert isinstance(v2, dict)
    now = datetime.fromisoformat(v2["timestamp"])
    body = client.get("/clock", {"markets": "NYSE,NASDAQ", "time": now.isoformat()}, api_version="v3")
    assert isinstance(body, dict)
    assert [c["market"]["acronym"] for c in body["clocks"]] == ["NYSE", "NASDAQ"]
    assert body["clocks"][1]["market"]["mic"] == "XNAS"
    assert (body["clocks"][0]["phase"] == "core") == v2["is_open"]
    assert datetime.fromisoformat(body["clocks"][0]["next_market_close"]) == datetime.fromisoformat(
        v2["next_close"]
    )
    default = client.get("/clock", api_version="v3")
    assert isinstance(default, dict) and [c["market"]["acronym"] for c in default["clocks"]] == ["NYSE"]
    assert datetime.fromisoformat(default["clocks"][0]["timestamp"]) >= now
    for params in ({"markets": "LSE"}, {"markets": "NYSE", "time": "yesterday"}):
        with pytest.raises(APIError) as err:
            client.get("/clock", params, api_version="v3")
        assert err.value.status_code in (400, 422)
        assert err.value.message


# ---- /v3/calendar/{market} -------------------------------------------------------------------------


def test_v3_calendar(client: TradingClient) -> None:
    """``GET /v3/calendar/NYSE?start&end``: ``{"market": {...}, "calendar": [CalendarDay]}`` with the
    session times as RFC 3339 in the market's time zone (alpaca-py PR #702 fixture for 2025-01-02:
    pre 04:00, core 09:30-16:00, post to 20:00, -05:00, settlement 2025-01-03)."""
    body = client.get("/calendar/NYSE", {"start": "2025-01-01", "end": "2025-01-05"}, api_version="v3")
    assert isinstance(body, dict) and set(body) == {"market", "calendar"}
    assert body["market"] == {
        "acronym": "NYSE",
        "name": "New York Stock Exchange",
        "timezone": "America/New_York",
        "mic": "XNYS",
    }
    assert [d["date"] for d in body["calendar"]] == ["2025-01-02", "2025-01-03"]
    first = body["calendar"][0]
    assert set(first) == CALENDAR_DAY_FIELDS
    assert first == {
        "date": "2025-01-02",
        "pre_start": "2025-01-02T04:00:00-05:00",
        "pre_end": "2025-01-02T09:30:00-05:00",
        "core_start": "2025-01-02T09:30:00-05:00",
        "core_end": "2025-01-02T16:00:00-05:00",
        "post_start": "2025-01-02T16:00:00-05:00",
        "post_end": "2025-01-02T20:00:00-05:00",
        "settlement_date": "2025-01-03",
    }
    utc = client.get(
        "/calendar/NYSE", {"start": "2025-01-02", "end": "2025-01-02", "timezone": "UTC"}, api_version="v3"
    )
    assert isinstance(utc, dict)
    assert utc["calendar"][0]["core_start"] == "2025-01-02T14:30:00Z"
    early = client.get("/calendar/NASDAQ", {"start": "2025-11-28", "end": "2025-11-28"}, api_version="v3")
    assert isinstance(early, dict) and early["market"]["mic"] == "XNAS"
    assert early["calendar"][0]["core_end"] == "2025-11-28T13:00:00-05:00"
    with pytest.raises(APIError) as err:
        client.get("/calendar/LSE", api_version="v3")
    assert err.value.status_code == 404


# ---- GET /v2/orders?asset_class -------------------------------------------------------------------


def test_orders_filter_by_asset_class(client: TradingClient) -> None:
    """``asset_class`` filters GET /v2/orders (docs/alpaca-rules.md; Alpaca's Trading API changelog of
    2026-06-24 "New asset class filter values on GET /v2/orders"); alpaca-py 0.44's GetOrdersRequest
    has no such field, so it goes through the SDK's request path."""
    stock = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.00
        )
    )
    coin = client.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=10_000
        )
    )

    def ids(params: dict[str, Any]) -> set[str]:
        body = client.get("/orders", {"status": "all", "limit": 500, **params})
        assert isinstance(body, list)
        return {o["id"] for o in body}

    mine = {str(stock.id), str(coin.id)}  # type: ignore[union-attr]
    assert ids({"asset_class": "crypto"}) & mine == {str(coin.id)}  # type: ignore[union-attr]
    assert ids({"asset_class": "us_equity"}) & mine == {str(stock.id)}  # type: ignore[union-attr]
    assert ids({"asset_class": "us_equity,crypto"}) & mine == mine
    assert ids({"asset_class": "all"}) & mine == mine
    assert ids({"asset_class": "us_option"}) & mine == set()
    with pytest.raises(APIError) as err:
        client.get("/orders", {"asset_class": "stocks"})
    assert err.value.status_code == 422


# ---- /stream/ --------------------------------------------------------------------------------------


def test_trade_updates_on_stream_with_trailing_slash(nyse_exchange: ExchangeProcess) -> None:
    """The legacy Python SDK dials ``/stream/`` and Alpaca accepts it (alpacahq/example-scalping #13);
    the handshake is Alpaca's documented one (authenticate, then listen to trade_updates)."""
    ex = nyse_exchange

    async def main() -> list[Any]:
        replies: list[Any] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{ex.ws_url}/stream/") as ws:
            await ws.send_str(
                json.dumps({"action": "authenticate", "data": {"key_id": ex.key_id, "secret_key": ex.secret}})
            )
            replies.append(json.loads((await ws.receive(timeout=10)).data))
            await ws.send_str(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            replies.append(json.loads((await ws.receive(timeout=10)).data))
        return replies

    auth, listen = asyncio.run(main())
    assert auth == {"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}
    assert listen == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
