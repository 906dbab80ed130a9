"""The status bar's and the state report's connection against the real local exchange: frozen with
SIGSTOP, the connection stops being "live" (and ACTIVE is qualified) long before the 18-22 s it took
before; after SIGCONT it returns to live."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

import pytest

from services.broker.alpaca import AlpacaBroker
from services.broker.health import UNREACHABLE, HealthMonitor
from services.broker.latency import LatencyRecorder
from services.broker.status import HealthStatus, HealthWatch
from services.domain.bus import EventBus
from services.domain.enums import Mode, TradingState
from services.domain.events import TradeUpdateEvent
from services.marketdata.streams import StreamManager
from services.orders.report import build_state_report
from tests.support.exchange import ExchangeProcess
from tests.support.polling import async_wait_for

WATCHED = ["AAPL", "BTC/USD"]
#: A polling bound, not a speed claim: well under the 18-22 s the frozen exchange went unnoticed.
NOTICED_WITHIN = 12.0


@dataclass
class Active:
    state: TradingState = TradingState.ACTIVE
    reason: str = "start-up reconciliation clean"


def _pid(ex: ExchangeProcess) -> int:
    assert ex._proc is not None and ex.running
    return ex._proc.pid


@pytest.mark.expected_log(
    r"^services\.broker\.health: broker connection live \-> slow: get_clock has",
    r"^services\.broker\.health: broker connection slow \-> unresponsive: no answer",
    r"^services\.broker\.latency: slow broker call get_clock took \S+ s",
)
def test_a_frozen_exchange_is_not_reported_live_and_a_thawed_one_is_again() -> None:
    async def main(ex: ExchangeProcess) -> None:
        bus = EventBus()
        health, latency = HealthMonitor(bus), LatencyRecorder()
        broker = AlpacaBroker(
            ex.key_id, ex.secret, environment="local", base_url=ex.url, health=health, latency=latency
        )
        streams = StreamManager(key_id=ex.key_id, secret=ex.secret, bus=bus, base_url=ex.url, broker=broker)
        assert streams.trading is not None
        watch = HealthWatch(latency, health, broker.get_clock, streams, ping=streams.trading.ping)
        bus.subscribe(TradeUpdateEvent, lambda _e: watch.trade_update())
        probe = asyncio.ensure_future(watch.run())
        trading = Active()

        def status() -> HealthStatus:
            return watch.status(WATCHED, trading)

        def reported() -> dict[str, object]:
            return build_state_report(mode=Mode.LOCAL, trading_state=trading.state, health=status().report())

        try:
            await streams.start()
            await streams.subscribe(WATCHED)
            await async_wait_for(
                "live connection and fresh data",
                lambda: status().connection.live and status().data_fresh,
                30,
            )
            assert status().trading == "ACTIVE"
            assert reported()["connection"]["live"] is True  # type: ignore[index]

            os.kill(_pid(ex), signal.SIGSTOP)
            try:
                # "slow" (a call waiting 2 s) may come first; the freeze is noticed as unreachable
                await async_wait_for(
                    "the frozen exchange to be noticed",
                    lambda: status().connection.state in UNREACHABLE,
                    NOTICED_WITHIN,
                )
                frozen = status()
                assert frozen.trading == "ACTIVE (broker unreachable)" and not frozen.orders_possible
                report = reported()
                assert report["connection"]["live"] is False  # type: ignore[index]
                assert report["trading"]["shown"] != "ACTIVE"  # type: ignore[index]
                await async_wait_for("the data to go stale", lambda: not status().data_fresh, NOTICED_WITHIN)
                assert "old" in status().data
            finally:
                os.kill(_pid(ex), signal.SIGCONT)
            await async_wait_for(
                "the connection to be live again",
                lambda: status().connection.live and status().data_fresh,
                30,
            )
            assert status().trading == "ACTIVE"
        finally:
            probe.cancel()
            await streams.stop()
            await broker.close()

    with ExchangeProcess.start(seed=21) as ex:
        asyncio.run(main(ex))
