"""A market-data websocket client speaking Alpaca's data-stream protocol, for the hot path.

It speaks exactly what alpaca-py's ``DataStream`` speaks (``Content-Type: application/msgpack``,
``connected`` → ``auth`` → ``authenticated`` → full ``subscribe`` set, binary msgpack frames) but
hands whole frames to the :class:`MarketDataPipeline` instead of building one pydantic model and
awaiting one handler per message (alpaca-py tops out near 200k msgs/s that way and busy-waits
before its first subscription, alpacahq/alpaca-py#762). It runs on the market-data thread's loop.

Reconnects use jittered exponential backoff (2 s → 30 s, x1.5); a circuit breaker reports
``safe_mode`` after repeated failures; a data timeout catches sockets that stay open but go silent;
refused keys end the connection with one ``failed`` state instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection, connect

from services.domain.enums import ConnectionState
from services.marketdata.pipeline import MarketDataPipeline

log = logging.getLogger(__name__)

CHANNELS = ("trades", "quotes", "bars")
StateCallback = Callable[[str, ConnectionState, str], None]


class _AuthFailed(Exception):
    pass


class _Silent(Exception):
    pass


class DataConnection:
    """One websocket (stock or crypto). All methods run on the market-data thread's loop."""

    def __init__(
        self,
        channel: str,
        url: str,
        key_id: str,
        secret: str,
        pipeline: MarketDataPipeline,
        on_state: StateCallback,
        *,
        data_timeout: float | None = 30.0,
        backoff_min: float = 2.0,
        backoff_max: float = 30.0,
        backoff_factor: float = 1.5,
        safe_mode_after: int = 6,
        rng: random.Random | None = None,
    ) -> None:
        self.channel = channel
        self.url = url
        self._key = key_id
        self._secret = secret
        self.pipeline = pipeline
        self._on_state = on_state
        self.data_timeout = data_timeout
        self.backoff_min, self.backoff_max, self.backoff_factor = backoff_min, backoff_max, backoff_factor
        self.safe_mode_after = safe_mode_after
        self._rng = rng or random.Random()
        self.subs: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self._has_subs = asyncio.Event()
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.state = ConnectionState.STOPPED
        self.after_frame: Callable[[], None] | None = None  # the thread's "is a frame due?" check
        self.connects = 0
        self.disconnects = 0
        self.silent_timeouts = 0
        self.last_error = ""

    def _set(self, state: ConnectionState, reason: str) -> None:
        self.state = state
        self._on_state(self.channel, state, reason)

    # -- subscriptions -------------------------------------------------------------------------------

    async def update(self, add: dict[str, Iterable[str]], remove: dict[str, Iterable[str]]) -> None:
        """Change the subscription set; sent at once when connected, and in full on every reconnect."""
        added: dict[str, list[str]] = {}
        removed: dict[str, list[str]] = {}
        for ch, syms in add.items():
            new = sorted(set(syms) - self.subs[ch])
            self.subs[ch].update(new)
            if new:
                added[ch] = new
        for ch, syms in remove.items():
            gone = sorted(set(syms) & self.subs[ch])
            self.subs[ch].difference_update(gone)
            if gone:
                removed[ch] = gone
        if any(self.subs.values()):
            self._has_subs.set()
        ws = self._ws
        if ws is None:
            return
        try:
            if added:
                await ws.send(msgpack.packb({"action": "subscribe", **added}))
            for ch, syms in removed.items():  # alpaca-py sends one channel per unsubscribe
                await ws.send(msgpack.packb({"action": "unsubscribe", ch: syms}))
        except websockets.WebSocketException as exc:
            log.info("%s: subscription change will go out on reconnect (%s)", self.channel, exc)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def stop(self) -> None:
        self._stop.set()
        self._has_subs.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def kill_socket(self) -> None:
        """Drop the socket as if the network failed (tests and chaos tools)."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    def _delay(self, failures: int) -> float:
        nominal = min(self.backoff_max, self.backoff_min * self.backoff_factor ** max(0, failures - 1))
        return nominal / 2 + self._rng.uniform(0, nominal / 2)

    async def run(self) -> None:
        """Connect when there is something to subscribe to; keep the connection alive until stop()."""
        await self._has_subs.wait()
        failures = 0
        first = True
        while not self._stop.is_set():
            if first:
                self._set(ConnectionState.CONNECTING, f"connecting to {self.url}")
            got_data = False
            try:
                got_data = await self._session()
            except _AuthFailed as exc:
                self.last_error = str(exc)
                self._set(ConnectionState.FAILED, f"{self.url} refused the keys: {exc}")
                return
            except asyncio.CancelledError:
                raise
            except _Silent as exc:
                self.silent_timeouts += 1
                self.last_error = str(exc)
                got_data = True  # it worked until it went quiet; back off from the start
            except (OSError, TimeoutError, websockets.WebSocketException, ValueError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            if self._stop.is_set():
                break
            self.disconnects += 1
            first = False
            failures = 1 if got_data else failures + 1
            delay = self._delay(failures)
            if failures >= self.safe_mode_after:
                self._set(ConnectionState.SAFE_MODE,
                          f"{failures} connection attempts failed in a row ({self.last_error}); "
                          f"retrying every {delay:.0f} s")
            else:
                log.warning("%s stream lost (%s); reconnecting in %.1f s",
                            self.channel, self.last_error, delay)
                self._set(ConnectionState.RECONNECTING,
                          f"connection lost ({self.last_error}); reconnecting in {delay:.1f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self._set(ConnectionState.STOPPED, "stopped")

    async def _session(self) -> bool:
        """One connection from handshake to loss; returns whether market data arrived."""
        async with connect(
            self.url,
            additional_headers={"Content-Type": "application/msgpack"},
            user_agent_header="Heron",
            compression=None,
            max_size=None,
            max_queue=4096,
            ping_interval=10,
            ping_timeout=20,
            open_timeout=10,
            proxy=None,
        ) as ws:
            first = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 10))
            if not (first and first[0].get("T") == "success" and first[0].get("msg") == "connected"):
                raise ValueError(f"unexpected greeting {first!r}")
            await ws.send(msgpack.packb({"action": "auth", "key": self._key, "secret": self._secret}))
            reply = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 10))
            r0 = reply[0] if reply else {}
            if r0.get("T") == "error":
                raise _AuthFailed(f"{r0.get('msg')} ({r0.get('code')})")
            if r0.get("T") != "success" or r0.get("msg") != "authenticated":
                raise ValueError(f"unexpected auth reply {reply!r}")
            msg: dict[str, Any] = {"action": "subscribe"}
            msg.update({ch: sorted(s) for ch, s in self.subs.items() if s})
            self._ws = ws
            await ws.send(msgpack.packb(msg))
            self.connects += 1
            self._set(ConnectionState.LIVE, f"connected to {self.url}")
            return await self._consume(ws)

    async def _consume(self, ws: ClientConnection) -> bool:
        pipeline = self.pipeline
        got = False
        frames = 0
        timeout = self.data_timeout
        last = time.monotonic()
        while not self._stop.is_set():
            wait = None if timeout is None else max(0.0, timeout - (time.monotonic() - last))
            try:
                frame = await asyncio.wait_for(ws.recv(), wait)
            except TimeoutError:
                raise _Silent(f"no market data for {timeout:.0f} s on an open socket") from None
            if isinstance(frame, str):
                frame = frame.encode()
            if pipeline.process_frame(frame):
                got = True
                last = time.monotonic()
            if self.after_frame is not None:
                self.after_frame()
            frames += 1
            if frames & 15 == 0:
                # recv() returns without suspending while frames are queued: yield now and then so
                # the frame timer (and stop requests) on this loop still run under a flood.
                await asyncio.sleep(0)
        return got
