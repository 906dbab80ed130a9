"""API keys of the local exchange and the REST authentication middleware.

Keys arrive as ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers or HTTP Basic auth (what
alpaca-py's data clients send with ``use_basic_auth=True``). Crypto market data (``/v1beta3/crypto/``)
may be read without keys, as on Alpaca; websockets authenticate in-band, not by headers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.exchange.errors import UNAUTHORIZED
from services.exchange.http.responses import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WEBSOCKET_PATHS = frozenset({"/v2/iex", "/v2/sip", "/v2/test", "/v1beta3/crypto/us", "/stream", "/stream/"})
KEYLESS_PREFIX = "/v1beta3/crypto/"
#: Who made the request: the key id, "ws" for websocket upgrades, or "anonymous:<peer>".
PRINCIPAL = web.RequestKey("principal", str)


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"ApiKey(key_id={self.key_id!r}, secret=***)"


class StaticKeyStore:
    """The exchange's single key pair (implements :class:`KeyStore`); constant-time comparison."""

    def __init__(self, key: ApiKey) -> None:
        self._key = key

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def check(self, key_id: str | None, secret: str | None) -> bool:
        if not key_id or not secret:
            return False
        ok_id = hmac.compare_digest(key_id.encode(), self._key.key_id.encode())
        ok_secret = hmac.compare_digest(secret.encode(), self._key.secret.encode())
        return ok_id and ok_secret


def generate_key() -> ApiKey:
    """A fresh random key pair in Alpaca's shape (PK... id, 40-char secret)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    key_id = "PK" + "".join(secrets.choice(alphabet) for _ in range(18))
    secret = "".join(secrets.choice(alphabet + "abcdefghijklmnopqrstuvwxyz") for _ in range(40))
    return ApiKey(key_id, secret)


def load_keys_file(path: Path) -> ApiKey:
    """Read ``{"key_id": ..., "secret": ...}``; ValueError with a clear message when unusable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"keys file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"keys file {path} is not readable JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise ValueError(f"keys file {path} must hold a JSON object with key_id and secret")
    key_id, secret = data.get("key_id"), data.get("secret")
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise ValueError(f"keys file {path} must hold non-empty strings key_id and secret")
    return ApiKey(key_id, secret)


def write_keys_file(path: Path, key: ApiKey) -> None:
    """Write the key pair with mode 0600 (created that way, never world-readable in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"key_id": key.key_id, "secret": key.secret}, fh)
    os.chmod(path, 0o600)


def credentials(request: web.Request) -> tuple[str | None, str | None]:
    """The (key id, secret) a request carries, from APCA headers or Basic auth."""
    key_id = request.headers.get("APCA-API-KEY-ID")
    secret = request.headers.get("APCA-API-SECRET-KEY")
    if key_id is None and secret is None:
        auth = request.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            key_id, _, secret = decoded.partition(":")
    return key_id, secret


def auth_middleware(keys: StaticKeyStore) -> Middleware:
    """401 ``{"code":40110000,...}`` unless the request carries the exchange's key pair.

    Sets ``request[PRINCIPAL]`` to the key id, or ``"anonymous:<peer>"`` for keyless crypto data.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in WEBSOCKET_PATHS:
            request[PRINCIPAL] = "ws"
            return await handler(request)
        key_id, secret = credentials(request)
        if key_id is None and secret is None and path.startswith(KEYLESS_PREFIX):
            request[PRINCIPAL] = f"anonymous:{request.remote}"
            return await handler(request)
        if not keys.check(key_id, secret):
            return json_error(401, UNAUTHORIZED, "request is not authorized")
        request[PRINCIPAL] = str(key_id)  # check() passed, so it is the key id
        return await handler(request)

    return middleware
