"""Load the Alpaca fixture corpus in ``tests/fixtures/alpaca/`` (real bodies from public Alpaca sources).

Each ``<area>.json`` maps a fixture name to ``{"_source": ..., "body": ...}`` (plus ``status`` for
error and multi-status bodies). ``_source`` names where the body was published: a repository, path and
commit, a docs page, an OpenAPI spec example or an issue. Bodies are returned as fresh copies, so a
test may change one (to corrupt a number, say) without touching the others.

Market-data stream messages are stored as Alpaca documents them (JSON, ``t`` as RFC-3339 text);
:func:`msgpack_frame` packs them the way the data stream sends them to a client that asked for
``application/msgpack`` (alpaca-py's ``DataStream`` does; so does Heron's): ``t`` becomes a msgpack
timestamp extension.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgpack
import requests

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alpaca"
AREAS = (
    "account",
    "activities",
    "assets",
    "clock_calendar",
    "close_all",
    "errors",
    "marketdata_rest",
    "orders",
    "positions",
    "stream",
    "trade_updates",
)
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


@cache
def _area(area: str) -> dict[str, dict[str, Any]]:
    if area not in AREAS:
        raise KeyError(f"no fixture area {area!r}; known: {', '.join(AREAS)}")
    data = json.loads((FIXTURES / f"{area}.json").read_text(encoding="utf-8"))
    for name, entry in data.items():
        if not entry.get("_source") or "body" not in entry:
            raise ValueError(f"fixture {area}/{name} has no _source or no body")
    return data


def names(area: str) -> list[str]:
    return list(_area(area))


def body(area: str, name: str) -> Any:
    """A fresh copy of one fixture's body."""
    return copy.deepcopy(_area(area)[name]["body"])


def source(area: str, name: str) -> dict[str, Any]:
    return copy.deepcopy(_area(area)[name]["_source"])


def status(area: str, name: str, default: int = 200) -> int:
    return int(_area(area)[name].get("status", default))


def http_response(status_code: int, payload: Any) -> requests.Response:
    """A ``requests.Response`` carrying ``payload`` as JSON, as Alpaca's HTTP API would send it."""
    r = requests.Response()
    r.status_code = status_code
    r.reason = "fixture"
    r.url = "https://paper-api.alpaca.markets/fixture"
    r._content = json.dumps(payload).encode()
    r.headers["Content-Type"] = "application/json"
    return r


def response(area: str, name: str) -> requests.Response:
    return http_response(status(area, name), body(area, name))


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC-3339 timestamp, exact to the nanosecond."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC-3339 timestamp: {text!r}")
    whole, frac, zone = m.groups()
    dt = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def to_wire(message: dict[str, Any]) -> dict[str, Any]:
    """One documented stream message as the msgpack stream carries it (``t`` as a timestamp)."""
    out = dict(message)
    t = out.get("t")
    if isinstance(t, str):
        out["t"] = msgpack.Timestamp.from_unix_nano(rfc3339_ns(t))
    return out


def msgpack_frame(messages: list[dict[str, Any]]) -> bytes:
    return msgpack.packb([to_wire(m) for m in messages])


def stream_frame(name: str) -> bytes:
    """The frame of a ``stream`` fixture (a list of messages), packed as msgpack."""
    return msgpack_frame(body("stream", name))
