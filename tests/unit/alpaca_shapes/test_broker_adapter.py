"""Alpaca's own REST bodies replayed through ``AlpacaBroker`` (the HTTP request is replaced, nothing else).

Every body comes from ``tests/fixtures/alpaca/`` and names its public source there (alpaca-py's test
suite, Alpaca's docs repository, the OpenAPI specs in ``specs/``, Alpaca issue threads). Our local
exchange is not a source for any of them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.base import BrokerError, BrokerNotFound, BrokerRejected, BrokerUnavailable, OrderQuery
from services.broker.budget import RequestBudget
from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderRequest
from tests.support import alpaca_fixtures as fx
from tests.support.clock import FakeClock

T = TypeVar("T")
Route = Callable[[str, str, dict[str, Any]], requests.Response]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Transport:
    """Answers each request with the fixture routed to it; records what was asked."""

    def __init__(self, *answers: requests.Response | Route) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append((method, url, kwargs))
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        return answer if isinstance(answer, requests.Response) else answer(method, url, kwargs)


def broker(*answers: requests.Response | Route) -> tuple[AlpacaBroker, Transport]:
    clock = FakeClock()
    transport = Transport(*answers)
    b = AlpacaBroker(
        "PKFIXTURE",
        "secret",
        environment="paper",
        transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=2, rng=random.Random(1), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
    )
    return b, transport


def utc_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def is_utc(ts: datetime | None) -> bool:
    return ts is not None and ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0


def market_buy(coid: str, **kw: Any) -> OrderRequest:
    args: dict[str, Any] = {"qty": Decimal(1)}
    args.update(kw)
    return OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.MARKET, TimeInForce.DAY, client_order_id=coid, **args
    )


# --- orders ---------------------------------------------------------------------------------------------


def test_simple_market_order_spec_example() -> None:
    """Order example of the trading OpenAPI spec (components.schemas.Order.x-examples.example-1)."""
    raw = fx.body("orders", "simple_market_accepted")
    b, t = broker(fx.response("orders", "simple_market_accepted"))
    order = run(b.get_order(raw["id"]))
    assert t.calls[0][0] == "GET" and t.calls[0][1].endswith(f"/v2/orders/{raw['id']}")
    assert order.id == raw["id"] and order.client_order_id == raw["client_order_id"]
    assert order.type is OrderType(raw["type"]) and order.side is OrderSide(raw["side"])
    assert order.status is OrderStatus(raw["status"])
    assert order.time_in_force is TimeInForce(raw["time_in_force"])
    assert order.order_class is OrderClass.SIMPLE
    assert order.created_at == utc_z(raw["created_at"]) and is_utc(order.created_at)
    assert order.submitted_at == utc_z(raw["submitted_at"]) and is_utc(order.submitted_at)
    assert order.filled_qty == Decimal(raw["filled_qty"]) and order.filled_avg_price is None


def test_limit_order_from_alpaca_py_tests_with_numeric_json_values() -> None:
    """alpaca-py tests/trading/trading_client/test_order_routes.py::test_limit_order: qty and
    limit_price arrive as JSON numbers there, not strings; they must still be exact Decimals."""
    raw = fx.body("orders", "limit_order")
    b, t = broker(fx.response("orders", "limit_order"))
    order = run(
        b.submit_order(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(1),
                limit_price=Decimal(300),
                client_order_id=raw["client_order_id"],
            )
        )
    )
    assert t.calls[0][0] == "POST" and t.calls[0][2]["json"]["client_order_id"] == raw["client_order_id"]
    assert order.qty == Decimal(1) and order.limit_price == Decimal(300)
    assert order.status is OrderStatus.ACCEPTED and order.type is OrderType.LIMIT
    # the published body spells the symbol "AAPL`"; Heron keeps the broker's text
    assert order.symbol == raw["symbol"]


@pytest.mark.parametrize("name", ["notional_market_qty_null", "crypto_notional_qty_null"])
def test_notional_order_keeps_qty_none(name: str) -> None:
    """Alpaca docs Order entity (data/webapi/entities/order-v2*.yaml): notional "500" and qty null."""
    raw = fx.body("orders", name)
    b, _ = broker(fx.response("orders", name))
    order = run(b.submit_order(market_buy(raw["client_order_id"], qty=None, notional=Decimal(500))))
    assert order.qty is None and order.notional == Decimal("500")
    assert order.filled_qty == 0 and order.status is OrderStatus.ACCEPTED
    assert order.symbol == raw["symbol"]


def test_replaced_order_carries_replaces_and_replaced_by() -> None:
    """alpaca-py test_get_orders: a listed order with both replaced_by and replaces set."""
    raw = fx.body("orders", "replaced_with_replaces_and_replaced_by")
    raw["hwm"] = None  # Alpaca's sample has the schema placeholder "string" here; see the next test
    b, t = broker(fx.http_response(200, [raw]))
    [order] = run(b.list_orders(OrderQuery(status="all")))
    assert "/v2/orders" in t.calls[0][1]
    assert order.replaced_by == "0b11f089-722d-4ced-9beb-e2eeed3637dc"
    assert order.replaces == "9f7d75bc-a9a2-40b0-9082-0fc0a09817ff"
    assert order.replaced_at == utc_z("2019-08-24T14:15:22Z") and is_utc(order.replaced_at)
    assert order.qty == Decimal(1) and order.filled_qty == 0 and order.extended_hours is True
    assert order.type is OrderType.STOP  # "type" wins over the deprecated "order_type"


def test_unreadable_number_in_a_listing_is_a_clear_error() -> None:
    """The same alpaca-py sample as published ("hwm": "string") cannot be read: Heron must say so
    as a broker error naming the field, never turn it into a number or crash with a raw exception."""
    b, _ = broker(fx.response("orders", "replaced_with_replaces_and_replaced_by"))
    with pytest.raises(BrokerError) as info:
        run(b.list_orders(OrderQuery(status="all")))
    assert "hwm" in info.value.message


def test_bracket_order_with_legs() -> None:
    """Bracket order with its two legs (Order shape of the spec; take-profit new, stop-loss held as
    alpaca-trade-api-js #87 and alpaca-py #182 describe)."""
    raw = fx.body("orders", "bracket_with_legs")
    b, _ = broker(fx.response("orders", "bracket_with_legs"))
    order = run(b.get_order(raw["id"]))
    assert order.order_class is OrderClass.BRACKET and len(order.legs) == 2
    tp, sl = order.legs
    assert (tp.type, tp.side, tp.status, tp.limit_price) == (
        OrderType.LIMIT,
        OrderSide.SELL,
        OrderStatus.NEW,
        Decimal("301"),
    )
    assert (sl.type, sl.status, sl.stop_price, sl.limit_price) == (
        OrderType.STOP_LIMIT,
        OrderStatus.HELD,
        Decimal("299"),
        Decimal("298.5"),
    )
    assert all(leg.qty == Decimal(100) and is_utc(leg.created_at) for leg in order.legs)


def test_trailing_stop_with_hwm() -> None:
    """Trailing stop (Alpaca docs orders.md: trail_percent, hwm, stop_price = hwm * (1 - pct/100))."""
    raw = fx.body("orders", "trailing_stop_with_hwm")
    b, _ = broker(fx.response("orders", "trailing_stop_with_hwm"))
    order = run(b.get_order(raw["id"]))
    assert order.type is OrderType.TRAILING_STOP
    assert order.trail_percent == Decimal("1.0") and order.trail_price is None
    assert order.hwm == Decimal("162.5") and order.stop_price == Decimal("160.875")
    assert order.hwm * (1 - order.trail_percent / 100) == order.stop_price


def test_nan_in_a_submit_answer_means_outcome_unknown_not_refused() -> None:
    """Alpaca's accepted-order body with one number unreadable (NaN). The order may be live, so the
    submit must resolve by client order id (issue 12: "outcome unknown", never "refused")."""
    raw = fx.body("orders", "simple_market_accepted")
    garbled = dict(raw, filled_qty="NaN")
    b, t = broker(fx.http_response(200, garbled), fx.http_response(200, raw))
    try:
        order = run(b.submit_order(market_buy(raw["client_order_id"])))
    except BrokerUnavailable as exc:
        assert "unknown" in exc.message  # acceptable: resolution failed loudly and says so
    except BrokerRejected as exc:  # pragma: no cover - the bug this test exists for
        pytest.fail(f"an unreadable answer was reported as a refusal: {exc.message}")
    else:
        assert order.id == raw["id"]
        assert [c[0] for c in t.calls] == ["POST", "GET"]


# --- positions --------------------------------------------------------------------------------------------


def test_stock_long_position() -> None:
    """alpaca-py test_get_all_positions: AAPL 5 long at 100.0."""
    b, _ = broker(fx.response("positions", "stock_long"))
    [p] = run(b.get_positions())
    assert (p.symbol, p.qty, p.avg_entry_price, p.cost_basis) == (
        "AAPL",
        Decimal(5),
        Decimal("100.0"),
        Decimal("500.0"),
    )
    assert p.market_value == Decimal("600.0") and p.unrealized_intraday_pl == Decimal("10.0")
    assert p.asset_class == "us_equity"


def test_stock_short_position_is_negative() -> None:
    """Short position (side short, negative qty)."""
    b, _ = broker(fx.response("positions", "stock_short"))
    [p] = run(b.get_positions())
    assert p.symbol == "TSLA" and p.qty == Decimal(-5) and p.market_value == Decimal("-1000.5")


@pytest.mark.parametrize("name", ["crypto_btcusd", "crypto_btcusd_entity"])
def test_crypto_position_btcusd_is_normalised_to_btc_usd(name: str) -> None:
    """Alpaca lists a BTC position as BTCUSD (docs crypto-trading-broker.md "Positions API";
    position-crypto entity; alpaca-py #179) while orders, fills and assets say BTC/USD."""
    raw = fx.body("positions", name)[0]
    b, _ = broker(fx.response("positions", name))
    [p] = run(b.get_positions())
    assert p.asset_class == "crypto" and p.qty == Decimal(raw["qty"])
    assert p.avg_entry_price == Decimal(raw["avg_entry_price"])
    assert p.symbol == "BTC/USD"


def test_get_crypto_position_by_pair_asks_alpaca_for_btcusd() -> None:
    """``GET /v2/positions/BTC/USD`` answers 404 at Alpaca (alpaca-py #179, #490)."""

    def route(method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        if url.endswith("/v2/positions/BTCUSD"):
            return fx.http_response(200, fx.body("positions", "crypto_btcusd")[0])
        return fx.response("errors", "position_not_found_404")  # Alpaca-API #215

    b, _ = broker(route)
    p = run(b.get_position("BTC/USD"))
    assert p is not None and p.symbol == "BTC/USD" and p.qty == Decimal("1.0002997")


def test_close_crypto_position_by_pair() -> None:
    """Closing the BTC/USD position must reach Alpaca's BTCUSD position; the answer is the closing
    order for BTC/USD (the order inside alpaca-py's close-all 207 body)."""
    closing = fx.body("close_all", "close_all_207")[0]["body"]

    def route(method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        if method == "DELETE" and url.split("?", 1)[0].endswith("/v2/positions/BTCUSD"):
            return fx.http_response(200, closing)
        return fx.response("errors", "position_not_found_404")  # Alpaca-API #215

    b, _ = broker(route)
    order = run(b.close_position("BTC/USD"))
    assert order.symbol == "BTC/USD" and order.qty == Decimal("0.0283") and order.side is OrderSide.SELL


# --- account, assets, clock, calendar ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["account", "account_spec"])
def test_account(name: str) -> None:
    """alpaca-py test_get_account and the spec's Account example: cash negative on margin."""
    b, _ = broker(fx.response("account", name))
    a = run(b.get_account())
    assert a.cash == Decimal("-23140.2") and a.equity == Decimal("103820.56")
    assert a.buying_power == Decimal("262113.632") and a.multiplier == Decimal(4)
    assert a.daytrading_buying_power == Decimal("262113.632")
    assert a.regt_buying_power == Decimal("80680.36") and a.status == "ACTIVE"
    assert a.last_equity == Decimal("103529.24") and a.shorting_enabled is True


def test_stock_asset() -> None:
    b, _ = broker(fx.response("assets", "stock_aapl"))
    a = run(b.get_asset("AAPL"))
    assert (a.symbol, a.asset_class, a.exchange) == ("AAPL", "us_equity", "NASDAQ")
    assert a.tradable and a.shortable and a.easy_to_borrow and a.fractionable and a.marginable


def test_crypto_asset_btc_usd() -> None:
    """Alpaca docs asset-crypto-v2 entity: BTC/USD with min_order_size and price_increment."""
    b, _ = broker(fx.response("assets", "crypto_btc_usd"))
    a = run(b.get_asset("BTC/USD"))
    assert a.symbol == "BTC/USD" and a.asset_class == "crypto"
    assert a.min_order_size == Decimal("0.0001") and a.price_increment == Decimal("1")
    assert not a.shortable and not a.marginable


def test_clock() -> None:
    b, _ = broker(fx.response("clock_calendar", "clock"))
    c = run(b.get_clock())
    assert c.is_open is True and c.timestamp == utc_z("2019-08-24T14:15:22Z") and is_utc(c.next_close)


def test_calendar_times_are_new_york_wall_clock() -> None:
    """Spec Calendar example: 2022-02-01 09:30-16:00 New York (EST) = 14:30-21:00 UTC."""
    b, _ = broker(fx.response("clock_calendar", "calendar"))
    [day] = run(b.get_calendar(date(2022, 2, 1), date(2022, 2, 1)))
    assert day.day == date(2022, 2, 1)
    assert day.open == datetime(2022, 2, 1, 14, 30, tzinfo=UTC)
    assert day.close == datetime(2022, 2, 1, 21, 0, tzinfo=UTC)


# --- activities ---------------------------------------------------------------------------------------------


def test_fill_activities() -> None:
    """FILL activities: the spec's TradingActivities example (AAPL) and the docs' crypto fill (BTC/USD)."""
    stock = fx.body("activities", "fill_stock")[0]
    rows = fx.body("activities", "fill_stock") + fx.body("activities", "fill_crypto")
    b, t = broker(fx.http_response(200, rows))
    f1, f2 = run(b.get_fills())
    assert t.calls[0][1].endswith("/v2/account/activities/FILL")
    assert (f1.symbol, f1.side, f1.qty, f1.price) == ("AAPL", OrderSide.BUY, Decimal("2"), Decimal("174.78"))
    assert f1.order_id == stock["order_id"] and f1.execution_id == stock["id"]
    assert f1.ts == utc_z("2022-02-02T18:55:09.981482Z") and is_utc(f1.ts)
    assert (f2.symbol, f2.qty, f2.price) == ("BTC/USD", Decimal("0.0001"), Decimal("21596.575"))


def test_partial_fill_activity() -> None:
    """alpaca-trade-api-go TestGetAccountActivities: type partial_fill, 643 of 2100 sold at 3.8."""
    b, _ = broker(fx.response("activities", "partial_fill_go"))
    [f] = run(b.get_fills())
    assert (f.side, f.qty, f.price, f.order_id) == (
        OrderSide.SELL,
        Decimal(643),
        Decimal("3.8"),
        "c0e497c2-a547-48cd-85dc-0f1f0ed1b26c",
    )


# --- multi-status and errors ------------------------------------------------------------------------------


def test_close_all_207_mixed_results() -> None:
    """alpaca-py test_close_all_positions: BTCUSD closed by a BTC/USD order; SQQQ and NYC refused (403)."""
    b, t = broker(fx.response("close_all", "close_all_207"))
    results = run(b.close_all_positions(cancel_orders=True))
    assert t.calls[0][0] == "DELETE" and t.calls[0][2]["params"] == {"cancel_orders": True}
    btc, sqqq, nyc = results
    assert btc.status == 200 and btc.order is not None
    assert btc.order.symbol == "BTC/USD" and btc.order.qty == Decimal("0.0283")
    assert btc.order.status is OrderStatus.PENDING_NEW and btc.order.time_in_force is TimeInForce.GTC
    assert (sqqq.symbol, sqqq.status, sqqq.order) == ("SQQQ", 403, None)
    assert "insufficient qty available" in sqqq.message
    assert (nyc.symbol, nyc.status, nyc.message) == ("NYC", 403, "account is not allowed to short")


def test_close_all_207_crypto_result_symbol_is_normalised() -> None:
    """The 207 body carries BTCUSD outside and an order for BTC/USD inside (alpaca-py
    test_close_all_positions)."""
    b, _ = broker(fx.response("close_all", "close_all_207"))
    btc = run(b.close_all_positions(cancel_orders=True))[0]
    assert btc.symbol == "BTC/USD"


def test_cancel_all_207() -> None:
    """alpaca-py test_cancel_orders: one 200, one 404 "order not found"."""
    b, _ = broker(fx.response("close_all", "cancel_all_207"))
    ok, missing = run(b.cancel_all_orders())
    assert (ok.order_id, ok.status) == ("497f6eca-6276-4993-bfeb-53cbbbba6f08", 200)
    assert (missing.status, missing.message) == (404, "order not found")


@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [
        ("insufficient_buying_power_403", BrokerRejected, "insufficient buying power"),
        ("insufficient_qty_403", BrokerRejected, "insufficient qty available"),
        ("sub_penny_422", BrokerRejected, "sub-penny increment"),
        ("bracket_not_entry_422", BrokerRejected, "bracket orders must be entry orders"),
    ],
)
def test_error_bodies_refuse_a_submit_with_alpacas_words(name: str, kind: type[Exception], text: str) -> None:
    """403/422 bodies from alpaca-py #225, alpaca-py's close-all test, docs orders.md and
    alpaca-trade-api-js #248: a definitive refusal carrying code, message and extras; not retried."""
    raw = fx.body("errors", name)
    b, t = broker(fx.response("errors", name))
    with pytest.raises(kind) as info:
        run(b.submit_order(market_buy("hr-m-err-1")))
    err = info.value
    assert isinstance(err, BrokerRejected) and not isinstance(err, BrokerNotFound)
    assert err.status == fx.status("errors", name) and err.code == raw["code"]
    assert text in err.message and len(t.calls) == 1
    extras = {k: v for k, v in raw.items() if k not in ("code", "message")}
    assert err.extra == extras
    assert b.health.allows_new_orders  # a refusal is an answer: the connection is healthy


def test_404_order_not_found() -> None:
    b, _ = broker(fx.response("errors", "order_not_found_404"))
    with pytest.raises(BrokerNotFound) as info:
        run(b.get_order("497f6eca-6276-4993-bfeb-53cbbbba6f08"))
    assert info.value.code == 40410000 and info.value.message == "order not found"
