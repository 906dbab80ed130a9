"""REST health: HEALTHY → DEGRADED → PRESERVATION on repeated failures, back after recovery; and
whether the broker is answering now (:class:`LinkMonitor`, kept informed by :class:`LinkProbe`).

In PRESERVATION no new orders go out (submits and replaces are refused locally) but cancels do.
Every state carries a reason a person can read. Transitions are published on the EventBus as a
:class:`RestHealthEvent` and as ``ConnectionStateEvent(channel="rest")``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from services.broker.base import BrokerRejected
from services.broker.latency import CallFailure, InFlight
from services.domain.bus import EventBus
from services.domain.enums import Channel, ConnectionState
from services.domain.events import ConnectionStateEvent, Event

log = logging.getLogger(__name__)


class RestHealth(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    PRESERVATION = "preservation"


_AS_CONNECTION = {
    RestHealth.HEALTHY: ConnectionState.LIVE,
    RestHealth.DEGRADED: ConnectionState.RECONNECTING,
    RestHealth.PRESERVATION: ConnectionState.SAFE_MODE,
}


@dataclass(frozen=True, slots=True)
class RestHealthEvent(Event):
    health: RestHealth
    reason: str


class OrdersSuspended(BrokerRejected):
    """Refused locally, never sent: the REST connection is in preservation mode."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"new orders are suspended: {reason}", status=0)


class HealthMonitor:
    """Counts consecutive failures and successes of broker calls. Loop thread only.

    ``degraded_after`` consecutive failures → DEGRADED; ``preservation_after`` → PRESERVATION;
    ``recover_after`` consecutive successes → HEALTHY. An authentication failure goes straight to
    PRESERVATION: no order can succeed with refused keys.
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        degraded_after: int = 3,
        preservation_after: int = 8,
        recover_after: int = 5,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < degraded_after <= preservation_after or recover_after <= 0:
            raise ValueError("need 0 < degraded_after <= preservation_after and recover_after > 0")
        self._bus = bus
        self.degraded_after = degraded_after
        self.preservation_after = preservation_after
        self.recover_after = recover_after
        self._now = now
        self._clock = clock
        self.state = RestHealth.HEALTHY
        self.reason = "no errors"
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.total_failures = 0
        self.last_error: str = ""

    @property
    def allows_new_orders(self) -> bool:
        return self.state is not RestHealth.PRESERVATION

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.state is not RestHealth.HEALTHY and self.consecutive_successes >= self.recover_after:
            self._move(
                RestHealth.HEALTHY,
                f"recovered after {self.consecutive_successes} successful calls "
                f"(last error: {self.last_error})",
            )

    def record_failure(self, reason: str, *, auth: bool = False) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        self.total_failures += 1
        self.last_error = reason
        n = self.consecutive_failures
        if auth:
            self._move(RestHealth.PRESERVATION, f"the broker refused our keys: {reason}")
        elif n >= self.preservation_after:
            self._move(RestHealth.PRESERVATION, f"{n} broker calls failed in a row; last: {reason}")
        elif n >= self.degraded_after and self.state is RestHealth.HEALTHY:
            self._move(RestHealth.DEGRADED, f"{n} broker calls failed in a row; last: {reason}")

    def _move(self, state: RestHealth, reason: str) -> None:
        if state is self.state:
            self.reason = reason
            return
        log.warning("broker REST health %s -> %s: %s", self.state, state, reason)
        self.state = state
        self.reason = reason
        if self._bus is not None:
            ts = self._now()
            self._bus.publish(RestHealthEvent(ts, state, reason))
            self._bus.publish(ConnectionStateEvent(ts, Channel.REST, _AS_CONNECTION[state], reason))


# -- is the broker answering now? ----------------------------------------------------------------


class LinkState(StrEnum):
    LIVE = "live"
    CONNECTING = "connecting"
    SLOW = "slow"  # a call has waited longer than ``slow_after`` for its answer
    UNRESPONSIVE = "unresponsive"  # a call waits past ``unresponsive_after``, or nothing heard lately
    FAILING = "failing"  # the newest broker call failed (refused, timed out, 5xx)
    RECONNECTING = "reconnecting"
    SAFE_MODE = "safe mode"
    FAILED = "failed"
    STOPPED = "stopped"


#: How bad each state is, for the log: a change to a worse state is a warning.
_SEVERITY: dict[LinkState, int] = {
    LinkState.LIVE: 0,
    LinkState.CONNECTING: 1,
    LinkState.SLOW: 1,
    LinkState.RECONNECTING: 2,
    LinkState.UNRESPONSIVE: 2,
    LinkState.FAILING: 2,
    LinkState.SAFE_MODE: 3,
    LinkState.FAILED: 3,
    LinkState.STOPPED: 3,
}


#: Words for the trading state when the broker connection is not live.
UNREACHABLE = frozenset(
    {
        LinkState.UNRESPONSIVE,
        LinkState.FAILING,
        LinkState.FAILED,
        LinkState.RECONNECTING,
        LinkState.CONNECTING,
        LinkState.STOPPED,
    }
)

_FROM_STREAM = {
    ConnectionState.CONNECTING: LinkState.CONNECTING,
    ConnectionState.RECONNECTING: LinkState.RECONNECTING,
    ConnectionState.SAFE_MODE: LinkState.SAFE_MODE,
    ConnectionState.FAILED: LinkState.FAILED,
    ConnectionState.STOPPED: LinkState.STOPPED,
}


@dataclass(frozen=True, slots=True)
class LinkVerdict:
    state: LinkState
    reason: str

    @property
    def live(self) -> bool:
        return self.state is LinkState.LIVE


class LatencySource(Protocol):
    def oldest_in_flight(self) -> InFlight | None: ...

    def failing(self) -> CallFailure | None: ...

    def answer_age(self) -> float | None: ...


class LinkMonitor:
    """Whether the broker is answering now, from what actually happened. Loop thread only.

    Live only when the broker answered a REST call within ``live_window`` seconds, no call has
    waited longer than ``slow_after`` (measured from its start), the newest call did not fail, the
    streams are connected, and every watched source (``heard``: e.g. the trading stream's pongs and
    trade updates) was heard within ``live_window``. ``clock`` must be the latency recorder's clock.
    """

    def __init__(
        self,
        latency: LatencySource,
        health: HealthMonitor | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        slow_after: float = 2.0,
        unresponsive_after: float = 5.0,
        live_window: float = 6.0,
    ) -> None:
        if not 0 < slow_after <= unresponsive_after or live_window <= 0:
            raise ValueError("need 0 < slow_after <= unresponsive_after and live_window > 0")
        self.latency = latency
        self.health = health
        self.clock = clock
        self.slow_after = slow_after
        self.unresponsive_after = unresponsive_after
        self.live_window = live_window
        self._heard: dict[str, float] = {}
        self._watched: set[str] = set()
        self.last_state: LinkState | None = None

    def _said(self, verdict: LinkVerdict) -> LinkVerdict:
        """Log each change of state once: a change for the worse as a warning; coming back, and
        moves between equally bad states (unresponsive, failing and reconnecting flip during one
        outage), as info."""
        before, self.last_state = self.last_state, verdict.state
        if before is not None and before is not verdict.state:
            worse = _SEVERITY[verdict.state] > _SEVERITY[before]
            level = logging.WARNING if worse else logging.INFO
            log.log(
                level, "broker connection %s -> %s: %s", before.value, verdict.state.value, verdict.reason
            )
        return verdict

    def watch(self, source: str) -> None:
        """``source`` must be heard within ``live_window`` for the link to be live."""
        self._watched.add(source)
        self._heard.setdefault(source, self.clock())  # a grace period from now, not "never heard"

    def heard(self, source: str) -> None:
        self._heard[source] = self.clock()

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._watched)

    def heard_age(self, source: str) -> float | None:
        last = self._heard.get(source)
        return None if last is None else max(0.0, self.clock() - last)

    def verdict(
        self,
        streams: Mapping[str, ConnectionState] | None = None,
        reasons: Mapping[str, str] | None = None,
    ) -> LinkVerdict:
        """``streams``: channel → state of each running stream (``reasons``: why)."""
        return self._said(self._verdict(streams or {}, reasons or {}))

    def _verdict(self, streams: Mapping[str, ConnectionState], reasons: Mapping[str, str]) -> LinkVerdict:
        streams = streams or {}
        reasons = reasons or {}
        for channel, st in sorted(streams.items()):
            if st is ConnectionState.FAILED:
                return LinkVerdict(LinkState.FAILED, f"{channel} stream: {reasons.get(channel, 'failed')}")
        if self.health is not None and not self.health.allows_new_orders:
            return LinkVerdict(LinkState.SAFE_MODE, self.health.reason)
        waiting = self.latency.oldest_in_flight()
        if waiting is not None and waiting.age >= self.unresponsive_after:
            return LinkVerdict(
                LinkState.UNRESPONSIVE,
                f"the broker has not answered {waiting.endpoint} for {waiting.age:.0f} s",
            )
        failure = self.latency.failing()
        if failure is not None:
            return LinkVerdict(LinkState.FAILING, f"{failure.endpoint} failed: {failure.reason}")
        for channel, st in sorted(streams.items()):
            if st is not ConnectionState.LIVE:
                return LinkVerdict(_FROM_STREAM[st], f"{channel} stream: {reasons.get(channel, st.value)}")
        age = self.latency.answer_age()
        if age is None:
            return LinkVerdict(LinkState.CONNECTING, "no broker call has been answered yet")
        if age > self.live_window:
            return LinkVerdict(LinkState.UNRESPONSIVE, f"no answer from the broker for {age:.0f} s")
        for source in sorted(self._watched):
            heard = self.heard_age(source)
            if heard is not None and heard > self.live_window:
                return LinkVerdict(
                    LinkState.UNRESPONSIVE, f"nothing heard on the {source} stream for {heard:.0f} s"
                )
        if waiting is not None and waiting.age >= self.slow_after:
            return LinkVerdict(
                LinkState.SLOW, f"{waiting.endpoint} has waited {waiting.age:.1f} s for its answer"
            )
        return LinkVerdict(LinkState.LIVE, f"the broker answered {age:.1f} s ago")


class LinkProbe:
    """Keeps :class:`LinkMonitor` informed when nothing else talks to the broker: a light REST call
    (``rest``, e.g. the market clock) when the broker has not answered for ``quiet_after`` seconds,
    and a ping on each stream in ``pings`` (``await ping(timeout)`` → pong received) as often.

    At most one probe per source is outstanding; a probe that hangs is itself the evidence (the
    monitor measures in-flight calls from their start). Loop thread only; ``sleep`` injectable.
    """

    def __init__(
        self,
        monitor: LinkMonitor,
        latency: LatencySource,
        rest: Callable[[], Awaitable[Any]],
        pings: Mapping[str, Callable[[float], Awaitable[bool]]] | None = None,
        *,
        quiet_after: float = 3.0,
        tick: float = 1.0,
        ping_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.monitor = monitor
        self.latency = latency
        self._rest = rest
        self._pings = dict(pings or {})
        self.quiet_after = quiet_after
        self.tick = tick
        self.ping_timeout = ping_timeout
        self._sleep = sleep
        self._probes: dict[str, asyncio.Task[None]] = {}
        self.probes_sent = 0
        for source in self._pings:
            monitor.watch(source)

    def _quiet(self, age: float | None) -> bool:
        return age is None or age >= self.quiet_after

    def step(self) -> None:
        """Start the probes that are due (no await: a hanging probe never delays the next check)."""
        if self._quiet(self.latency.answer_age()) and self.latency.oldest_in_flight() is None:
            self._start("rest", self._probe_rest())
        for source, ping in self._pings.items():
            if self._quiet(self.monitor.heard_age(source)):
                self._start(source, self._probe_ping(source, ping))

    def _start(self, source: str, coro: Coroutine[Any, Any, None]) -> None:
        running = self._probes.get(source)
        if running is not None and not running.done():
            coro.close()
            return
        self.probes_sent += 1
        self._probes[source] = asyncio.ensure_future(coro)

    async def _probe_rest(self) -> None:
        try:
            await self._rest()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded by the broker's latency/health; said once here
            log.debug("broker probe failed: %s", exc)

    async def _probe_ping(self, source: str, ping: Callable[[float], Awaitable[bool]]) -> None:
        try:
            ok = await ping(self.ping_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s ping failed: %s", source, exc)
            return
        if ok:
            self.monitor.heard(source)

    def cancel(self) -> None:
        """Cancel the probes still outstanding."""
        for task in self._probes.values():
            task.cancel()

    async def run(self) -> None:
        try:
            while True:
                self.step()
                await self._sleep(self.tick)
        finally:
            self.cancel()
