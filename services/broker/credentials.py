"""Check API keys with one GET /v2/account before any stream starts.

alpaca-py's streams retry refused keys forever; this check turns bad keys into one clear error.
Paper keys against the live URL (or the reverse) get 401/403 ``forbidden.`` from Alpaca; where it
can be told (key prefix, or the same keys accepted by the other environment) the message says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from alpaca.trading.client import TradingClient

from services.broker.base import AccountIdentity, BrokerAuthError, BrokerUnavailable
from services.broker.convert import raw
from services.broker.errors import classify

log = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"


class CredentialsError(BrokerAuthError):
    """The keys were refused; ``message`` says by whom and, when known, why."""


def _key_environment(key_id: str) -> str | None:
    """Alpaca's key ids start with PK (paper) or AK (live); anything else: unknown."""
    prefix = key_id[:2].upper()
    return {"PK": "paper", "AK": "live"}.get(prefix)


def _get_account(key_id: str, secret: str, url: str, timeout: tuple[float, float]) -> Any:
    client = TradingClient(key_id, secret, url_override=url)
    client._retry = 0
    inner = client._session.request

    def request(method: str, u: str, **kw: Any) -> Any:
        kw.setdefault("timeout", timeout)
        return inner(method, u, **kw)

    client._session.request = request  # type: ignore[method-assign,assignment]
    try:
        return client.get_account()
    finally:
        client._session.close()


async def _probe(key_id: str, secret: str, url: str, timeout: tuple[float, float]) -> Any:
    try:
        return await asyncio.to_thread(_get_account, key_id, secret, url, timeout)
    except Exception as exc:
        raise classify(exc, f"GET {url}/v2/account").error from None


async def validate_credentials(
    key_id: str,
    secret: str,
    *,
    environment: str,
    base_url: str | None = None,
    paper_url: str = PAPER_URL,
    live_url: str = LIVE_URL,
    probe_other: bool = True,
    timeout: tuple[float, float] = (3.0, 10.0),
) -> AccountIdentity:
    """Return who the keys belong to, or raise CredentialsError / BrokerUnavailable with one clear message.

    ``environment`` is ``"local"`` (``base_url`` = the exchange), ``"paper"`` or ``"live"``. With
    ``probe_other`` a refused paper/live key is tried against the other environment (one request) to
    tell the person they picked the wrong mode.
    """
    if not key_id or not secret:
        raise CredentialsError("no API key id or secret was given")
    if environment == "local":
        if not base_url:
            raise ValueError("local mode needs the exchange's base_url")
        url = base_url.rstrip("/")
    elif environment == "paper":
        url = (base_url or paper_url).rstrip("/")
    elif environment == "live":
        url = (base_url or live_url).rstrip("/")
    else:
        raise ValueError(f"unknown environment {environment!r}")
    try:
        a = await _probe(key_id, secret, url, timeout)
    except BrokerAuthError as exc:
        raise CredentialsError(
            await _explain_refusal(
                key_id, secret, environment, url, exc, paper_url, live_url, probe_other, timeout
            )
        ) from None
    except BrokerUnavailable as exc:
        raise BrokerUnavailable(f"could not check the keys: {url} did not answer ({exc.message})") from None
    status = raw(a.status) or ""
    identity = AccountIdentity(str(a.id), a.account_number, status, environment)
    log.info("keys accepted by %s (%s account %s, status %s)", url, environment, a.account_number, status)
    return identity


async def _explain_refusal(
    key_id: str,
    secret: str,
    environment: str,
    url: str,
    exc: BrokerAuthError,
    paper_url: str,
    live_url: str,
    probe_other: bool,
    timeout: tuple[float, float],
) -> str:
    if environment == "local":
        return f"the keys were refused by the local exchange at {url} ({exc.message})"
    other = "live" if environment == "paper" else "paper"
    hinted = _key_environment(key_id)
    if hinted == other:
        return f"these are {other} keys but {environment} mode was selected (refused by {url})"
    if probe_other:
        other_url = live_url if other == "live" else paper_url
        try:
            await _probe(key_id, secret, other_url.rstrip("/"), timeout)
        except Exception:
            pass
        else:
            return f"these are {other} keys but {environment} mode was selected (refused by {url})"
    return f"the keys were refused by {url} ({exc.message})"
