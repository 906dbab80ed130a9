"""``GET /_heron/identity``: the exchange proves it is the one a terminal started (see
services/exchange/identity.py for the proof)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.exchange.identity import IDENTITY_PATH, SERVICE, identity_proof, valid_challenge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def identity_middleware(secret: str, data_dir: Path) -> Middleware:
    """Answers ``GET /_heron/identity`` before authentication (it reveals nothing but the proof)."""
    resolved = data_dir.resolve()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != IDENTITY_PATH:
            return await handler(request)
        challenge = request.query.get("challenge", "")
        if request.method != "GET" or not valid_challenge(challenge):
            return web.json_response(
                {"code": 40010000, "message": "GET with challenge=32 to 128 lowercase hex digits"}, status=400
            )
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        port = int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else 0
        pid = os.getpid()
        proof = identity_proof(secret, challenge, resolved, port, pid)
        return web.json_response({"service": SERVICE, "pid": pid, "port": port, "proof": proof})

    return middleware
