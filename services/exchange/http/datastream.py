"""Market-data websockets: ``/v2/iex``, ``/v2/sip`` (stocks) and ``/v1beta3/crypto/us`` (crypto).

Protocol (docs/alpaca-protocol.md §4): the first frame is ``[{"T":"success","msg":"connected"}]``; the
client authenticates in-band within 10 s (``{"action":"auth","key","secret"}``), then subscribes;
every reply to (un)subscribe carries the full subscription set. Frames are msgpack arrays when the
client sent ``Content-Type: application/msgpack`` (``t`` as msgpack Timestamp), JSON text otherwise
(``t`` as RFC3339). One connection per key per endpoint (a second one gets 406).

Fan-out: the simulator hands each step's already encoded :class:`Batch` to
:meth:`DataStreamHub.on_batch`. Clients with the same endpoint kind, encoding and subscriptions form
one group: the group's filter is a (kind, symbol) lookup table applied to the batch's columns with
numpy, and its frames (msgpack arrays of up to ``frame_messages`` messages, like Alpaca's batches)
are cut from the encoded bytes once and shared by every client of the group; no message is decoded
or re-encoded on the way (JSON clients, which alpaca-py never is, get the frame decoded and
re-serialised). Each client has a bounded send queue drained by its own writer task: when it is full
the oldest data frame is dropped (counted), and a client that keeps falling behind gets 407 "slow
client" and is closed. Everything runs on the exchange's event-loop thread.

Flush: the simulator steps every 20 ms, but its steps are sent at most every ``flush_interval``
(50 ms): the steps in between are joined, in order, into the next frames. Alpaca sends as events
happen; this pace is the local exchange's own choice, not Alpaca's. It keeps every message at most
50 ms old when it leaves (a quote on a trader's screen well within 100 ms) and halves the frames
each client decodes, which is most of an idle terminal's market-data cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.exchange.contracts import Instrument, KeyStore
from services.exchange.market.encoding import Batch, Message
from services.exchange.market.simulator import MarketSimulator

log = logging.getLogger(__name__)

STOCK_PATHS = ("/v2/iex", "/v2/sip")
CRYPTO_PATH = "/v1beta3/crypto/us"
AUTH_TIMEOUT_S = 10.0
#: the steps of the last 50 ms go out together (see the module docstring)
FLUSH_INTERVAL_S = 0.05
MAX_SYMBOLS_PER_CHANNEL = 5_000

STOCK_CHANNELS = {
    "trades": "t",
    "quotes": "q",
    "bars": "b",
    "updatedBars": "u",
    "dailyBars": "d",
    "statuses": "s",
    "lulds": "l",
    "corrections": "c",
    "cancelErrors": "x",
}
CRYPTO_CHANNELS = {
    "trades": "t",
    "quotes": "q",
    "bars": "b",
    "updatedBars": "u",
    "dailyBars": "d",
    "orderbooks": "o",
}
# Corrections and cancel/errors follow the trades subscription, as on Alpaca.
_FOLLOW_TRADES = ("c", "x")


def _json_default(obj: object) -> str:
    if isinstance(obj, msgpack.Timestamp):
        ns = obj.to_unix_nano()
        base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{base}.{ns % 1_000_000_000:09d}Z"
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def encode(messages: list[Message], use_msgpack: bool) -> bytes | str:
    """One frame: a msgpack array (binary) or a JSON array (text)."""
    if use_msgpack:
        packed: bytes = msgpack.packb(messages)
        return packed
    return json.dumps(messages, default=_json_default, separators=(",", ":"))


def to_json_frame(frame: bytes) -> str:
    """A msgpack data frame as the JSON text frame a client without the msgpack header gets."""
    return json.dumps(msgpack.unpackb(frame), default=_json_default, separators=(",", ":"))


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    path: str
    crypto: bool
    use_msgpack: bool
    peer: str
    key_id: str | None = None
    subs: dict[str, set[str]] = field(default_factory=dict)
    queue: deque[tuple[bytes | str, bool]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    dropped_window: deque[float] = field(default_factory=deque)
    closing: bool = False
    signature: tuple[Any, ...] = ()

    def channels(self) -> dict[str, str]:
        return CRYPTO_CHANNELS if self.crypto else STOCK_CHANNELS

    def resign(self) -> None:
        self.signature = (
            self.crypto,
            self.use_msgpack,
            tuple(sorted((k, tuple(sorted(v))) for k, v in self.subs.items() if v)),
        )


class DataStreamHub:
    """The data-stream endpoints and their fan-out. See the module docstring for the protocol."""

    def __init__(
        self,
        market: MarketSimulator,
        universe: Mapping[str, Instrument],
        keys: KeyStore,
        *,
        auth_timeout: float = AUTH_TIMEOUT_S,
        queue_frames: int = 512,
        frame_messages: int = 1000,
        slow_drops: int = 2000,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.market = market
        self.universe = universe
        self.keys = keys
        self.auth_timeout = auth_timeout
        self.queue_frames = queue_frames
        self.frame_messages = frame_messages
        self.slow_drops = slow_drops  # dropped frames within 10 s that make a client "slow"
        self.flush_interval = flush_interval
        self._pending: list[Batch] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")
        self._clients: set[_Client] = set()
        self._by_key: dict[tuple[str, str], _Client] = {}
        # Which simulator symbols each endpoint kind may carry (False: stock, True: crypto).
        crypto = np.array([universe[s].is_crypto for s in market.symbols], dtype=bool)
        self._eligible = {False: ~crypto, True: crypto}
        self._filters: dict[tuple[Any, ...], np.ndarray] = {}
        self._kill_after: int | None = None
        self._malformed = 0
        self.stats: dict[str, int] = {
            "connections": 0,
            "authenticated": 0,
            "frames": 0,
            "messages": 0,
            "dropped_frames": 0,
            "slow_clients": 0,
            "killed": 0,
            "malformed_sent": 0,
            "auth_failures": 0,
            "limit_rejections": 0,
        }

    # ------------------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        for path in (*STOCK_PATHS, CRYPTO_PATH):
            app.router.add_get(path, self.handle)

    def start(self) -> None:
        self.market.add_listener(self.on_batch)

    async def close(self) -> None:
        self.market.remove_listener(self.on_batch)
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        self._pending.clear()
        await self.kill_all(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def kill_all(self, *, code: int = WSCloseCode.SERVICE_RESTART, message: bytes = b"killed") -> int:
        """Close every data websocket now (admin fault or shutdown); returns how many."""
        clients = list(self._clients)
        for c in clients:
            c.closing = True
            c.wakeup.set()
        closes = (c.ws.close(code=code, message=message) for c in clients)
        await asyncio.gather(*closes, return_exceptions=True)
        self.stats["killed"] += len(clients)
        return len(clients)

    def kill_after(self, messages: int | None) -> None:
        """Close every data websocket once ``messages`` more data messages have been queued."""
        self._kill_after = messages

    def malformed_next(self, frames: int) -> None:
        """Replace the next ``frames`` data frames with garbage, truncated or wrongly typed ones."""
        self._malformed = max(0, int(frames))

    def describe(self) -> dict[str, Any]:
        return {
            **self.stats,
            "clients": len(self._clients),
            "queued_frames": sum(len(c.queue) for c in self._clients),
        }

    # ------------------------------------------------------------------------------ connection

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20, compress=False)
        await ws.prepare(request)
        client = _Client(
            ws=ws,
            path=request.path,
            crypto=request.path == CRYPTO_PATH,
            use_msgpack=request.headers.get("Content-Type", "").lower().startswith("application/msgpack"),
            peer=str(request.remote),
        )
        self.stats["connections"] += 1
        writer = asyncio.get_running_loop().create_task(self._writer(client))
        try:
            self._control(client, [{"T": "success", "msg": "connected"}])
            deadline = time.monotonic() + self.auth_timeout
            while not ws.closed and not client.closing:
                timeout = None if client.key_id else max(0.0, deadline - time.monotonic())
                try:
                    msg = await ws.receive(timeout=timeout)
                except TimeoutError:
                    self._control(client, [{"T": "error", "code": 404, "msg": "auth timeout"}])
                    await self._close_after_flush(client)
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                await self._on_message(client, msg.data)
        finally:
            client.closing = True
            self._clients.discard(client)
            if client.key_id is not None and self._by_key.get((client.key_id, client.path)) is client:
                del self._by_key[(client.key_id, client.path)]
            client.wakeup.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not ws.closed:
                await ws.close()
        return ws

    async def _close_after_flush(self, client: _Client) -> None:
        for _ in range(50):
            if not client.queue:
                break
            await asyncio.sleep(0.01)
        client.closing = True
        await client.ws.close()

    def _error(self, client: _Client, code: int, msg: str) -> None:
        self._control(client, [{"T": "error", "code": code, "msg": msg}])

    async def _on_message(self, client: _Client, data: bytes | str) -> None:
        try:
            if isinstance(data, bytes):
                try:
                    req = msgpack.unpackb(data, raw=False)
                except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
                    req = json.loads(data)
            else:
                req = json.loads(data)
        except (ValueError, UnicodeDecodeError, TypeError):
            self._error(client, 400, "invalid syntax")
            return
        if not isinstance(req, dict) or not isinstance(req.get("action"), str):
            self._error(client, 400, "invalid syntax")
            return
        action = req["action"]
        if action in ("auth", "authenticate"):
            await self._auth(client, req)
        elif action in ("subscribe", "unsubscribe"):
            if client.key_id is None:
                self._error(client, 401, "not authenticated")
                return
            self._subscribe(client, req, add=action == "subscribe")
        else:
            self._error(client, 400, "invalid syntax")

    async def _auth(self, client: _Client, req: dict[str, Any]) -> None:
        if client.key_id is not None:
            self._error(client, 403, "already authenticated")
            return
        key, secret = req.get("key"), req.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str) or not self.keys.check(key, secret):
            self.stats["auth_failures"] += 1
            self._error(client, 402, "auth failed")
            await self._close_after_flush(client)
            return
        slot = (key, client.path)
        if slot in self._by_key:
            self.stats["limit_rejections"] += 1
            self._error(client, 406, "connection limit exceeded")
            await self._close_after_flush(client)
            return
        client.key_id = key
        self._by_key[slot] = client
        self._clients.add(client)
        self.stats["authenticated"] += 1
        self._control(client, [{"T": "success", "msg": "authenticated"}])

    def _subscribe(self, client: _Client, req: dict[str, Any], *, add: bool) -> None:
        channels = client.channels()
        updates: dict[str, set[str]] = {}
        for name, letter in channels.items():
            if name not in req:
                continue
            value = req[name]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self._error(client, 400, "invalid syntax")
                return
            syms: set[str] = set()
            for raw in value:
                if raw.strip() == "*":
                    syms.add("*")
                    continue
                try:
                    syms.add(normalize_symbol(raw))
                except InvalidSymbolError:
                    self._error(client, 400, "invalid syntax")
                    return
            updates[letter] = syms
        for letter, syms in updates.items():
            cur = client.subs.setdefault(letter, set())
            if add:
                cur |= syms
            else:
                cur -= syms
            if len(cur) > MAX_SYMBOLS_PER_CHANNEL:
                cur -= syms
                self._error(client, 405, "symbol limit exceeded")
                return
        if not client.crypto:
            for letter in _FOLLOW_TRADES:
                client.subs[letter] = set(client.subs.get("t", set()))
        client.resign()
        reply: dict[str, Any] = {"T": "subscription"}
        for name, letter in channels.items():
            reply[name] = sorted(client.subs.get(letter, set()))
        self._control(client, [reply])

    # ------------------------------------------------------------------------------ sending

    def _control(self, client: _Client, payload: list[Message]) -> None:
        client.queue.append((encode(payload, client.use_msgpack), False))
        client.wakeup.set()

    async def _writer(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                await client.wakeup.wait()
                client.wakeup.clear()
                while client.queue and not ws.closed:
                    frame, _ = client.queue.popleft()
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                if client.closing and not client.queue:
                    return
        except (ConnectionError, RuntimeError):
            return

    def _enqueue(self, client: _Client, frame: bytes | str) -> None:
        q = client.queue
        if len(q) >= self.queue_frames:
            # Drop the oldest data frame (control frames are never dropped).
            for i, (_, droppable) in enumerate(q):
                if droppable:
                    del q[i]
                    break
            client.dropped += 1
            self.stats["dropped_frames"] += 1
            now = time.monotonic()
            client.dropped_window.append(now)
            while client.dropped_window and client.dropped_window[0] < now - 10:
                client.dropped_window.popleft()
            if len(client.dropped_window) >= self.slow_drops and not client.closing:
                self.stats["slow_clients"] += 1
                q.clear()
                self._error(client, 407, "slow client")
                client.closing = True
                asyncio.get_running_loop().create_task(self._close_slow(client))
                return
        q.append((frame, True))
        client.wakeup.set()

    async def _close_slow(self, client: _Client) -> None:
        await asyncio.sleep(0.05)
        await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"slow client")

    def _malformed_frame(self, frame: bytes | str, use_msgpack: bool) -> bytes | str:
        kind = self._malformed % 3
        self._malformed -= 1
        self.stats["malformed_sent"] += 1
        if kind == 0:  # garbage
            return b"\xc1\xc1\xff not a frame" if use_msgpack else "}{ not json"
        if kind == 1:  # truncated
            return frame[: max(1, len(frame) // 2)]
        wrong: Any = {"T": "t", "S": 42, "p": "NaN"}  # a dict, not an array; wrong field types
        return encode(wrong, use_msgpack)

    def _filter(self, signature: tuple[Any, ...], subs: Mapping[str, set[str]]) -> np.ndarray:
        """The (kind ASCII code, symbol index) → wanted table of one subscription set (cached)."""
        table = self._filters.get(signature)
        if table is not None:
            return table
        crypto = bool(signature[0])
        eligible = self._eligible[crypto]
        index = self.market.index
        table = np.zeros((128, len(eligible)), dtype=bool)
        for letter, syms in subs.items():
            if len(letter) != 1 or not syms:
                continue
            row = table[ord(letter)]
            if "*" in syms:
                row[:] = eligible
                continue
            for sym in syms:
                i = index.get(sym)
                if i is not None and eligible[i]:
                    row[i] = True
        if len(self._filters) >= 256:  # subscriptions churned; rebuild lazily
            self._filters.clear()
        self._filters[signature] = table
        return table

    def on_batch(self, batch: Batch) -> None:
        """Take one simulator step (called on the loop thread by the simulator): sent with the steps
        before it at the next flush, at most ``flush_interval`` after the previous one."""
        if not self._clients or not len(batch):
            return
        if self.flush_interval <= 0:
            self._fan_out(batch)
            return
        self._pending.append(batch)
        if self._flush_at is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_flush + self.flush_interval - loop.time())
            self._flush_at = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        self._last_flush = asyncio.get_running_loop().time()
        pending, self._pending = self._pending, []
        if self._clients:
            self._fan_out(Batch.concat(pending))

    def _fan_out(self, batch: Batch) -> None:
        """Send one batch to the clients, each group's frames cut once from the encoded bytes."""
        if not len(batch):
            return
        groups: dict[tuple[Any, ...], list[_Client]] = {}
        for c in self._clients:
            if not c.closing and c.signature and c.signature[2]:
                groups.setdefault(c.signature, []).append(c)
        total = 0
        for sig, clients in groups.items():
            wanted = self._filter(sig, clients[0].subs)[batch.kinds, batch.syms]
            if not wanted.any():
                continue
            for packed, count in batch.frames(wanted, self.frame_messages):
                frame: bytes | str = packed if sig[1] else to_json_frame(packed)
                if self._malformed > 0:
                    frame = self._malformed_frame(frame, sig[1])
                for c in clients:
                    self._enqueue(c, frame)
                self.stats["frames"] += len(clients)
                self.stats["messages"] += count * len(clients)
                total += count * len(clients)
        if self._kill_after is not None and total:
            self._kill_after -= total
            if self._kill_after <= 0:
                self._kill_after = None
                asyncio.get_running_loop().create_task(self.kill_all())
