from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import requests

from services.broker.alpaca import AlpacaBroker
from services.broker.backoff import Backoff
from services.broker.base import (
    BrokerAuthError,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    ReplaceRequest,
)
from services.broker.budget import RequestBudget
from services.broker.health import HealthMonitor, OrdersSuspended, RestHealth
from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import OrderRequest
from tests.support.clock import FakeClock
from tests.unit.broker.fakes import (
    ACCOUNT_JSON,
    ORDER_ID,
    POSITION_JSON,
    ScriptedTransport,
    order_json,
    response,
)

T = TypeVar("T")

NOT_FOUND = {"code": 40410000, "message": "order not found"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make(answers: list[Any], **kw: Any) -> tuple[AlpacaBroker, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = ScriptedTransport(answers)
    broker = AlpacaBroker(
        "PKTEST",
        "secret",
        environment="local",
        base_url="http://127.0.0.1:1",
        transport=transport,
        backoff=Backoff(base=0.5, cap=4.0, max_retries=3, rng=random.Random(3), sleep=clock.sleep),
        budget=RequestBudget(200, clock=clock, sleep=clock.sleep),
        **kw,
    )
    return broker, transport, clock


def limit_buy(coid: str = "heron-1") -> OrderRequest:
    return OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        TimeInForce.DAY,
        qty=Decimal("10"),
        limit_price=Decimal("187.25"),
        client_order_id=coid,
    )


def test_timeouts_injected_and_sdk_retry_off() -> None:
    broker, transport, _ = make([response(200, ACCOUNT_JSON)], connect_timeout=2.0, read_timeout=7.0)
    assert broker.client._retry == 0
    account = run(broker.get_account())
    assert transport.calls[0][2]["timeout"] == (2.0, 7.0)
    assert account.cash == Decimal("100000.12") and account.equity == Decimal("100250.5")
    assert account.daytrade_count == 1 and account.multiplier == Decimal(4)
    run(broker.close())


def test_429_and_5xx_are_retried_with_backoff() -> None:
    broker, transport, clock = make(
        [
            response(429, {"code": 42910000, "message": "too many requests"}, headers={"Retry-After": "2"}),
            response(503, text="<html>Service Unavailable</html>"),
            response(200, ACCOUNT_JSON),
        ]
    )
    account = run(broker.get_account())
    assert account.account_number == "PA1234567"
    assert len(transport.calls) == 3
    assert clock.sleeps[0] >= 2.0  # Retry-After honoured
    assert len(clock.sleeps) == 2


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> degraded:")
def test_retries_give_up_with_unavailable_and_health_degrades() -> None:
    broker, transport, _ = make(
        [requests.exceptions.ReadTimeout("slow")] * 4,
        health=HealthMonitor(degraded_after=3, preservation_after=10),
    )
    with pytest.raises(BrokerUnavailable, match="did not answer in time"):
        run(broker.get_account())
    assert len(transport.calls) == 4
    assert broker.health.state is RestHealth.DEGRADED


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> degraded:")
def test_html_500_body_does_not_crash_error_mapping() -> None:
    broker, _, _ = make([response(500, text="<html>oops</html>")] * 4)
    with pytest.raises(BrokerUnavailable, match="500"):
        run(broker.get_positions())


def test_4xx_are_not_retried_and_carry_code_message_extras() -> None:
    body = {
        "code": 40310000,
        "message": "insufficient qty available for order (requested: 10, available: 2)",
        "available": "2",
        "existing_qty": "2",
        "held_for_orders": "0",
    }
    broker, transport, _ = make([response(403, body)])
    with pytest.raises(BrokerRejected) as info:
        run(broker.submit_order(limit_buy()))
    assert len(transport.calls) == 1
    assert info.value.status == 403 and info.value.code == 40310000
    assert info.value.extra["available"] == "2"
    assert broker.health.state is RestHealth.HEALTHY


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> preservation: the")
def test_auth_errors_are_typed() -> None:
    broker, _, _ = make([response(403, {"message": "forbidden."})])
    with pytest.raises(BrokerAuthError, match="refused the keys"):
        run(broker.get_account())
    assert broker.health.state is RestHealth.PRESERVATION


def test_not_found_maps_to_none_or_broker_not_found() -> None:
    broker, _, _ = make(
        [
            response(404, NOT_FOUND),
            response(404, {"code": 40410000, "message": "position does not exist"}),
            response(404, NOT_FOUND),
        ]
    )
    assert run(broker.get_order_by_client_id("nope")) is None
    assert run(broker.get_position("AAPL")) is None
    with pytest.raises(BrokerNotFound):
        run(broker.get_order(ORDER_ID))


def test_submit_body_and_conversion() -> None:
    broker, transport, _ = make([response(200, order_json())])
    order = run(broker.submit_order(limit_buy()))
    method, url, kw = transport.calls[0]
    assert method == "POST" and url.endswith("/v2/orders")
    assert kw["json"]["client_order_id"] == "heron-1" and kw["json"]["limit_price"] == 187.25
    assert order.id == ORDER_ID and order.status is OrderStatus.NEW
    assert order.limit_price == Decimal("187.25") and order.qty == Decimal(10)
    assert order.created_at.tzinfo is not None and order.created_at.utcoffset().total_seconds() == 0


def test_ambiguous_submit_is_resolved_by_client_id_not_reposted() -> None:
    broker, transport, _ = make(
        [
            requests.exceptions.ReadTimeout("read timed out"),
            response(200, order_json()),  # lookup finds it
        ]
    )
    order = run(broker.submit_order(limit_buy()))
    assert order.id == ORDER_ID
    assert [c[0] for c in transport.calls] == ["POST", "GET"]
    assert "by_client_order_id" in transport.calls[1][1]


@pytest.mark.expected_log(r"^services\.broker\.alpaca: re\-sending order \S+ \(same client id\) after")
def test_submit_reposted_with_same_client_id_only_after_definitive_404() -> None:
    broker, transport, _ = make(
        [
            response(502, text="bad gateway"),
            response(404, NOT_FOUND),
            response(200, order_json()),
        ]
    )
    order = run(broker.submit_order(limit_buy("heron-77")))
    assert order.id == ORDER_ID
    posts = [c for c in transport.calls if c[0] == "POST"]
    assert len(posts) == 2
    assert all(p[2]["json"]["client_order_id"] == "heron-77" for p in posts)


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> degraded:")
def test_submit_unknown_when_lookup_also_fails() -> None:
    broker, transport, _ = make(
        [requests.exceptions.ReadTimeout("t")] + [requests.exceptions.ConnectionError("x")] * 4
    )
    with pytest.raises(BrokerUnavailable, match="outcome unknown"):
        run(broker.submit_order(limit_buy()))
    assert sum(1 for c in transport.calls if c[0] == "POST") == 1


@pytest.mark.expected_log(r"^services\.broker\.alpaca: re\-sending order \S+ \(same client id\) after")
def test_duplicate_client_id_on_resend_resolves_to_existing() -> None:
    broker, _, _ = make(
        [
            requests.exceptions.ReadTimeout("t"),
            response(404, NOT_FOUND),  # not visible yet
            response(422, {"code": 42210000, "message": "client_order_id must be unique"}),
            response(200, order_json()),
        ]
    )
    order = run(broker.submit_order(limit_buy()))
    assert order.client_order_id == "heron-1"


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> preservation: the")
def test_preservation_blocks_submits_but_not_cancels() -> None:
    broker, transport, _ = make([response(204)])
    broker.health.record_failure("401", auth=True)
    with pytest.raises(OrdersSuspended, match="suspended"):
        run(broker.submit_order(limit_buy()))
    run(broker.cancel_order(ORDER_ID))
    assert transport.calls[0][0] == "DELETE"


def test_cancels_use_the_reserve_when_budget_is_exhausted() -> None:
    broker, _, clock = make([response(204)])
    while broker.budget.try_acquire():
        pass
    run(broker.cancel_order(ORDER_ID))
    assert clock.sleeps == []  # no waiting: the reserve paid for it


def test_replace_ambiguous_resolved_via_old_order() -> None:
    new_id = "0b8e7f36-1f1c-4a4e-9a57-2a3f9d1b7c55"
    broker, transport, _ = make(
        [
            requests.exceptions.ReadTimeout("t"),
            response(200, order_json(status="replaced", replaced_by=new_id)),
            response(200, order_json(id=new_id, replaces=ORDER_ID, client_order_id="heron-2", qty="5")),
        ]
    )
    new = run(broker.replace_order(ORDER_ID, ReplaceRequest(qty=Decimal(5))))
    assert new.id == new_id and new.replaces == ORDER_ID
    assert sum(1 for c in transport.calls if c[0] == "PATCH") == 1


def test_replace_rejects_fractional_qty_locally() -> None:
    broker, transport, _ = make([])
    with pytest.raises(BrokerRejected, match="whole number"):
        run(broker.replace_order(ORDER_ID, ReplaceRequest(qty=Decimal("1.5"))))
    assert transport.calls == []


def test_positions_conversion_keeps_short_sign() -> None:
    broker, _, _ = make([response(200, [POSITION_JSON, {**POSITION_JSON, "side": "short", "qty": "3"}])])
    positions = run(broker.get_positions())
    assert [p.qty for p in positions] == [Decimal(-5), Decimal(-3)]
    assert positions[0].market_value == Decimal("-1000.5")


def test_cancel_all_207() -> None:
    broker, _, _ = make(
        [
            response(
                207,
                [
                    {"id": ORDER_ID, "status": 200},
                    {
                        "id": "0b8e7f36-1f1c-4a4e-9a57-2a3f9d1b7c55",
                        "status": 422,
                        "body": {"code": 42210000, "message": "order is not cancelable"},
                    },
                ],
            )
        ]
    )
    results = run(broker.cancel_all_orders())
    assert [r.status for r in results] == [200, 422]
    assert results[1].message == "order is not cancelable"


def test_fills_follow_pages() -> None:
    def act(i: int) -> dict[str, Any]:
        return {
            "id": f"20240301::{i}",
            "activity_type": "FILL",
            "transaction_time": "2024-03-01T15:00:00Z",
            "type": "fill",
            "price": "10.5",
            "qty": "1",
            "side": "sell",
            "symbol": "AAPL",
            "order_id": ORDER_ID,
            "leaves_qty": "0",
            "cum_qty": "1",
        }

    broker, transport, _ = make(
        [response(200, [act(i) for i in range(100)]), response(200, [act(i) for i in range(100, 130)])]
    )
    fills = run(broker.get_fills())
    assert len(fills) == 130 and fills[0].price == Decimal("10.5") and fills[0].side is OrderSide.SELL
    assert transport.calls[1][2]["params"]["page_token"] == "20240301::99"
