"""The connection, latency, feed freshness and trading state the trader is shown, with fake clocks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.broker.health import HealthMonitor, LinkMonitor, LinkProbe, LinkState
from services.broker.latency import LatencyRecorder, LatencyState
from services.broker.status import derive_status
from services.domain.enums import ConnectionState, TradingState
from services.marketdata.staleness import FeedFreshness
from tests.support.clock import FakeClock


def _answered(
    rec: LatencyRecorder, clock: FakeClock, endpoint: str = "get_clock", took: float = 0.05
) -> None:
    token = rec.begin(endpoint)
    clock.advance(took)
    rec.end(token)


LIVE_STREAMS = {"stock": ConnectionState.LIVE, "trading": ConnectionState.LIVE}


def _setup() -> tuple[FakeClock, LatencyRecorder, LinkMonitor]:
    clock = FakeClock()
    rec = LatencyRecorder(clock=clock)
    return clock, rec, LinkMonitor(rec, HealthMonitor(), clock=clock)


# -- latency --------------------------------------------------------------------------------------


def test_a_call_that_has_not_answered_shows_its_waiting_time_not_the_last_good_latency() -> None:
    clock, rec, _ = _setup()
    _answered(rec, clock, took=0.04)
    assert rec.view().text == "40 ms" and rec.view().state is LatencyState.OK
    rec.begin("get_account")
    clock.advance(3.0)
    view = rec.view()
    assert view.state is LatencyState.SLOW
    assert view.text.startswith("3.0 s") and "get_account" in view.detail


def test_a_call_that_times_out_shows_as_failing_until_the_broker_answers_again() -> None:
    clock, rec, _ = _setup()
    _answered(rec, clock, took=0.04)
    token = rec.begin("get_account")
    clock.advance(0.5)
    rec.end(token, error="timed out", answered=False)
    view = rec.view()
    assert view.state is LatencyState.FAILING and view.text == "failing"
    assert "get_account" in view.detail and "timed out" in view.detail
    assert rec.last == pytest.approx(0.04)  # the failure is not a latency sample
    _answered(rec, clock, took=0.06)
    assert rec.view().state is LatencyState.OK and rec.failing() is None


def test_a_refusal_is_an_answer_and_a_cancelled_call_says_nothing() -> None:
    clock, rec, _ = _setup()
    token = rec.begin("submit_order")
    clock.advance(0.1)
    rec.end(token, error="insufficient buying power", answered=True)
    assert rec.failing() is None and rec.answer_age() == pytest.approx(0.0)
    token = rec.begin("get_order")
    rec.end(token, answered=False)
    assert rec.in_flight == 0 and rec.failing() is None


# -- connection -----------------------------------------------------------------------------------


@pytest.mark.expected_log(r"^services\.broker\.health: broker connection live \-> unresponsive: no answer")
def test_live_only_while_the_broker_answers() -> None:
    clock, rec, mon = _setup()
    assert mon.verdict(LIVE_STREAMS).state is LinkState.CONNECTING  # nothing answered yet
    _answered(rec, clock)
    assert mon.verdict(LIVE_STREAMS).live
    clock.advance(mon.live_window + 0.5)  # frozen: nothing answers any more
    v = mon.verdict(LIVE_STREAMS)
    assert v.state is LinkState.UNRESPONSIVE and "no answer from the broker" in v.reason


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker connection live \-> slow: get_clock has",
    r"^services\.broker\.health: broker connection slow \-> unresponsive: the broker",
)
def test_a_waiting_call_makes_the_link_slow_then_unresponsive_from_its_start() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    rec.begin("get_clock")
    clock.advance(1.0)
    assert mon.verdict(LIVE_STREAMS).live
    clock.advance(1.5)
    assert mon.verdict(LIVE_STREAMS).state is LinkState.SLOW
    _answered(rec, clock, endpoint="get_account")  # another call answered: still one waits
    clock.advance(2.5)
    v = mon.verdict(LIVE_STREAMS)
    assert v.state is LinkState.UNRESPONSIVE and "get_clock" in v.reason


def test_a_failed_call_makes_the_link_failing_and_an_answer_makes_it_live() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    token = rec.begin("get_account")
    rec.end(token, error="connection refused", answered=False)
    v = mon.verdict(LIVE_STREAMS)
    assert v.state is LinkState.FAILING and "connection refused" in v.reason
    _answered(rec, clock)
    assert mon.verdict(LIVE_STREAMS).live


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker connection reconnecting \-> failed: stock stream:",
    r"^services\.broker\.health: broker connection live \-> unresponsive: nothing heard",
)
def test_streams_that_are_not_live_and_a_silent_watched_stream_are_said() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    v = mon.verdict({"stock": ConnectionState.RECONNECTING}, {"stock": "connection lost"})
    assert v.state is LinkState.RECONNECTING and "connection lost" in v.reason
    assert mon.verdict({"stock": ConnectionState.FAILED}).state is LinkState.FAILED
    mon.watch("trading")
    clock.advance(4.0)
    _answered(rec, clock)
    assert mon.verdict(LIVE_STREAMS).live
    clock.advance(3.0)
    _answered(rec, clock)  # REST answers, the trading stream has been silent for 7 s
    v = mon.verdict(LIVE_STREAMS)
    assert v.state is LinkState.UNRESPONSIVE and "trading" in v.reason
    mon.heard("trading")
    assert mon.verdict(LIVE_STREAMS).live


@pytest.mark.expected_log(r"^services\.broker\.health: broker REST health healthy \-> preservation: the")
def test_preservation_mode_is_safe_mode() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    assert mon.health is not None
    mon.health.record_failure("401", auth=True)
    assert mon.verdict(LIVE_STREAMS).state is LinkState.SAFE_MODE


# -- probe ----------------------------------------------------------------------------------------


@pytest.mark.expected_log(r"^services\.broker\.latency: slow broker call get_clock took \S+ s")
def test_the_probe_asks_the_broker_only_when_it_has_been_quiet_and_never_twice_at_once() -> None:
    async def main() -> None:
        clock, rec, mon = _setup()
        calls: list[str] = []
        hang = asyncio.Event()

        async def rest() -> Any:
            calls.append("clock")
            token = rec.begin("get_clock")
            await hang.wait()
            rec.end(token)

        pongs: list[float] = []

        async def ping(timeout: float) -> bool:
            pongs.append(timeout)
            return True

        probe = LinkProbe(mon, rec, rest, {"trading": ping}, quiet_after=3.0)
        _answered(rec, clock)
        mon.heard("trading")
        probe.step()
        await asyncio.sleep(0)
        assert calls == [] and pongs == []  # just heard: nothing to ask
        clock.advance(3.0)
        probe.step()
        await asyncio.sleep(0)
        assert calls == ["clock"] and len(pongs) == 1
        assert mon.heard_age("trading") == 0.0  # the pong counts
        clock.advance(5.0)
        probe.step()  # the REST probe still hangs: no second one
        await asyncio.sleep(0)
        assert calls == ["clock"]
        assert mon.verdict(LIVE_STREAMS).state is LinkState.UNRESPONSIVE
        hang.set()
        await asyncio.sleep(0)
        assert mon.verdict(LIVE_STREAMS).live

    asyncio.run(main())


# -- feeds and the derived status -----------------------------------------------------------------


def test_each_feed_is_fresh_from_its_own_newest_message_and_shows_its_age_when_stale() -> None:
    wall = FakeClock(1_700_000_000.0)
    feeds = FeedFreshness(default_max_age=10.0, wall=wall)
    feeds.heard("stock")
    feeds.heard("crypto")
    wall.advance(8.0)
    feeds.heard("crypto")
    wall.advance(6.0)
    stock, crypto = feeds.verdict("stock"), feeds.verdict("crypto")
    assert stock.stale and stock.age_seconds == pytest.approx(14.0) and stock.label == "stock data 14 s old"
    assert not crypto.stale and crypto.label == "crypto data fresh"
    none = feeds.verdict("trading")
    assert none.stale and none.age_seconds is None
    feeds.heard("stock", at=wall() - 100)  # an older receive time never moves it back
    assert feeds.verdict("stock").age_seconds == pytest.approx(14.0)


@pytest.mark.expected_log(r"^services\.broker\.health: broker connection live \-> unresponsive: no answer")
def test_active_is_never_shown_plainly_when_orders_could_not_reach_the_broker() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    wall = FakeClock()
    feeds = FeedFreshness(wall=wall)
    feeds.heard("stock")
    live = derive_status(
        connection=mon.verdict(LIVE_STREAMS),
        feeds=[feeds.verdict("stock")],
        watched=1,
        trading_state=TradingState.ACTIVE,
        trading_reason="clean",
    )
    assert (live.connection.state.value, live.data, live.trading) == ("live", "fresh", "ACTIVE")
    assert live.orders_possible
    clock.advance(10.0)
    wall.advance(12.0)
    frozen = derive_status(
        connection=mon.verdict(LIVE_STREAMS),
        feeds=[feeds.verdict("stock")],
        watched=1,
        trading_state=TradingState.ACTIVE,
        trading_reason="clean",
    )
    assert frozen.connection.state is LinkState.UNRESPONSIVE
    assert frozen.data == "stock data 12 s old" and not frozen.data_fresh
    assert frozen.trading == "ACTIVE (broker unreachable)" and not frozen.orders_possible
    report = frozen.report()
    assert report["connection"]["live"] is False and report["connection"]["state"] == "unresponsive"
    assert report["data"]["fresh"] is False and report["data"]["feeds"]["stock"]["age_s"] == 12.0
    assert report["trading"] == {
        "state": "ACTIVE",
        "shown": "ACTIVE (broker unreachable)",
        "reason": frozen.trading_reason,
        "orders_possible": False,
    }
    halted = derive_status(
        connection=mon.verdict(LIVE_STREAMS), trading_state=TradingState.HALTED, trading_reason="kill switch"
    )
    assert halted.trading == "HALTED"


@pytest.mark.expected_log(r"^services\.broker\.health: broker connection live \-> slow: submit_order has")
def test_a_closed_order_gate_and_a_slow_broker_qualify_active() -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)

    class Gate:
        allowed = False
        reason = "resynchronising after a reconnect"

    paused = derive_status(
        connection=mon.verdict(LIVE_STREAMS), trading_state=TradingState.ACTIVE, gate=Gate()
    )
    assert paused.trading == "ACTIVE (orders paused)" and "resynchronising" in paused.trading_reason
    rec.begin("submit_order")
    clock.advance(2.5)
    slow = derive_status(connection=mon.verdict(LIVE_STREAMS), trading_state=TradingState.ACTIVE)
    assert slow.trading == "ACTIVE (broker slow)"


@pytest.mark.expected_log(r"^services\.broker\.health: broker connection live \-> unresponsive: no answer")
def test_leaving_live_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock, rec, mon = _setup()
    _answered(rec, clock)
    mon.verdict(LIVE_STREAMS)
    clock.advance(7.0)
    for _ in range(3):
        mon.verdict(LIVE_STREAMS)
    lines = [r for r in caplog.records if "broker connection live -> unresponsive" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "WARNING"


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker connection live \-> slow: why",
    r"^services\.broker\.health: broker connection slow \-> unresponsive: why",
    r"^services\.broker\.health: broker connection unresponsive \-> failed: why",
)
def test_flips_between_equally_bad_states_are_info_and_getting_worse_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """During one outage the link flips between unresponsive and failing every few seconds: each
    flip was a WARNING, burying the one line that mattered."""
    import logging

    from services.broker.health import LinkVerdict

    _clock, _rec, mon = _setup()
    caplog.set_level(logging.INFO)
    for state in (LinkState.LIVE, LinkState.SLOW, LinkState.UNRESPONSIVE, LinkState.FAILING,
                  LinkState.UNRESPONSIVE, LinkState.FAILED, LinkState.LIVE):  # fmt: skip
        mon._said(LinkVerdict(state, "why"))
    levels = [(r.getMessage().split(":")[0], r.levelname) for r in caplog.records
              if r.getMessage().startswith("broker connection")]  # fmt: skip
    assert levels == [
        ("broker connection live -> slow", "WARNING"),
        ("broker connection slow -> unresponsive", "WARNING"),
        ("broker connection unresponsive -> failing", "INFO"),
        ("broker connection failing -> unresponsive", "INFO"),
        ("broker connection unresponsive -> failed", "WARNING"),
        ("broker connection failed -> live", "INFO"),
    ]
