"""``StreamManager``: the market-data and trading streams of one connection, and the order gate.

Threads and loops:
- Market data (stock and crypto) runs on a dedicated thread with its own asyncio loop
  (:class:`MarketDataThread`): decode, QuoteBook, candles and coalescing happen there, and the
  loop thread receives ONE batch per frame via ``call_soon_threadsafe`` (qasync pays about 3x per
  callback; never one per tick). While the loop thread has not consumed a batch, no new one is
  sent: the coalescer keeps conflating, so the backlog cannot grow.
- The trading stream is alpaca-py's ``TradingStream``, awaited as ``_run_forever()`` inside the
  running loop (WORKAROUND(alpacahq/alpaca-py#618): ``run()`` calls ``asyncio.run``). Its handler
  is registered before start (no busy-wait); it is stopped with ``await stop_ws(); await close()``
  (never ``stop()`` on the loop thread, which hangs forever).
- After every (re)connect of the trading stream the :class:`OrderGate` stays closed while the
  resync hooks run (Alpaca does not replay missed trade updates), then opens.
- Trade updates become :class:`TradeUpdateEvent` and are published on the bus as they arrive, on
  the loop thread, so they always precede market data delivered in a later frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import websockets
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.stream import TradingStream

from services.broker import convert
from services.broker.base import Broker, OrderQuery
from services.broker.gate import OrderGate
from services.domain.bus import EventBus
from services.domain.enums import ConnectionState
from services.domain.events import (
    BarEvent,
    ConnectionStateEvent,
    NotificationEvent,
    OrderChangedEvent,
    PositionsEvent,
    TradeUpdateEvent,
)
from services.domain.money import optional_decimal
from services.domain.symbols import is_crypto
from services.marketdata.book import QuoteBook
from services.marketdata.datastream import DataConnection
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, MarketDataPipeline
from services.marketdata.suspension import StreamSuspension

log = logging.getLogger(__name__)

ResyncHook = Callable[[datetime | None], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def stream_urls(environment: str, base_url: str | None, feed: str = "iex") -> dict[str, str]:
    """Websocket URLs per channel: the local exchange serves all on its one port."""
    if environment == "local":
        if not base_url:
            raise ValueError("local mode needs the exchange's base_url")
        ws = base_url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
        return {"stock": f"{ws}/v2/{feed}", "crypto": f"{ws}/v1beta3/crypto/us", "trading": f"{ws}/stream"}
    data = "wss://stream.data.alpaca.markets"
    trading = "wss://api.alpaca.markets/stream" if environment == "live" else "wss://paper-api.alpaca.markets/stream"
    return {"stock": f"{data}/v2/{feed}", "crypto": f"{data}/v1beta3/crypto/us", "trading": trading}


def trade_update_event(data: dict[str, Any], observed: datetime) -> TradeUpdateEvent:
    """The ``data`` of one ``trade_updates`` message → TradeUpdateEvent (exact decimals from the wire)."""
    order = convert.order(AlpacaOrder(**data["order"]))
    exec_id = data.get("execution_id")
    return TradeUpdateEvent(
        ts=observed,
        event=str(data.get("event", "")),
        order=order,
        execution_id=str(exec_id) if exec_id else None,
        price=optional_decimal(data.get("price"), field="price"),
        qty=optional_decimal(data.get("qty"), field="qty"),
        position_qty=optional_decimal(data.get("position_qty"), field="position_qty"),
    )


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
        self.connections: dict[str, DataConnection] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._in_flight = False
        self._next_frame = 0.0
        self.batches = 0
        self.skipped_frames = 0

    def add(self, conn: DataConnection) -> None:
        self.connections[conn.channel] = conn
        conn.after_frame = self._maybe_frame

    def _maybe_frame(self) -> None:
        """Called after every received frame: under a flood the timer task may run late."""
        now = time.monotonic()
        if now >= self._next_frame:
            self._next_frame = now + self.frame_interval
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
        self._ready.set()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.frame_interval)
                self._maybe_frame()
        finally:
            for c in self.connections.values():
                await c.stop()
            await asyncio.gather(*tasks, return_exceptions=True)

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
# trading stream


class _HookedTradingStream(TradingStream):
    """alpaca-py 0.44's TradingStream with connect/disconnect hooks (pinned private API)."""

    def __init__(self, runner: TradingStreamRunner, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runner = runner

    async def _start_ws(self) -> None:
        await self._runner._wait_resumed()
        if self._runner._stopping:  # stopped while suspended: end the SDK's loop without connecting
            raise asyncio.CancelledError
        self._runner._on_connecting()
        try:
            await super()._start_ws()
        except ValueError as exc:
            if "authenticate" in str(exc):
                self._runner._on_auth_failed()
            else:
                self._runner._on_connect_failed(exc)
            raise
        except Exception as exc:
            self._runner._on_connect_failed(exc)
            raise
        self._runner._on_connected()

    async def _auth(self) -> None:
        reason = self._runner.suspended
        if reason is not None:  # suspended while connecting: the keys are not sent
            raise _NotAuthenticating(f"not authenticating: {reason}")
        await super()._auth()

    async def _wait_before_reconnect(self, retries: int) -> None:
        if self._runner.suspended is None:  # suspended: _start_ws waits for resume() instead
            await super()._wait_before_reconnect(retries)

    async def _consume(self) -> None:
        try:
            await super()._consume()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._runner._on_disconnected(exc)
            raise


class _NotAuthenticating(websockets.WebSocketException):
    """The trading stream was suspended between its connect and its auth message."""


_SDK_STREAM_LOG = logging.getLogger("alpaca.trading.stream")


class _DeliberateCloseFilter(logging.Filter):
    """Drops alpaca-py's reconnect warning for a normal close (code 1000) that Heron asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("restarting" in message and "1000 (OK)" in message)


class TradingStreamRunner(StreamSuspension):
    """Owns the trading stream task, the order gate and the resync after every (re)connect."""

    def __init__(
        self,
        key_id: str,
        secret: str,
        url: str,
        bus: EventBus,
        gate: OrderGate,
        on_state: Callable[[str, ConnectionState, str], None],
        *,
        safe_mode_after: int = 6,
        resync_retry: float = 2.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus = bus
        self.gate = gate
        self._on_state = on_state
        self.safe_mode_after = safe_mode_after
        self.resync_retry = resync_retry
        self._now = now
        self.stream = _HookedTradingStream(
            self, key_id, secret, raw_data=True, url_override=url,
            websocket_params={"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024},
        )
        self.stream.subscribe_trade_updates(self._on_message)  # before start: no busy-wait
        self.hooks: list[ResyncHook] = []
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Future[None] | None = None
        self.connects = 0
        self.resyncs = 0
        self.failures = 0
        self.updates = 0
        self.bad_updates = 0
        self.disconnected_at: datetime | None = None
        self.state = ConnectionState.STOPPED
        self._stopping = False
        self._init_suspension()

    def _set(self, state: ConnectionState, reason: str) -> None:
        self.state = state
        self._on_state("trading", state, reason)

    def start(self) -> None:
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self.stream._run_forever())

    def _open_socket(self) -> Any:
        return self.stream._ws

    async def _wait_resumed(self) -> None:
        """Inside the SDK's reconnect loop, before each connect: while suspended, wait for resume."""
        told = False
        while self._suspended is not None and not self._stopping:
            self._resumed.clear()
            reason = self._suspended
            if reason is None:
                break
            if not told:
                told = True
                self.gate.close(f"trading stream paused: {reason}")
                self._set(ConnectionState.RECONNECTING, f"paused: {reason}")
            await self._resumed.wait()

    async def stop(self) -> None:
        self._stopping = True
        self.gate.close("trading stream stopped")
        if self._resync_task is not None:
            self._resync_task.cancel()
        self._resumed.set()  # a stream waiting for resume() goes on to see the stop
        # Our own close makes alpaca-py log "websocket error, restarting connection: sent 1000 (OK)"
        # at WARNING (alpaca-protocol.md §6, gotcha 4): true of a dropped socket, not of a quit.
        quiet = _DeliberateCloseFilter()
        _SDK_STREAM_LOG.addFilter(quiet)
        try:
            await self.stream.stop_ws()
            await self.stream.close()
            if self._task is not None:
                try:
                    await asyncio.wait_for(self._task, 10)
                except (TimeoutError, asyncio.CancelledError):
                    self._task.cancel()
        finally:
            _SDK_STREAM_LOG.removeFilter(quiet)
        self._set(ConnectionState.STOPPED, "stopped")

    async def kill_socket(self) -> None:
        """Drop the socket as if the network failed (tests and chaos tools)."""
        ws = self.stream._ws
        if ws is not None:
            ws.transport.abort()

    async def ping(self, timeout: float) -> bool:
        """A websocket ping on the trading stream: True when its pong came back within ``timeout``
        seconds (the stream is silent between trade updates; the pong proves it is alive)."""
        ws = self.stream._ws
        if ws is None or self.state is not ConnectionState.LIVE:
            return False
        try:
            pong = await ws.ping()
            await asyncio.wait_for(pong, timeout)
        except (TimeoutError, ConnectionError, OSError, RuntimeError, websockets.WebSocketException):
            return False
        return True

    # hooks from _HookedTradingStream (loop thread)

    def _on_connecting(self) -> None:
        first = self.connects == 0 and self.failures == 0
        self.gate.close("trading stream connecting" if first else "trading stream reconnecting")
        if not first and self.state is not ConnectionState.SAFE_MODE:
            self._set(ConnectionState.RECONNECTING, "reconnecting to the trading stream")
        elif first:
            self._set(ConnectionState.CONNECTING, "connecting to the trading stream")

    def _on_auth_failed(self) -> None:
        self.gate.close("the trading stream refused the keys")
        self._set(ConnectionState.FAILED, "the trading stream refused the keys; check them and reconnect")
        # Never an endless reconnect loop on bad keys.
        self._stop_task = asyncio.ensure_future(self.stream.stop_ws())

    def _on_connect_failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures >= self.safe_mode_after:
            self._set(ConnectionState.SAFE_MODE, f"{self.failures} trading-stream connection attempts failed "
                                                 f"in a row ({type(exc).__name__}: {exc}); still retrying")

    def _on_connected(self) -> None:
        self.connects += 1
        self.failures = 0
        since = self.disconnected_at
        self.gate.close("resynchronising orders and positions after connecting")
        self._set(ConnectionState.RECONNECTING if self.connects > 1 else ConnectionState.CONNECTING,
                  "connected; resynchronising orders and positions")
        if self._resync_task is not None:
            self._resync_task.cancel()
        self._resync_task = asyncio.ensure_future(self._resync(since))

    def _on_disconnected(self, exc: Exception) -> None:
        if self._stopping:
            return
        self.disconnected_at = self.disconnected_at or self._now()
        self.gate.close(f"trading stream disconnected ({type(exc).__name__}); orders held until resync")
        self._set(ConnectionState.RECONNECTING, f"trading stream lost: {exc}")

    async def _resync(self, since: datetime | None) -> None:
        attempt = 0
        while True:
            try:
                for hook in list(self.hooks):
                    await hook(since)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                reason = f"resync after connect failed ({type(exc).__name__}: {exc}); retrying"
                log.warning(reason)
                self.gate.close(reason)
                await asyncio.sleep(min(30.0, self.resync_retry * attempt))
                continue
            break
        self.resyncs += 1
        self.disconnected_at = None
        self.gate.open()
        self._set(ConnectionState.LIVE, "trading stream live; orders and positions resynchronised")

    async def _on_message(self, msg: Any) -> None:
        """Loop thread, inside alpaca-py's receive loop: convert and publish at once."""
        try:
            event = trade_update_event(msg["data"], self._now())
        except Exception as exc:
            self.bad_updates += 1
            log.exception("unreadable trade update; resynchronising")
            self.bus.publish(NotificationEvent(self._now(), "error", "trading stream",
                                               f"an unreadable trade update was received ({exc}); "
                                               "orders are being re-read from the broker"))
            if self._resync_task is None or self._resync_task.done():
                self.gate.close("resynchronising after an unreadable trade update")
                self._resync_task = asyncio.ensure_future(self._resync(self._now() - timedelta(minutes=5)))
            return
        self.updates += 1
        self.bus.publish(event)


def default_resync_hook(broker: Broker, bus: EventBus, now: Callable[[], datetime] = utcnow) -> ResyncHook:
    """Re-read open and recently changed orders and all positions; publish what was found."""

    async def resync(since: datetime | None) -> None:
        orders = {o.id: o for o in await broker.list_orders(OrderQuery(status="open", nested=True))}
        if since is not None:
            recent = await broker.list_orders(
                OrderQuery(status="all", after=since - timedelta(minutes=1), nested=True, direction="asc")
            )
            orders.update({o.id: o for o in recent})
        positions = await broker.get_positions()
        ts = now()
        for o in orders.values():
            bus.publish(OrderChangedEvent(ts, o, source="resync"))
        bus.publish(PositionsEvent(ts, tuple(positions)))

    return resync


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
        self.data = MarketDataThread(self.pipeline, self._deliver, self._state, frame_interval=1 / frame_rate,
                                     on_notice=self._notice)
        for channel in ("stock", "crypto"):
            self.data.add(DataConnection(channel, self.urls[channel], key_id, secret, self.pipeline,
                                         self.data._state_to_main, data_timeout=data_timeout,
                                         safe_mode_after=safe_mode_after,
                                         on_notice=self.data._notice_to_main))
        self.trading: TradingStreamRunner | None = None
        if trading:
            self.trading = TradingStreamRunner(
                key_id, secret, self.urls["trading"], bus, self.gate, self._state,
                safe_mode_after=safe_mode_after, now=now,
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

    async def subscribe(self, symbols: Iterable[str], *, trades: bool = True, quotes: bool = True,
                        bars: bool = False) -> None:
        await self._change(symbols, trades, quotes, bars, add=True)

    async def unsubscribe(self, symbols: Iterable[str], *, trades: bool = True, quotes: bool = True,
                          bars: bool = True) -> None:
        await self._change(symbols, trades, quotes, bars, add=False)

    async def _change(
        self, symbols: Iterable[str], trades: bool, quotes: bool, bars: bool, *, add: bool
    ) -> None:
        by_channel: dict[str, list[str]] = {"stock": [], "crypto": []}
        for s in symbols:
            by_channel["crypto" if is_crypto(s) else "stock"].append(s)
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
        if channel == "trading":
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
