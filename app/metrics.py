"""``--metrics-port N``: Prometheus metrics on http://127.0.0.1:N/metrics (loopback only).

Values are sampled on the event-loop thread once a second into prometheus-client gauges (which
are thread-safe); the HTTP server runs on prometheus-client's own daemon thread and never touches
service objects. Exported: market-data message rate, REST latency per endpoint, orders by status,
trading state, open drift incidents, strategy P&L, stream states, shadow prediction counts, and the
event loop's health: lag (how late a 100 ms timer fires; the worst over each sampling interval) and
the number of asyncio tasks (a leak shows as growth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from services.domain.enums import ConnectionState, TradingState

log = logging.getLogger(__name__)

BIND = "127.0.0.1"


@dataclass
class MetricsSample:
    """One reading of everything exported (built by the composition root's sampler)."""

    messages_total: int = 0
    rest_latency: dict[str, float] = field(default_factory=dict)  # endpoint -> last seconds
    rest_health: str = "healthy"
    orders_by_status: dict[str, int] = field(default_factory=dict)
    trading_state: TradingState | None = None
    streams: dict[str, ConnectionState] = field(default_factory=dict)
    open_incidents: int = 0
    strategy_pnl: dict[str, float] = field(default_factory=dict)
    shadow_predictions: int = 0
    shadow_scored: int = 0


class MetricsServer:
    """Owns the registry, the HTTP server and the sampling task."""

    def __init__(self, port: int, sample: Callable[[], MetricsSample], *, interval: float = 1.0) -> None:
        self.port = port
        self._sample = sample
        self.interval = interval
        self.registry = CollectorRegistry()
        r = self.registry
        self.msg_rate = Gauge(
            "heron_marketdata_messages_per_second", "Market-data messages per second", registry=r
        )
        self.msg_total = Gauge("heron_marketdata_messages", "Market-data messages since start", registry=r)
        self.latency = Gauge("heron_rest_latency_seconds", "Last REST call latency", ["endpoint"], registry=r)
        self.health = Gauge(
            "heron_rest_health", "REST health (1 for the current state)", ["state"], registry=r
        )
        self.orders = Gauge("heron_orders", "Orders in memory by status", ["status"], registry=r)
        self.trading = Gauge(
            "heron_trading_state", "Trading state (1 for the current state)", ["state"], registry=r
        )
        self.streams = Gauge(
            "heron_stream_state", "Stream state (1 for the current state)", ["channel", "state"], registry=r
        )
        self.incidents = Gauge("heron_drift_incidents_open", "Open reconciliation incidents", registry=r)
        self.pnl = Gauge("heron_strategy_pnl", "Strategy P&L (account currency)", ["strategy"], registry=r)
        self.shadow = Gauge("heron_shadow_predictions", "Shadow predictions", ["kind"], registry=r)
        self.loop_lag = Gauge(
            "heron_event_loop_lag_seconds",
            "Worst lateness of a 100 ms timer on the event loop over the last interval",
            registry=r,
        )
        self.loop_tasks = Gauge("heron_event_loop_tasks", "asyncio tasks alive on the event loop", registry=r)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._last: tuple[float, int] | None = None
        self._lag_max = 0.0

    def start(self) -> None:
        """Bind 127.0.0.1:port (raises OSError when taken) and start sampling."""
        result = start_http_server(self.port, addr=BIND, registry=self.registry)
        self._server = result[0] if isinstance(result, tuple) else None
        self.update()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._loop(), name="metrics-sampler")
        self._probe = loop.create_task(self._lag_probe(), name="metrics-loop-lag")
        log.info("metrics served on http://%s:%d/metrics", BIND, self.port)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.update()
            except Exception:
                log.exception("metrics sampling failed; trying again")

    async def _lag_probe(self, period: float = 0.1) -> None:
        """Runs on the event loop: a timer that is late by X seconds means the loop was busy for X."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(period)
            self.record_lag(time.monotonic() - start - period)

    def record_lag(self, seconds: float) -> None:
        self._lag_max = max(self._lag_max, seconds)

    def update(self) -> None:
        s = self._sample()
        self.loop_lag.set(max(0.0, self._lag_max))
        self._lag_max = 0.0
        with contextlib.suppress(RuntimeError):  # no running loop (a direct call from a test)
            self.loop_tasks.set(len(asyncio.all_tasks()))
        now = time.monotonic()
        if self._last is not None and now > self._last[0]:
            self.msg_rate.set(max(0, s.messages_total - self._last[1]) / (now - self._last[0]))
        self._last = (now, s.messages_total)
        self.msg_total.set(s.messages_total)
        for endpoint, seconds in s.rest_latency.items():
            self.latency.labels(endpoint).set(seconds)
        for state in ("healthy", "degraded", "preservation"):
            self.health.labels(state).set(1 if s.rest_health == state else 0)
        for status, n in s.orders_by_status.items():
            self.orders.labels(status).set(n)
        for ts in TradingState:
            self.trading.labels(ts.value).set(1 if s.trading_state is ts else 0)
        for channel, cs in s.streams.items():
            for state in ConnectionState:
                self.streams.labels(channel, state.value).set(1 if cs is state else 0)
        self.incidents.set(s.open_incidents)
        for name, pnl in s.strategy_pnl.items():
            self.pnl.labels(name).set(pnl)
        self.shadow.labels("made").set(s.shadow_predictions)
        self.shadow.labels("scored").set(s.shadow_scored)

    async def stop(self) -> None:
        for task in (self._task, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._probe = None
        if self._server is not None:
            server = self._server
            self._server = None
            await asyncio.to_thread(server.shutdown)
            server.server_close()
