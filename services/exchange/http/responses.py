"""Alpaca-shaped error answers: ``{"code": int, "message": str, ...}`` with the HTTP status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.exchange.errors import ApiError


def json_error(status: int, code: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"code": code, "message": message, **extra}, status=status)


def error_response(exc: ApiError) -> web.Response:
    """The answer to a request that raised ``exc``."""
    return json_error(exc.status, exc.code, exc.message, **exc.extra)
