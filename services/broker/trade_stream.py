"""The trading stream (Alpaca's ``trade_updates``) and the resync that keeps the order gate honest.

- :class:`TradingStreamRunner` runs alpaca-py's ``TradingStream``, awaited as ``_run_forever()``
  inside the running loop (WORKAROUND(alpacahq/alpaca-py#618): ``run()`` calls ``asyncio.run``). Its
  handler is registered before start (no busy-wait); it is stopped with
  ``await stop_ws(); await close()`` (never ``stop()`` on the loop thread, which hangs forever).
- After every (re)connect the :class:`~services.broker.order_gate.OrderGate` stays closed while the
  resync hooks run (Alpaca does not replay missed trade updates), then opens.
- Trade updates become :class:`TradeUpdateEvent` (:func:`trade_update_event`) and are published on
  the bus as they arrive, on the loop thread, so they always precede market data delivered in a
  later frame.

The :class:`~services.marketdata.streams.StreamManager` owns one runner beside its market-data
connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import websockets
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.stream import TradingStream

from services.broker import convert
from services.broker.base import Broker, OrderQuery
from services.broker.order_gate import OrderGate
from services.broker.suspension import StreamSuspension
from services.domain.bus import EventBus
from services.domain.enums import Channel, ConnectionState, NotificationLevel
from services.domain.events import NotificationEvent, OrderChangedEvent, PositionsEvent, TradeUpdateEvent
from services.domain.money import optional_decimal

log = logging.getLogger(__name__)

ResyncHook = Callable[[datetime | None], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


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
            self,
            key_id,
            secret,
            raw_data=True,
            url_override=url,
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
        self._on_state(Channel.TRADING, state, reason)

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
        # at WARNING (docs/alpaca-protocol.md §6, gotcha 4): true of a dropped socket, not of a quit.
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
            self._set(
                ConnectionState.SAFE_MODE,
                f"{self.failures} trading-stream connection attempts failed "
                f"in a row ({type(exc).__name__}: {exc}); still retrying",
            )

    def _on_connected(self) -> None:
        self.connects += 1
        self.failures = 0
        since = self.disconnected_at
        self.gate.close("resynchronising orders and positions after connecting")
        self._set(
            ConnectionState.RECONNECTING if self.connects > 1 else ConnectionState.CONNECTING,
            "connected; resynchronising orders and positions",
        )
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
            self.bus.publish(
                NotificationEvent(
                    self._now(),
                    NotificationLevel.ERROR,
                    "trading stream",
                    f"an unreadable trade update was received ({exc}); "
                    "orders are being re-read from the broker",
                )
            )
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
