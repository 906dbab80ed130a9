"""The ``/stream`` websocket: Alpaca's trade_updates (docs/alpaca-protocol.md §5).

Served at ``/stream`` and ``/stream/`` (the legacy Python SDK dials the trailing slash and Alpaca
accepts it, alpacahq/example-scalping #13).

No greeting; the client authenticates in-band (``{"action":"authenticate","data":{...}}`` or the
data-stream style ``{"action":"auth","key":..,"secret":..}``), then listens to ``trade_updates``.
Updates go out as binary frames of JSON. Each socket has its own queue and writer task, so a slow
client never blocks matching and updates reach every client in the order they happened. Updates
sent while a client is disconnected are not replayed (like Alpaca). Admin faults apply once per
update, before fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from services.exchange.contracts import KeyStore, TradeUpdateFaults
from services.exchange.http.entities import trade_update_json
from services.exchange.orders import TradeUpdate

log = logging.getLogger(__name__)


#: The paths the trade_updates websocket answers on.
STREAM_PATHS = ("/stream", "/stream/")


class _Client:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.listening = False
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()


class TradeStreamHub:
    """Owns every /stream connection; ``publish`` is synchronous and never blocks."""

    def __init__(self, keys: KeyStore, faults: TradeUpdateFaults) -> None:
        self._keys = keys
        self.faults = faults
        self._clients: set[_Client] = set()
        self._held: list[bytes] = []
        self._closing = False
        self.sent = 0  # messages handed to sockets (after faults), counted once per update

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # ---- fan-out ------------------------------------------------------------------------------
    def publish(self, update: TradeUpdate) -> None:
        data = trade_update_json(update)
        frame = json.dumps({"stream": "trade_updates", "data": data}, separators=(",", ":")).encode()
        f = self.faults
        if f.drop_next > 0:
            f.drop_next -= 1
            return
        if f.reorder_next > 0:
            self._held.append(frame)
            if len(self._held) >= f.reorder_next:
                held, self._held = self._held, []
                f.reorder_next = 0
                for fr in reversed(held):
                    self._send(fr)
            return
        self._send(frame)
        if f.duplicate_next > 0:
            f.duplicate_next -= 1
            self._send(frame)

    def _send(self, frame: bytes) -> None:
        for c in self._clients:
            if c.listening:
                c.queue.put_nowait(frame)
        self.sent += 1
        f = self.faults
        if f.kill_after is not None:
            f.kill_after -= 1
            if f.kill_after <= 0:
                f.kill_after = None
                self._kill_all_soon()

    def _kill_all_soon(self) -> None:
        # Let the frames already queued go out first, then close: a sentinel ends each writer.
        for c in self._clients:
            c.queue.put_nowait(None)

    async def kill_all(self) -> int:
        clients = list(self._clients)
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        return len(clients)

    async def close(self) -> None:
        self._closing = True
        await self.kill_all()

    # ---- handler ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = _Client(ws)
        self._clients.add(client)
        writer = asyncio.ensure_future(self._writer(client))
        authorized = False
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    raw = msg.data if isinstance(msg.data, str) else msg.data.decode()
                    data = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    self._reply(client, "error", {"error": "invalid syntax"})
                    continue
                if not isinstance(data, dict):
                    self._reply(client, "error", {"error": "invalid syntax"})
                    continue
                action = data.get("action")
                if action in ("authenticate", "auth"):
                    key, secret = self._credentials(data)
                    authorized = self._keys.check(key, secret)
                    status = "authorized" if authorized else "unauthorized"
                    self._reply(client, "authorization", {"action": "authenticate", "status": status})
                    if not authorized:
                        break
                elif action == "listen":
                    if not authorized:
                        self._reply(client, "authorization", {"action": "listen", "status": "unauthorized"})
                        break
                    payload = data.get("data")
                    streams = payload.get("streams") if isinstance(payload, dict) else None
                    wanted = [s for s in streams if s == "trade_updates"] if isinstance(streams, list) else []
                    self._reply(client, "listening", {"streams": wanted})
                    client.listening = bool(wanted)
                else:
                    self._reply(client, "error", {"error": f"unknown action: {action!r}"})
        finally:
            self._clients.discard(client)
            client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
            if not ws.closed:
                await ws.close()
        return ws

    @staticmethod
    def _credentials(data: dict[str, Any]) -> tuple[str | None, str | None]:
        inner = data.get("data")
        if isinstance(inner, dict):
            key, secret = inner.get("key_id"), inner.get("secret_key")
        else:
            key, secret = data.get("key"), data.get("secret")
        return (key if isinstance(key, str) else None, secret if isinstance(secret, str) else None)

    @staticmethod
    def _reply(client: _Client, stream: str, data: dict[str, Any]) -> None:
        # Control replies go out as binary JSON too, like Alpaca's paper server, through the same
        # queue as updates so the client sees them in order.
        client.queue.put_nowait(json.dumps({"stream": stream, "data": data}).encode())

    async def _writer(self, client: _Client) -> None:
        try:
            while True:
                frame = await client.queue.get()
                if frame is None:
                    break
                await client.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError) as e:  # peer went away mid-send
            log.debug("trade_updates writer stopped: %s", e)
        finally:
            if not client.ws.closed:
                await client.ws.close()
