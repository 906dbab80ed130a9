"""A market-data websocket client speaking Alpaca's data-stream protocol, for the hot path.

It speaks exactly what alpaca-py's ``DataStream`` speaks (``Content-Type: application/msgpack``,
``connected`` → ``auth`` → ``authenticated`` → full ``subscribe`` set, binary msgpack frames) but
hands whole frames to the :class:`MarketDataPipeline` instead of building one pydantic model and
awaiting one handler per message (alpaca-py tops out near 200k msgs/s that way and busy-waits
before its first subscription, alpacahq/alpaca-py#762). It runs on the market-data thread's loop.

Reconnects use jittered exponential backoff (2 s → 30 s, x1.5); a circuit breaker reports
``safe_mode`` after repeated failures; a data timeout catches sockets that stay open but go silent.

Alpaca's error messages (``{"T":"error","code":N,"msg":...}``, the table in Alpaca's market-data
stream docs) are told apart: refused keys (402), a feed the plan does not include (409) and data v2
not enabled (408) end the connection with one ``failed`` state; ``406 connection limit exceeded``
means another connection already uses these keys and is retried with backoff, said in those
words; ``405 symbol limit exceeded`` refuses one subscribe request whole, so its symbols are named
as left without data and kept out of later requests. Anything else that goes wrong (a greeting or
reply that is not what the protocol says, an undecodable frame) is logged and retried: the
connection never ends without a state and a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgpack
import websockets
from websockets.asyncio.client import connect

from services.broker.suspension import StreamSuspension
from services.domain.enums import ConnectionState, NotificationLevel
from services.marketdata.pipeline import MarketDataPipeline

log = logging.getLogger(__name__)

CHANNELS = ("trades", "quotes", "bars")
StateCallback = Callable[[str, ConnectionState, str], None]
NoticeCallback = Callable[[str, str, str], None]  # (channel, level, message)

#: Codes that retrying cannot fix (Alpaca market-data stream docs, "Errors").
FATAL_CODES = frozenset({402, 408, 409})
CONNECTION_LIMIT = 406
SYMBOL_LIMIT = 405


def describe_error(code: Any, msg: Any) -> str:
    """An Alpaca data-stream error in words a trader can act on, with Alpaca's own code and text."""
    alpaca = f"Alpaca: {code} {msg}"
    if code == CONNECTION_LIMIT:
        return f"another connection uses these keys ({alpaca}); close the other app or session"
    if code == 402:
        return f"the keys were refused ({alpaca})"
    if code == 409:
        return (
            f"this feed is not in the account's market-data plan ({alpaca}); choose another feed in settings"
        )
    if code == 408:
        return f"market data v2 is not enabled for this account ({alpaca})"
    if code == SYMBOL_LIMIT:
        return f"the plan's symbol limit is reached ({alpaca})"
    if code == 407:
        return f"Heron read market data too slowly for the server ({alpaca})"
    if code == 404:
        return f"the server timed out the login ({alpaca})"
    return f"the server reported an error ({alpaca})"


class StreamError(Exception):
    """An ``error`` message from the server; ``fatal`` when retrying cannot help."""

    def __init__(self, code: Any, msg: Any) -> None:
        self.code = code
        self.alpaca_msg = msg
        self.words = describe_error(code, msg)
        self.fatal = code in FATAL_CODES
        super().__init__(self.words)


class ProtocolError(ValueError):
    """A frame that is not what Alpaca's data-stream protocol says comes next."""


class _Silent(Exception):
    pass


def _decode_control(frame: Any, what: str) -> dict[str, Any]:
    """The first message of a handshake frame; raises StreamError / ProtocolError."""
    if not isinstance(frame, bytes):
        raise ProtocolError(
            f"unexpected {what}: a {type(frame).__name__} frame {frame!r:.200} instead of msgpack"
        )
    try:
        msgs = msgpack.unpackb(frame)
    except Exception as exc:
        raise ProtocolError(f"undecodable {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(msgs, list) or not msgs or not isinstance(msgs[0], dict):
        raise ProtocolError(f"unexpected {what} {msgs!r:.200}")
    first: dict[str, Any] = msgs[0]
    if first.get("T") == "error":
        raise StreamError(first.get("code"), first.get("msg"))
    return first


class DataConnection(StreamSuspension):
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
        on_notice: NoticeCallback | None = None,
        connector: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
        pause: Callable[[float], Awaitable[None]] | None = None,
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
        self._ws: Any = None  # a websockets ClientConnection while connected
        self.state = ConnectionState.STOPPED
        self.after_frame: Callable[[], None] | None = None  # the thread's "is a frame due?" check
        self.connects = 0
        self.disconnects = 0
        self.silent_timeouts = 0
        self.last_error = ""
        self._session_error = ""  # an error message the server sent before closing the session
        self._told = ""  # the last server error shown to the person, until a connection succeeds
        self._on_notice = on_notice
        self._connector = connector or self._connect
        self._pause = pause or self._wait_for_stop
        # Subscription requests sent and not yet answered, oldest first; None for an unsubscribe.
        # Alpaca answers each with the full set, or refuses a subscribe whole with 405.
        self._sent: deque[dict[str, list[str]] | None] = deque()
        self.refused: dict[str, set[str]] = {c: set() for c in CHANNELS}  # left without data (405)
        self.acknowledged: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self._init_suspension()

    def _set(self, state: ConnectionState, reason: str) -> None:
        self.state = state
        self._on_state(self.channel, state, reason)

    def _notice(self, level: NotificationLevel, message: str) -> None:
        if self._on_notice is not None:
            self._on_notice(self.channel, level, message)

    @property
    def without_data(self) -> set[str]:
        """Symbols the server refused (symbol limit): no live data arrives for them."""
        return set().union(*self.refused.values())

    # -- subscriptions -------------------------------------------------------------------------------

    async def update(self, add: dict[str, Iterable[str]], remove: dict[str, Iterable[str]]) -> None:
        """Change the subscription set; sent at once when connected, and in full on every reconnect."""
        added: dict[str, list[str]] = {}
        removed: dict[str, list[str]] = {}
        for ch, syms in add.items():
            new = sorted(set(syms) - self.subs[ch])
            self.subs[ch].update(new)
            self.refused[ch].difference_update(new)  # asked again: try again
            if new:
                added[ch] = new
        for ch, syms in remove.items():
            self.refused[ch].difference_update(syms)
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
                self._sent.append(added)
                await ws.send(msgpack.packb({"action": "subscribe", **added}))
            for ch, syms in removed.items():  # alpaca-py sends one channel per unsubscribe
                self._sent.append(None)
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

    def _open_socket(self) -> Any:
        return self._ws

    async def _wait_resumed(self) -> None:
        """While suspended: say so and wait for :meth:`resume` (or stop)."""
        told = False
        while self._suspended is not None and not self._stop.is_set():
            self._resumed.clear()
            reason = self._suspended
            if reason is None:
                break
            if not told:
                told = True
                log.warning("%s market data paused: %s", self.channel, reason)
                self._set(ConnectionState.RECONNECTING, f"paused: {reason}")
            stop = asyncio.ensure_future(self._stop.wait())
            resumed = asyncio.ensure_future(self._resumed.wait())
            try:
                await asyncio.wait({stop, resumed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                resumed.cancel()

    def _delay(self, failures: int) -> float:
        nominal = min(self.backoff_max, self.backoff_min * self.backoff_factor ** max(0, failures - 1))
        return nominal / 2 + self._rng.uniform(0, nominal / 2)

    async def _wait_for_stop(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def run(self) -> None:
        """Connect when there is something to subscribe to; keep the connection alive until stop()."""
        self._loop = asyncio.get_running_loop()
        await self._has_subs.wait()
        failures = 0
        first = True
        while not self._stop.is_set():
            if self._suspended is not None:
                await self._wait_resumed()
                if self._stop.is_set():
                    break
                failures = 0
                self._set(ConnectionState.RECONNECTING, f"connecting to {self.url}")
            if first:
                self._set(ConnectionState.CONNECTING, f"connecting to {self.url}")
            got_data = False
            try:
                got_data = await self._session()
            except asyncio.CancelledError:
                raise
            except StreamError as exc:
                self.last_error = exc.words
                if exc.fatal:
                    log.error("%s market data: %s; not retrying", self.channel, exc.words)
                    self._notice(NotificationLevel.ERROR, f"{self.channel} market data stopped: {exc.words}")
                    self._set(ConnectionState.FAILED, f"{self.url}: {exc.words}")
                    return
                if exc.words != self._told:  # once per streak, not on every retry
                    self._told = exc.words
                    said = f"{self.channel} market data: {exc.words}; retrying"
                    self._notice(NotificationLevel.WARNING, said)
            except _Silent as exc:
                self.silent_timeouts += 1
                self.last_error = str(exc)
                got_data = True  # it worked until it went quiet; back off from the start
            except (OSError, TimeoutError, websockets.WebSocketException, ValueError) as exc:
                self.last_error = self._session_error or f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never a silently dead task: say it and retry
                log.exception("%s market data: unexpected failure", self.channel)
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                self._session_error = ""
            if self._stop.is_set():
                break
            self.disconnects += 1
            if self._suspended is not None:
                continue  # lost while suspended: waits for resume() at the top, no backoff
            first = False
            failures = 1 if got_data else failures + 1
            delay = self._delay(failures)
            log.warning("%s stream lost (%s); reconnecting in %.1f s", self.channel, self.last_error, delay)
            if failures >= self.safe_mode_after:
                self._set(
                    ConnectionState.SAFE_MODE,
                    f"{failures} connection attempts failed in a row ({self.last_error}); "
                    f"retrying every {delay:.0f} s",
                )
            else:
                self._set(
                    ConnectionState.RECONNECTING,
                    f"connection lost ({self.last_error}); reconnecting in {delay:.1f} s",
                )
            await self._pause(delay)
        self._set(ConnectionState.STOPPED, "stopped")

    def _connect(self) -> AbstractAsyncContextManager[Any]:
        return connect(
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
        )

    async def _session(self) -> bool:
        """One connection from handshake to loss; returns whether market data arrived."""
        async with self._connector() as ws:
            # Alpaca: [{"T":"success","msg":"connected"}], then auth → [{"T":"success","msg":"authenticated"}]
            # (market-data stream docs); a second connection's 406 or a 402 can come instead.
            first = _decode_control(await asyncio.wait_for(ws.recv(), 10), "greeting")
            if first.get("T") != "success" or first.get("msg") != "connected":
                raise ProtocolError(f"unexpected greeting {first!r:.200}")
            if self._suspended is not None:  # suspended while connecting: the keys are not sent
                raise ConnectionAbortedError(f"not authenticating: {self._suspended}")
            await ws.send(msgpack.packb({"action": "auth", "key": self._key, "secret": self._secret}))
            r0 = _decode_control(await asyncio.wait_for(ws.recv(), 10), "auth reply")
            if r0.get("T") != "success" or r0.get("msg") != "authenticated":
                raise ProtocolError(f"unexpected auth reply {r0!r:.200}")
            msg: dict[str, Any] = {"action": "subscribe"}
            wanted = {ch: sorted(s) for ch, s in self.subs.items() if s}
            msg.update(wanted)
            self._sent.clear()
            self.acknowledged = {c: set() for c in CHANNELS}
            self._ws = ws
            if wanted:
                self._sent.append(wanted)
                await ws.send(msgpack.packb(msg))
            self.connects += 1
            self._told = ""
            self._set(ConnectionState.LIVE, self._live_reason())
            return await self._consume(ws)

    def _live_reason(self) -> str:
        missing = self.without_data
        if not missing:
            return f"connected to {self.url}"
        return (
            f"connected to {self.url}; no data for {', '.join(sorted(missing))} "
            "(the plan's symbol limit is reached)"
        )

    def _on_control(self, m: Any) -> None:
        """A control message inside the session (subscription answer, error)."""
        if not isinstance(m, dict):
            return
        kind = m.get("T")
        if kind == "subscription":
            if self._sent:
                self._sent.popleft()
            self.acknowledged = {c: set(m.get(c) or ()) for c in CHANNELS}
            return
        if kind != "error":
            return
        code = m.get("code")
        words = describe_error(code, m.get("msg"))
        if code == SYMBOL_LIMIT:
            self._symbol_limit(words)
            return
        self._session_error = words
        log.warning("%s market data: %s", self.channel, words)
        if words != self._told:
            self._told = words
            level = NotificationLevel.ERROR if code in FATAL_CODES else NotificationLevel.WARNING
            self._notice(level, f"{self.channel} market data: {words}")

    def _symbol_limit(self, words: str) -> None:
        # 405 refuses the whole request; subscriptions stay what they were before it (Alpaca docs).
        request = self._sent.popleft() if self._sent else None
        if request is None:
            request = {c: sorted(self.subs[c] - self.acknowledged[c]) for c in CHANNELS}
        left: set[str] = set()
        for ch, syms in request.items():
            gone = set(syms) & self.subs[ch]
            self.subs[ch].difference_update(gone)  # a reconnect must not resend a request refused whole
            self.refused[ch].update(gone)
            left.update(gone)
        names = ", ".join(sorted(self.without_data)) or "the requested symbols"
        text = (
            f"{self.channel} market data: no live data for {names}: {words}; "
            "remove symbols or use a plan with a higher limit"
        )
        log.warning(text)
        self._notice(NotificationLevel.WARNING, text)
        if left and self.state is ConnectionState.LIVE:
            self._set(ConnectionState.LIVE, self._live_reason())

    async def _consume(self, ws: Any) -> bool:
        pipeline = self.pipeline
        feeds = pipeline.book.guard.feeds
        got = False
        frames = 0
        timeout = self.data_timeout
        last = time.monotonic()
        while not self._stop.is_set():
            wait = None if timeout is None else max(0.0, timeout - (time.monotonic() - last))
            try:
                # a timeout scope, not wait_for: wait_for wraps every recv() in a task of its own
                async with asyncio.timeout(wait):
                    frame = await ws.recv()
            except TimeoutError:
                raise _Silent(f"no market data for {timeout:.0f} s on an open socket") from None
            if isinstance(frame, str):
                frame = frame.encode()
            if pipeline.process_frame(frame, control=self._on_control):
                got = True
                last = time.monotonic()
                feeds.heard(self.channel)  # the status bar's per-feed freshness
            if self.after_frame is not None:
                self.after_frame()
            frames += 1
            if frames & 15 == 0:
                # recv() returns without suspending while frames are queued: yield now and then so
                # the frame timer (and stop requests) on this loop still run under a flood.
                await asyncio.sleep(0)
        return got
