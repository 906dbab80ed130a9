"""Classify what went wrong with one SDK call: definitive answer, retryable, or unknown outcome.

``APIError.code``/``.message`` parse the body on every access and raise on non-JSON bodies (an
HTML 500 page, alpacahq/alpaca-py#166): we parse the body once, defensively, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
from alpaca.common.exceptions import APIError

from services.broker.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
)


@dataclass(frozen=True, slots=True)
class Failure:
    """``retryable``: worth another attempt. ``maybe_processed``: the broker may have acted on it."""

    error: BrokerError
    retryable: bool
    maybe_processed: bool
    retry_after: float = 0.0
    auth: bool = False


def parse_body(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(exc: APIError) -> float:
    response = exc.response
    if response is None:
        return 0.0
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def classify_api_error(exc: APIError, endpoint: str) -> Failure:
    status = exc.status_code or 0
    text = str(exc)
    data = parse_body(text)
    code = data.get("code") if isinstance(data.get("code"), int) else None
    message = str(data.get("message") or "").strip() or text.strip()[:200] or f"HTTP {status}"
    extra = {k: v for k, v in data.items() if k not in ("code", "message")}
    if status == 401 or (status == 403 and code is None and message.lower().startswith("forbidden")):
        return Failure(
            BrokerAuthError(f"the broker refused the keys ({status}: {message})"),
            retryable=False,
            maybe_processed=False,
            auth=True,
        )
    if status == 429:
        return Failure(
            BrokerUnavailable(f"{endpoint}: rate limited by the broker (429: {message})"),
            retryable=True,
            maybe_processed=False,
            retry_after=_retry_after(exc),
        )
    if status >= 500 or status == 0:
        return Failure(
            BrokerUnavailable(f"{endpoint}: broker error {status}: {message}"),
            retryable=True,
            maybe_processed=True,
            retry_after=_retry_after(exc),
        )
    if status == 404:
        return Failure(BrokerNotFound(message, status=status, code=code, extra=extra), False, False)
    return Failure(BrokerRejected(message, status=status, code=code, extra=extra), False, False)


def classify(exc: BaseException, endpoint: str) -> Failure:
    """Map any exception raised by an SDK call to a :class:`Failure`."""
    if isinstance(exc, BrokerError):
        return Failure(exc, False, False)
    if isinstance(exc, APIError):
        return classify_api_error(exc, endpoint)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        # Never connected: the request was not sent.
        return Failure(
            BrokerUnavailable(f"{endpoint}: could not connect to the broker (timeout)"), True, False
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return Failure(BrokerUnavailable(f"{endpoint}: the broker did not answer in time"), True, True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Failure(BrokerUnavailable(f"{endpoint}: connection to the broker failed: {exc}"), True, True)
    if isinstance(exc, requests.exceptions.RequestException):
        return Failure(BrokerUnavailable(f"{endpoint}: request failed: {exc}"), True, True)
    # A body we could not parse (bad JSON, a model that failed validation): the broker answered,
    # but we cannot tell what it said. Not worth repeating; for a submit, resolve by client id.
    return Failure(
        BrokerUnavailable(f"{endpoint}: unreadable answer from the broker: {type(exc).__name__}: {exc}"),
        retryable=False,
        maybe_processed=True,
    )
