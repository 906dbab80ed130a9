"""Alpaca-shaped API errors: every failure leaves the exchange as ``{"code": int, "message": str, ...}``."""

from __future__ import annotations

from typing import Any

# Alpaca's 8-digit error codes.
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
PDT_PROTECTION = 40310100
NOT_FOUND = 40410000
UNPROCESSABLE = 42210000
BAD_REQUEST = 40010000
TOO_MANY_REQUESTS = 42910000
INTERNAL = 50010000


class ApiError(Exception):
    """Raised by the venue and the handlers; the server's error middleware answers with :meth:`body`."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def unprocessable(message: str, **extra: Any) -> ApiError:
    return ApiError(422, UNPROCESSABLE, message, **extra)


def forbidden(message: str, **extra: Any) -> ApiError:
    return ApiError(403, FORBIDDEN, message, **extra)


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError(404, NOT_FOUND, message, **extra)


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, BAD_REQUEST, message, **extra)
