"""Alpaca REST payloads on the client side: arbitrary or malformed JSON through alpaca-py's models and
Heron's conversion (services/broker/convert.py).

Contract: a payload the SDK cannot parse is classified as a typed BrokerError (what the adapter
does with any exception from a call); a parsed one converts to a domain object or raises ValueError
(InvalidNumberError and friends), never AttributeError/KeyError/TypeError into the caller.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.models import TradeAccount
from hypothesis import strategies as st

from services.broker import convert
from services.broker.base import BrokerError
from services.broker.errors import classify
from tests.fuzz.budget import fuzz_pair

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "heron-m-1",
    "created_at": "2026-03-02T15:00:00Z",
    "updated_at": "2026-03-02T15:00:01Z",
    "submitted_at": "2026-03-02T15:00:00Z",
    "filled_at": None,
    "expired_at": None,
    "canceled_at": None,
    "failed_at": None,
    "replaced_at": None,
    "replaced_by": None,
    "replaces": None,
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "10",
    "filled_qty": "0",
    "filled_avg_price": None,
    "order_class": "simple",
    "order_type": "limit",
    "type": "limit",
    "side": "buy",
    "time_in_force": "day",
    "limit_price": "187.5",
    "stop_price": None,
    "status": "new",
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
}
POSITION = {
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "exchange": "NASDAQ",
    "asset_class": "us_equity",
    "avg_entry_price": "187.5",
    "qty": "10",
    "qty_available": "10",
    "side": "long",
    "market_value": "1875",
    "cost_basis": "1875",
    "unrealized_pl": "0",
    "unrealized_plpc": "0",
    "unrealized_intraday_pl": "0",
    "unrealized_intraday_plpc": "0",
    "current_price": "187.5",
    "lastday_price": "187",
    "change_today": "0.002",
}
ACCOUNT = {
    "id": "c8f1f4a6-0000-4000-8000-000000000001",
    "account_number": "PA0000000001",
    "status": "ACTIVE",
    "currency": "USD",
    "cash": "100000",
    "portfolio_value": "100000",
    "equity": "100000",
    "last_equity": "100000",
    "buying_power": "200000",
    "pattern_day_trader": False,
    "trading_blocked": False,
    "transfers_blocked": False,
    "account_blocked": False,
    "created_at": "2024-01-02T15:04:05Z",
    "trade_suspended_by_user": False,
    "multiplier": "2",
    "shorting_enabled": True,
    "long_market_value": "0",
    "short_market_value": "0",
    "initial_margin": "0",
    "maintenance_margin": "0",
    "daytrade_count": 0,
}

value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "NaN", "1e999", "-0", "abc", "2026-13-01T00:00:00Z", "buy", "sell"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def mutated(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        data = dict(valid)
        for key in draw(st.lists(st.sampled_from(list(valid)), min_size=1, max_size=4, unique=True)):
            if draw(st.integers(0, 4)) == 0:
                data.pop(key)
            else:
                data[key] = draw(value)
        return data

    return build()


def _through_adapter(model: type[Any], conv: Any, data: dict[str, Any]) -> None:
    try:
        parsed = model(**json.loads(json.dumps(data, default=str)))
    except Exception as exc:  # what the SDK raises inside a call: the adapter classifies it
        failure = classify(exc, "GET /v2/test")
        assert isinstance(failure.error, BrokerError) and str(failure.error)
        return
    try:
        conv(parsed)
    except ValueError as exc:
        assert str(exc)


def prop_order(data: dict[str, Any]) -> None:
    _through_adapter(AlpacaOrder, convert.order, data)


def prop_position(data: dict[str, Any]) -> None:
    _through_adapter(AlpacaPosition, convert.position, data)


def prop_account(data: dict[str, Any]) -> None:
    _through_adapter(TradeAccount, convert.account, data)


test_order_payload, test_order_payload_deep = fuzz_pair(mutated(ORDER), examples=120)(prop_order)
# a mutated payload may lose its side or carry an unknown enum value: the adapter says so at WARNING
_CONVERT_WARNINGS = pytest.mark.expected_log(
    r"^services\.broker\.convert: order \S+ has no side",
    r"^services\.broker\.convert: unknown \w+ ",
)
test_order_payload = _CONVERT_WARNINGS(test_order_payload)
test_order_payload_deep = _CONVERT_WARNINGS(test_order_payload_deep)
test_position_payload, test_position_payload_deep = fuzz_pair(mutated(POSITION), examples=100)(prop_position)
test_account_payload, test_account_payload_deep = fuzz_pair(mutated(ACCOUNT), examples=100)(prop_account)


def test_the_valid_payloads_convert() -> None:
    assert convert.order(AlpacaOrder(**ORDER)).symbol == "AAPL"
    assert convert.position(AlpacaPosition(**POSITION)).symbol == "AAPL"
    assert convert.account(TradeAccount(**ACCOUNT)).account_number == "PA0000000001"
