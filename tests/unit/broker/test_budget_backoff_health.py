from __future__ import annotations

import asyncio
import random

import pytest

from services.broker.backoff import Backoff
from services.broker.budget import RequestBudget, RequestKind
from services.broker.health import HealthMonitor, RestHealth, RestHealthEvent
from services.broker.latency import LatencyRecorder
from services.broker.order_gate import OrderGate
from services.domain.bus import EventBus
from services.domain.enums import ConnectionState
from services.domain.events import ConnectionStateEvent
from tests.support.clock import FakeClock


def test_backoff_grows_with_equal_jitter_and_cap() -> None:
    b = Backoff(base=1.0, factor=2.0, cap=8.0, rng=random.Random(7))
    for attempt, nominal in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        for _ in range(50):
            d = b.delay(attempt)
            assert nominal / 2 <= d <= nominal


def test_backoff_waits_without_blocking_and_respects_minimum() -> None:
    clock = FakeClock()
    b = Backoff(base=0.5, cap=4.0, rng=random.Random(1), sleep=clock.sleep)
    asyncio.run(b.wait(0, minimum=2.0))
    assert clock.sleeps == [2.0]


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)


def test_budget_allows_burst_then_waits_for_refill() -> None:
    clock = FakeClock()
    budget = RequestBudget(60, reserve_fraction=0.2, clock=clock, sleep=clock.sleep)  # 1 token/s
    assert budget.reserve == 12
    taken = sum(budget.try_acquire() for _ in range(100))
    assert taken == 48  # 60 minus the 12 reserved for cancels
    waited = asyncio.run(budget.acquire())
    assert waited == pytest.approx(1.0, abs=0.01)
    assert clock.now == pytest.approx(1001.0, abs=0.01)


def test_budget_reserve_is_for_cancels_only() -> None:
    clock = FakeClock()
    budget = RequestBudget(60, reserve_fraction=0.2, clock=clock, sleep=clock.sleep)
    while budget.try_acquire(RequestKind.NORMAL):
        pass
    assert not budget.try_acquire(RequestKind.NORMAL)
    cancels = sum(budget.try_acquire(RequestKind.CANCEL) for _ in range(100))
    assert cancels == 12
    assert budget.wait_time(RequestKind.CANCEL) == pytest.approx(1.0)
    assert budget.wait_time(RequestKind.NORMAL) == pytest.approx(13.0)


def test_budget_refill_is_capped() -> None:
    clock = FakeClock()
    budget = RequestBudget(200, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        budget.try_acquire()
    clock.now += 3600
    assert budget.available == 200


def _health(bus: EventBus) -> HealthMonitor:
    return HealthMonitor(bus, degraded_after=2, preservation_after=4, recover_after=3)


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker REST health healthy \-> degraded:",
    r"^services\.broker\.health: broker REST health degraded \-> preservation:",
    r"^services\.broker\.health: broker REST health preservation \-> healthy: recovered",
)
def test_health_degrades_then_preserves_then_recovers_with_reasons() -> None:
    bus = EventBus()
    events: list[RestHealthEvent] = []
    conn: list[ConnectionStateEvent] = []
    bus.subscribe(RestHealthEvent, events.append)
    bus.subscribe(ConnectionStateEvent, conn.append)
    h = _health(bus)
    h.record_failure("timeout")
    assert h.state is RestHealth.HEALTHY
    h.record_failure("503")
    assert h.state is RestHealth.DEGRADED and "2 broker calls failed" in h.reason
    h.record_failure("503")
    h.record_failure("timeout")
    assert h.state is RestHealth.PRESERVATION and not h.allows_new_orders
    h.record_success()
    h.record_success()
    assert h.state is RestHealth.PRESERVATION
    h.record_success()
    assert h.state is RestHealth.HEALTHY and "recovered" in h.reason
    assert [e.health for e in events] == [RestHealth.DEGRADED, RestHealth.PRESERVATION, RestHealth.HEALTHY]
    assert all(e.reason for e in events)
    assert [c.state for c in conn] == [
        ConnectionState.RECONNECTING,
        ConnectionState.SAFE_MODE,
        ConnectionState.LIVE,
    ]
    assert all(c.channel == "rest" for c in conn)


def test_health_failure_streak_is_reset_by_success() -> None:
    h = _health(EventBus())
    for _ in range(10):
        h.record_failure("x")
        h.record_success()
    assert h.state is RestHealth.HEALTHY


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> preservation: the")
def test_health_auth_failure_goes_straight_to_preservation() -> None:
    h = _health(EventBus())
    h.record_failure("401 request is not authorized", auth=True)
    assert h.state is RestHealth.PRESERVATION
    assert "refused our keys" in h.reason


@pytest.mark.expected_log(r"^services\.broker\.latency: slow broker call submit_order took \S+ s")
def test_latency_percentiles_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    rec = LatencyRecorder(window=100, warn_above=1.0)
    for i in range(1, 101):
        rec.record("get_account", i / 100)
    s = rec.stats("get_account")
    assert s is not None
    assert s.count == 100 and s.last == 1.0
    assert s.p50 == pytest.approx(0.5, abs=0.011)
    assert s.p95 == pytest.approx(0.95, abs=0.011)
    rec.record("submit_order", 1.5)
    assert "slow broker call submit_order" in caplog.text
    assert rec.last == 1.5


def test_order_gate_open_close_wait() -> None:
    async def main() -> None:
        gate = OrderGate()
        assert not gate.allowed and gate.reason
        assert await gate.wait_allowed(timeout=0) is False
        waiter = asyncio.ensure_future(gate.wait_allowed())
        await asyncio.sleep(0)
        gate.open()
        assert await waiter is True
        gate.close("trading stream reconnecting")
        assert not gate.allowed and gate.reason == "trading stream reconnecting"

    asyncio.run(main())
