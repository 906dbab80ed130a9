"""What the trader is told about connection, data and trading: one derivation for the status bar
and the state report, from what is actually happening (the broker's answers and calls in flight,
the newest message per feed, the trading state and the order gate).

"Connection: live · Data: fresh · Trading: ACTIVE" is shown only while it is true: with the broker
frozen or gone the connection is not live, the feeds show their age, and trading says that orders
would not reach the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.broker.health import UNREACHABLE, HealthMonitor, LinkMonitor, LinkProbe, LinkState, LinkVerdict
from services.broker.latency import LatencyRecorder, LatencyView
from services.domain.enums import Channel, ConnectionState, TradingState
from services.domain.feeds import FEEDS, FeedVerdict

log = logging.getLogger(__name__)


class GateLike(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class HealthStatus:
    connection: LinkVerdict
    feeds: tuple[FeedVerdict, ...]
    stale_symbols: Mapping[str, str]  # watched symbol -> why its data is stale
    watched: int
    trading_state: TradingState
    trading: str  # what is shown, e.g. "ACTIVE" or "ACTIVE (broker unreachable)"
    trading_reason: str
    orders_possible: bool  # an order entered now would be sent to the broker and could reach it
    latency: LatencyView | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)  # extra report fields (rest, streams)

    @property
    def data_fresh(self) -> bool:
        return (
            bool(self.feeds or self.watched)
            and not self.stale_symbols
            and not any(f.stale for f in self.feeds)
        )

    @property
    def data(self) -> str:
        """ "fresh", the stale feeds with their age, or how many watched symbols are stale."""
        stale_feeds = [f for f in self.feeds if f.stale]
        if stale_feeds:
            return ", ".join(f.label for f in stale_feeds)
        if self.stale_symbols:
            return f"{len(self.stale_symbols)}/{self.watched} stale"
        if not self.feeds and not self.watched:
            return "—"
        return "fresh"

    @property
    def data_reason(self) -> str:
        lines = [f.reason for f in self.feeds]
        lines += [f"{sym}: {why}" for sym, why in sorted(self.stale_symbols.items())]
        return "\n".join(lines) or "no feed running and no symbol watched"

    def report(self) -> dict[str, Any]:
        """The state report's ``connection``, ``data`` and ``trading`` sections."""
        connection: dict[str, Any] = {
            "state": self.connection.state.value,
            "live": self.connection.live,
            "reason": self.connection.reason,
            **self.detail,
        }
        if self.latency is not None:
            connection["latency"] = {
                "state": self.latency.state.value,
                "shown": self.latency.text,
                "detail": self.latency.detail,
            }
        return {
            "connection": connection,
            "data": {
                "fresh": self.data_fresh,
                "shown": self.data,
                "feeds": {
                    f.feed: {
                        "stale": f.stale,
                        "age_s": None if f.age_seconds is None else round(f.age_seconds, 1),
                        "reason": f.reason,
                    }
                    for f in self.feeds
                },
                "stale_symbols": dict(sorted(self.stale_symbols.items())),
            },
            "trading": {
                "state": self.trading_state.value,
                "shown": self.trading,
                "reason": self.trading_reason,
                "orders_possible": self.orders_possible,
            },
        }


def _trading(
    state: TradingState, reason: str, link: LinkVerdict, gate: GateLike | None
) -> tuple[str, str, bool]:
    """(shown, reason, orders_possible). A state other than ACTIVE is shown as it is; ACTIVE is
    qualified when orders would be held back or could not reach the broker."""
    if state is not TradingState.ACTIVE:
        return state.value, reason, False
    if link.state is LinkState.SAFE_MODE:
        return "ACTIVE (new orders suspended)", f"orders are refused locally: {link.reason}", False
    if link.state in UNREACHABLE:
        return (
            "ACTIVE (broker unreachable)",
            f"orders would not reach the broker: connection {link.state.value}: {link.reason}",
            False,
        )
    if gate is not None and not gate.allowed:
        return "ACTIVE (orders paused)", f"orders are held: {gate.reason}", False
    if link.state is LinkState.SLOW:
        return "ACTIVE (broker slow)", f"orders may be delayed: {link.reason}", True
    return state.value, reason, True


def derive_status(
    *,
    connection: LinkVerdict,
    feeds: Iterable[FeedVerdict] = (),
    stale_symbols: Mapping[str, str] | None = None,
    watched: int = 0,
    trading_state: TradingState = TradingState.DISABLED,
    trading_reason: str = "",
    gate: GateLike | None = None,
    latency: LatencyView | None = None,
    detail: Mapping[str, Any] | None = None,
) -> HealthStatus:
    """The one derivation of what the status bar and the state report say."""
    shown, why, possible = _trading(trading_state, trading_reason, connection, gate)
    return HealthStatus(
        connection=connection,
        feeds=tuple(feeds),
        stale_symbols=dict(stale_symbols or {}),
        watched=watched,
        trading_state=trading_state,
        trading=shown,
        trading_reason=why,
        orders_possible=possible,
        latency=latency,
        detail=dict(detail or {}),
    )


# -- reading the running services ------------------------------------------------------------------


class BookLike(Protocol):
    @property
    def guard(self) -> Any: ...  # a StalenessGuard: ``feeds`` (FeedFreshness)

    def staleness(self, symbol: str) -> Any: ...  # a StalenessVerdict


class StreamsLike(Protocol):
    @property
    def states(self) -> Mapping[str, ConnectionState]: ...

    @property
    def reasons(self) -> Mapping[str, str]: ...

    @property
    def gate(self) -> GateLike: ...

    @property
    def book(self) -> BookLike: ...


class TradingLike(Protocol):
    @property
    def state(self) -> TradingState: ...

    @property
    def reason(self) -> str: ...


class HealthWatch:
    """Owns the :class:`LinkMonitor` and its :class:`LinkProbe` for one broker connection, and
    assesses the running services with :func:`derive_status`. Loop thread only.

    ``rest_probe``: a light broker call (the market clock). ``streams``: the running
    :class:`~services.marketdata.streams.StreamManager`, or None; its trading stream is pinged and
    its trade updates count as messages of the ``trading`` feed (call :meth:`trade_update`).
    """

    def __init__(
        self,
        latency: LatencyRecorder,
        health: HealthMonitor | None,
        rest_probe: Callable[[], Awaitable[Any]],
        streams: StreamsLike | None = None,
        ping: Callable[[float], Awaitable[bool]] | None = None,
        *,
        quiet_after: float = 3.0,
        tick: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.latency = latency
        self.streams = streams
        self.tick = tick
        self._sleep = sleep
        #: What :meth:`assess` derives for: the watched symbols and the trading state machine
        #: (set by the composition root once they exist).
        self.watched: Callable[[], Iterable[str]] = tuple
        self.trading: Callable[[], TradingLike | None] = lambda: None
        #: The newest derivation of the running loop (the status bar and the state report read it).
        self.latest: HealthStatus | None = None
        self.monitor = LinkMonitor(latency, health, clock=latency.clock)
        pings: dict[str, Callable[[float], Awaitable[bool]]] = {}
        if ping is not None:

            async def ping_trading(timeout: float) -> bool:
                ok = await ping(timeout)
                if ok:
                    self._feeds_heard(Channel.TRADING)
                return ok

            pings[Channel.TRADING] = ping_trading
        self.probe = LinkProbe(
            self.monitor, latency, rest_probe, pings, quiet_after=quiet_after, tick=tick, sleep=sleep
        )

    def _feeds_heard(self, feed: str) -> None:
        if self.streams is not None:
            self.streams.book.guard.feeds.heard(feed)

    def trade_update(self) -> None:
        """A trade update arrived: the trading stream is alive and its feed fresh."""
        self.monitor.heard(Channel.TRADING)
        self._feeds_heard(Channel.TRADING)

    def assess(self) -> HealthStatus:
        """Derive the status now (a change of the connection is logged once) and keep it as
        :attr:`latest`."""
        self.latest = self.status(self.watched(), self.trading())
        return self.latest

    async def run(self) -> None:
        """The service-side loop, with or without a window: each tick start the probes that are
        due and derive the status, so a frozen broker is noticed and said in the log even when
        nothing asks."""
        try:
            while True:
                self.probe.step()
                try:
                    self.assess()
                except Exception:  # a derivation bug must not end the probes
                    log.exception("deriving the connection status failed")
                await self._sleep(self.tick)
        finally:
            self.probe.cancel()

    def _stream_states(
        self, states: Mapping[str, ConnectionState]
    ) -> tuple[dict[str, str], dict[str, float]]:
        """What each stream is, for the report: a stream whose socket is open but that has been
        silent past its window is "unresponsive" (the trading stream, pinged) or "silent" (a
        market-data feed), with its age; the rest as the connection says."""
        shown: dict[str, str] = {}
        silent_for: dict[str, float] = {}
        for channel, st in sorted(states.items()):
            shown[channel] = st.value
            if st is not ConnectionState.LIVE:
                continue
            if channel in self.monitor.watched:
                age = self.monitor.heard_age(channel)
                if age is not None and age > self.monitor.live_window:
                    shown[channel], silent_for[channel] = LinkState.UNRESPONSIVE.value, round(age, 1)
                    continue
            if self.streams is not None and channel in FEEDS:
                feed = self.streams.book.guard.feeds.verdict(channel)
                if feed.stale and feed.age_seconds is not None:
                    shown[channel], silent_for[channel] = "silent", round(feed.age_seconds, 1)
        return shown, silent_for

    def status(self, watched: Iterable[str] = (), trading: TradingLike | None = None) -> HealthStatus:
        streams = self.streams
        states: Mapping[str, ConnectionState] = dict(streams.states) if streams is not None else {}
        reasons: Mapping[str, str] = dict(streams.reasons) if streams is not None else {}
        link = self.monitor.verdict(states, reasons)
        feeds: list[FeedVerdict] = []
        stale: dict[str, str] = {}
        symbols = list(watched)
        if streams is not None:
            freshness = streams.book.guard.feeds
            feeds = [freshness.verdict(feed) for feed in FEEDS if feed in states]
            for sym in symbols:
                v = streams.book.staleness(sym)
                if v.stale:
                    stale[sym] = v.reason
        health = self.monitor.health
        shown, silent_for = self._stream_states(states)
        detail: dict[str, Any] = {
            "rest": health.state.value if health is not None else None,
            "streams": shown,
            "streams_silent_s": silent_for,
        }
        return derive_status(
            connection=link,
            feeds=feeds,
            stale_symbols=stale,
            watched=len(symbols) if streams is not None else 0,
            trading_state=trading.state if trading is not None else TradingState.DISABLED,
            trading_reason=trading.reason if trading is not None else "trading is not running",
            gate=streams.gate if streams is not None else None,
            latency=self.latency.view(),
            detail=detail,
        )
