"""``StreamManager``: the market-data streams of one connection, beside its trading stream.

Threads and loops:
- Market data (stock and crypto) runs on a dedicated thread with its own asyncio loop
  (:class:`MarketDataThread`): decode, QuoteBook, candles and coalescing happen there, and the
  loop thread receives ONE batch per frame via ``call_soon_threadsafe`` (qasync pays about 3x per
  callback; never one per tick). While the loop thread has not consumed a batch, no new one is
  sent: the coalescer keeps conflating, so the backlog cannot grow.
- The trading stream (``trade_updates``), its order gate and the resync after every reconnect live
  in :mod:`services.broker.trade_stream`; the manager starts, suspends and stops it with the data
  connections, so one object stands for all the streams of a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from services.broker.base import Broker
from services.broker.order_gate import OrderGate
from services.broker.trade_stream import ResyncHook, TradingStreamRunner, default_resync_hook, utcnow
from services.domain.bus import EventBus
from services.domain.enums import Channel, ConnectionState
from services.domain.events import BarEvent, ConnectionStateEvent, NotificationEvent
from services.domain.symbols import is_crypto
from services.marketdata.book import QuoteBook
from services.marketdata.datastream import DataConnection
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, MarketDataPipeline

log = logging.getLogger(__name__)


def stream_urls(environment: str, base_url: str | None, feed: str = "iex") -> dict[str, str]:
    """Websocket URLs per channel: the local exchange serves all on its one port."""
    if environment == "local":
        if not base_url:
            raise ValueError("local mode needs the exchange's base_url")
        ws = base_url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
        return {
            Channel.STOCK: f"{ws}/v2/{feed}",
            Channel.CRYPTO: f"{ws}/v1beta3/crypto/us",
            Channel.TRADING: f"{ws}/stream",
        }
    data = "wss://stream.data.alpaca.markets"
    trading = (
        "wss://api.alpaca.markets/stream"
        if environment == "live"
        else "wss://paper-api.alpaca.markets/stream"
    )
    return {
        Channel.STOCK: f"{data}/v2/{feed}",
        Channel.CRYPTO: f"{data}/v1beta3/crypto/us",
        Channel.TRADING: trading,
    }


# --------------------------------------------------------------------------------------------------
# market-data thread


class MarketDataThread:
    """A thread running its own asyncio loop with the data connections and the pipeline."""

    def __init__(
        self,
        pipeline: MarketDataPipeline,
        deliver: Callable[[MarketDataBatch], None],
        on_state: Callable[[str, ConnectionState, str], None],
        *,
        frame_interval: float = 1 / 30,
        on_notice: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._deliver = deliver
        self._on_state = on_state
        self._on_notice = on_notice
        self.frame_interval = frame_interval
        self.clock: Callable[[], float] = time.monotonic  # when frames are due (tests set it)
        self.connections: dict[str, DataConnection] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._clock: asyncio.TimerHandle | None = None
        self._crash: Exception | None = None
        self._in_flight = False
        self._next_frame = 0.0
        self.batches = 0
        self.skipped_frames = 0

    def add(self, conn: DataConnection) -> None:
        self.connections[conn.channel] = conn
        conn.after_frame = self._maybe_frame

    def _maybe_frame(self) -> None:
        """Called after every received frame: under a flood the timer task may run late."""
        now = self.clock()
        if now >= self._next_frame:
            # the next frame is one interval after this one was due, not after it was sent: a frame
            # sent by a data frame just after a clock tick does not push the next tick's frame back
            due = self._next_frame + self.frame_interval
            self._next_frame = due if due > now else now + self.frame_interval
            self._frame()

    def start(self) -> None:
        """Start the thread; called on the loop thread (which will receive the batches)."""
        self._main_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="heron-marketdata", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _main(self) -> None:
        # A plain selector loop, not the policy's: under qasync the global policy makes Qt event
        # loops, and a Qt loop cannot run on a non-GUI thread ("QApplication::exec: Must be called
        # from the main thread"), which killed market data in the GUI.
        loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._run())
        except Exception:
            log.exception("market-data thread crashed")
            for ch in self.connections:
                self._state_to_main(ch, ConnectionState.FAILED, "market-data thread crashed (see log)")
        finally:
            loop.close()

    def _state_to_main(self, channel: str, state: ConnectionState, reason: str) -> None:
        main = self._main_loop
        if main is not None and not main.is_closed():
            main.call_soon_threadsafe(self._on_state, channel, state, reason)

    def _notice_to_main(self, channel: str, level: str, message: str) -> None:
        main = self._main_loop
        if self._on_notice is not None and main is not None and not main.is_closed():
            main.call_soon_threadsafe(self._on_notice, channel, level, message)

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        tasks = [asyncio.ensure_future(c.run()) for c in self.connections.values()]
        loop = asyncio.get_running_loop()
        # The frame clock is a chain of timer callbacks, not a task: waiting for the stop event with
        # a timeout made (and cancelled) a task on every frame: 0.33 % of a core against 0.16 %.
        self._clock = loop.call_later(self.frame_interval, self._clock_tick, loop)
        self._ready.set()
        try:
            await self._stop.wait()
            if self._crash is not None:
                raise self._crash  # a frame failed: the thread ends as crashed (see _main)
        finally:
            if self._clock is not None:
                self._clock.cancel()
            for c in self.connections.values():
                await c.stop()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _clock_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every ``frame_interval``: a frame when one is due (a flood may have sent it already)."""
        try:
            self._maybe_frame()
        except Exception as exc:
            self._crash = exc
            if self._stop is not None:
                self._stop.set()
            return
        self._clock = loop.call_later(self.frame_interval, self._clock_tick, loop)

    def _frame(self) -> None:
        if self._in_flight:
            self.skipped_frames += 1  # the loop thread is behind: keep conflating, send nothing
            return
        batch = self.pipeline.tick()
        if batch is None:
            return
        main = self._main_loop
        if main is None or main.is_closed():
            return
        self._in_flight = True
        self.batches += 1
        main.call_soon_threadsafe(self._hand_over, batch)

    def _hand_over(self, batch: MarketDataBatch) -> None:
        """Loop thread."""
        try:
            self._deliver(batch)
        finally:
            self._in_flight = False

    def call(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``coro`` on the market-data loop; await the result from the loop thread."""
        if self.loop is None:
            raise RuntimeError("market-data thread not started")
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return
        stop = self._stop
        if stop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(self._thread.join, 10)


# --------------------------------------------------------------------------------------------------
# the manager


class StreamManager:
    """One stock data connection, one crypto data connection and one trading stream.

    Construct on any thread; ``start``/``stop``/``subscribe`` are coroutines for the loop thread.
    ``bus`` receives ConnectionStateEvent per channel, TradeUpdateEvent, MarketDataBatchEvent (one
    per frame) and BarEvent for closed one-minute bars.
    """

    def __init__(
        self,
        *,
        key_id: str,
        secret: str,
        bus: EventBus,
        environment: str = "local",
        base_url: str | None = None,
        feed: str = "iex",
        urls: dict[str, str] | None = None,
        broker: Broker | None = None,
        pipeline: MarketDataPipeline | None = None,
        gate: OrderGate | None = None,
        data_timeout: float | None = 30.0,
        frame_rate: float = 30.0,
        safe_mode_after: int = 6,
        trading: bool = True,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.urls = urls or stream_urls(environment, base_url, feed)
        self.pipeline = pipeline or MarketDataPipeline()
        self.gate = gate or OrderGate()
        self._now = now
        self.states: dict[str, ConnectionState] = {}
        self.reasons: dict[str, str] = {}
        self.data = MarketDataThread(
            self.pipeline, self._deliver, self._state, frame_interval=1 / frame_rate, on_notice=self._notice
        )
        for channel in (Channel.STOCK, Channel.CRYPTO):
            self.data.add(
                DataConnection(
                    channel,
                    self.urls[channel],
                    key_id,
                    secret,
                    self.pipeline,
                    self.data._state_to_main,
                    data_timeout=data_timeout,
                    safe_mode_after=safe_mode_after,
                    on_notice=self.data._notice_to_main,
                )
            )
        self.trading: TradingStreamRunner | None = None
        if trading:
            self.trading = TradingStreamRunner(
                key_id,
                secret,
                self.urls[Channel.TRADING],
                bus,
                self.gate,
                self._state,
                safe_mode_after=safe_mode_after,
                now=now,
            )
            if broker is not None:
                self.trading.hooks.append(default_resync_hook(broker, bus, now))
        self.batches_delivered = 0
        self.messages_delivered = 0
        self._started = False

    @property
    def book(self) -> QuoteBook:
        return self.pipeline.book

    def add_resync_hook(self, hook: ResyncHook) -> None:
        """``await hook(disconnected_since)`` after every trading (re)connect, before the gate opens."""
        if self.trading is None:
            raise RuntimeError("this StreamManager has no trading stream")
        self.trading.hooks.append(hook)

    def _state(self, channel: str, state: ConnectionState, reason: str) -> None:
        """Loop thread."""
        if self.states.get(channel) is state and self.reasons.get(channel) == reason:
            return
        self.states[channel] = state
        self.reasons[channel] = reason
        self.bus.publish(ConnectionStateEvent(self._now(), channel, state, reason))

    def _notice(self, channel: str, level: str, message: str) -> None:
        """Loop thread: a market-data event a person should see (406, 405, a feed not in the plan)."""
        self.bus.publish(NotificationEvent(self._now(), level, f"{channel} market data", message))

    def _deliver(self, batch: MarketDataBatch) -> None:
        """Loop thread, once per frame."""
        self.batches_delivered += 1
        self.messages_delivered += batch.messages
        ts = self._now()
        self.bus.publish(MarketDataBatchEvent(ts, batch))
        for bar in batch.bars:
            self.bus.publish(BarEvent(ts, bar, "1Min", False))

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.data.start()
        if self.trading is not None:
            self.trading.start()

    async def subscribe(
        self, symbols: Iterable[str], *, trades: bool = True, quotes: bool = True, bars: bool = False
    ) -> None:
        await self._change(symbols, trades, quotes, bars, add=True)

    async def unsubscribe(
        self, symbols: Iterable[str], *, trades: bool = True, quotes: bool = True, bars: bool = True
    ) -> None:
        await self._change(symbols, trades, quotes, bars, add=False)

    async def _change(
        self, symbols: Iterable[str], trades: bool, quotes: bool, bars: bool, *, add: bool
    ) -> None:
        by_channel: dict[Channel, list[str]] = {Channel.STOCK: [], Channel.CRYPTO: []}
        for s in symbols:
            by_channel[Channel.CRYPTO if is_crypto(s) else Channel.STOCK].append(s)
        wanted = [c for c, on in (("trades", trades), ("quotes", quotes), ("bars", bars)) if on]
        for channel, syms in by_channel.items():
            if not syms:
                continue
            change: dict[str, Iterable[str]] = {c: syms for c in wanted}
            conn = self.data.connections[channel]
            if add:
                await self.data.call(conn.update(change, {}))
            else:
                await self.data.call(conn.update({}, change))

    def suspend(self, reason: str) -> None:
        """Any thread: every stream stops connecting and sends nothing to its address (not even the
        keys) until :meth:`resume`, saying ``reason`` in its state."""
        for conn in self.data.connections.values():
            conn.suspend(reason)
        if self.trading is not None:
            self.trading.suspend(reason)

    def resume(self) -> None:
        """Any thread: every stream connects again at once."""
        for conn in self.data.connections.values():
            conn.resume()
        if self.trading is not None:
            self.trading.resume()

    async def kill_socket(self, channel: str) -> None:
        """Drop one socket as if the network failed (tests, chaos)."""
        if channel == Channel.TRADING:
            if self.trading is not None:
                await self.trading.kill_socket()
            return
        conn = self.data.connections[channel]
        await self.data.call(conn.kill_socket())

    async def stop(self) -> None:
        """Close the trading stream, then the data thread (which closes its sockets)."""
        if not self._started:
            return
        self._started = False
        started = time.perf_counter()
        if self.trading is not None:
            await self.trading.stop()
        await self.data.stop()
        log.info("streams stopped in %.2f s", time.perf_counter() - started)
