"""Paper keys can never be used as live keys or the reverse.

Two layers: the keyring holds one entry per (profile, mode), and the account check before any stream
refuses keys the other environment issued, saying so. The "paper" and "live" Alpaca servers are tiny
aiohttp stand-ins on 127.0.0.1 answering like Alpaca does to keys it did not issue (401 / 403
``{"message": "forbidden."}``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from app.secrets import SERVICE_NAME, ApiKeys, SecretStore, SecretStoreError, username_for
from services.broker.credentials import CredentialsError, validate_credentials
from services.domain.enums import Mode
from tests.security.support import FAKE_LIVE, FAKE_PAPER, MemoryKeyring

# Keys whose id says nothing about where they come from (no PK/AK prefix).
PLAIN_PAPER = ApiKeys("XXPLAINPAPER00000001", "plain-paper-secret-000000000000000000000")
PLAIN_LIVE = ApiKeys("XXPLAINLIVE000000001", "plain-live-secret-0000000000000000000000")

ACCOUNT = {
    "id": "c8f1f4a6-0000-4000-8000-000000000001", "account_number": "PA0000000001", "status": "ACTIVE",
    "crypto_status": "ACTIVE", "currency": "USD", "buying_power": "200000", "regt_buying_power": "200000",
    "daytrading_buying_power": "0", "non_marginable_buying_power": "100000", "cash": "100000",
    "accrued_fees": "0", "portfolio_value": "100000", "pattern_day_trader": False, "trading_blocked": False,
    "transfers_blocked": False, "account_blocked": False, "created_at": "2024-01-02T15:04:05Z",
    "trade_suspended_by_user": False, "multiplier": "2", "shorting_enabled": True, "equity": "100000",
    "last_equity": "100000", "long_market_value": "0", "short_market_value": "0", "initial_margin": "0",
    "maintenance_margin": "0", "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
}  # fmt: skip


def alpaca_standin(issued: ApiKeys, refusal: int) -> web.Application:
    """GET /v2/account: the account for the keys this environment issued, Alpaca's refusal otherwise."""

    async def account(request: web.Request) -> web.Response:
        key_id = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if (key_id, secret) == (issued.key_id, issued.secret):
            return web.json_response(ACCOUNT)
        if refusal == 403:
            return web.json_response({"message": "forbidden."}, status=403)
        return web.json_response({"code": 40110000, "message": "request is not authorized"}, status=401)

    app = web.Application()
    app.router.add_get("/v2/account", account)
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def check(
    keys: ApiKeys, environment: str, paper: ApiKeys, live: ApiKeys, refusal: int = 403
) -> Awaitable[object]:
    async def go() -> object:
        async with (
            serving(alpaca_standin(paper, refusal)) as paper_url,
            serving(alpaca_standin(live, refusal)) as live_url,
        ):
            return await validate_credentials(
                keys.key_id, keys.secret, environment=environment, paper_url=paper_url, live_url=live_url,
                timeout=(2.0, 5.0),
            )  # fmt: skip

    return go()


def run(make: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(make())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- keyring


def test_keyring_entries_are_per_profile_and_mode() -> None:
    backend = MemoryKeyring()
    store = SecretStore(backend)
    store.save("X", Mode.PAPER, FAKE_PAPER)
    assert store.load("X", Mode.LIVE) is None  # paper keys are not found as live keys
    assert store.load("Y", Mode.PAPER) is None  # nor under another profile
    store.save("X", Mode.LIVE, FAKE_LIVE)
    assert store.load("X", Mode.PAPER) == FAKE_PAPER and store.load("X", Mode.LIVE) == FAKE_LIVE
    assert set(backend.entries) == {(SERVICE_NAME, "X:alpaca-paper"), (SERVICE_NAME, "X:alpaca-live")}
    assert username_for("X", Mode.PAPER) != username_for("X", Mode.LIVE)
    assert store.delete("X", Mode.PAPER) is True
    assert store.load("X", Mode.LIVE) == FAKE_LIVE  # deleting one never touches the other
    stored = json.loads(backend.entries[(SERVICE_NAME, "X:alpaca-live")])
    assert stored == {"key_id": FAKE_LIVE.key_id, "secret": FAKE_LIVE.secret}


def test_local_mode_has_no_keyring_entry() -> None:
    with pytest.raises(SecretStoreError, match="local mode"):
        SecretStore(MemoryKeyring()).save("X", Mode.LOCAL, FAKE_PAPER)


# ----------------------------------------------------------------------------- account check


def test_the_right_keys_for_each_environment_are_accepted() -> None:
    paper = run(lambda: check(PLAIN_PAPER, "paper", PLAIN_PAPER, PLAIN_LIVE))
    live = run(lambda: check(PLAIN_LIVE, "live", PLAIN_PAPER, PLAIN_LIVE))
    assert getattr(paper, "environment", None) == "paper" and getattr(live, "environment", None) == "live"


@pytest.mark.parametrize("refusal", [401, 403])
def test_paper_keys_in_live_mode_are_refused_with_the_reason(refusal: int) -> None:
    with pytest.raises(CredentialsError, match="these are paper keys but live mode was selected"):
        run(lambda: check(PLAIN_PAPER, "live", PLAIN_PAPER, PLAIN_LIVE, refusal))


@pytest.mark.parametrize("refusal", [401, 403])
def test_live_keys_in_paper_mode_are_refused_with_the_reason(refusal: int) -> None:
    with pytest.raises(CredentialsError, match="these are live keys but paper mode was selected"):
        run(lambda: check(PLAIN_LIVE, "paper", PLAIN_PAPER, PLAIN_LIVE, refusal))


def test_prefixed_keys_are_named_without_a_second_request() -> None:
    with pytest.raises(CredentialsError, match="these are paper keys but live mode was selected"):
        run(lambda: check(FAKE_PAPER, "live", FAKE_PAPER, FAKE_LIVE))
    with pytest.raises(CredentialsError, match="these are live keys but paper mode was selected"):
        run(lambda: check(FAKE_LIVE, "paper", FAKE_PAPER, FAKE_LIVE))


def test_keys_neither_environment_issued_are_refused_plainly() -> None:
    stranger = ApiKeys("XXSTRANGER0000000001", "stranger-secret-00000000000000000000000")
    with pytest.raises(
        CredentialsError, match=r"the keys were refused by http://127\.0\.0\.1:\d+ \("
    ) as info:
        run(lambda: check(stranger, "live", PLAIN_PAPER, PLAIN_LIVE))
    assert stranger.secret not in info.value.message
