"""Query strings and JSON bodies of the REST routes: parsed defensively (alpaca-py sends booleans as
``True``, numbers as floats, lists comma-joined), every bad input an :class:`ApiError`; and JSON
answers, compact as Alpaca's."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from services.exchange.errors import bad_request, unprocessable


def bool_param(q: Any, key: str, default: bool = False) -> bool:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise unprocessable(f"invalid {key}: {raw!r} (expected true or false)")


def int_param(q: Any, key: str, default: int, *, lo: int = 1, hi: int | None = None) -> int:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r}") from None
    if value < lo:
        raise unprocessable(f"{key} must be >= {lo}")
    return min(value, hi) if hi is not None else value


def time_param(q: Any, key: str) -> datetime | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    text = raw.strip().replace(" ", "+")  # an unencoded '+' in a query string arrives as a space
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r} (expected RFC3339 or YYYY-MM-DD)") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def date_param(q: Any, key: str) -> date | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise unprocessable(f"invalid {key}: {raw!r} (expected YYYY-MM-DD)") from None


def direction_param(q: Any) -> str:
    d = (q.get("direction") or "desc").lower()
    if d not in ("asc", "desc"):
        raise unprocessable(f"invalid direction: {d!r}")
    return d


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body is empty")
    try:
        return json.loads(raw, parse_float=str, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"malformed JSON body: {e}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def json_answer(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )
