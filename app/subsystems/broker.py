"""The broker: the keys (keyring, never mixed between paper and live; live needs the typed
confirmation), the account check before anything connects, then the REST client and history."""

from __future__ import annotations

import asyncio
import logging

from app import lifecycle as stages
from app.cli import LIVE_CONFIRMATION
from app.context import AppContext, Services, fail, startup_failed
from app.keys_needed import KeysNeeded
from app.secrets import KeyringUnavailableError, SecretStore, SecretStoreError
from services.broker.alpaca import AlpacaBroker
from services.broker.base import BrokerAuthError, BrokerUnavailable
from services.broker.budget import RequestBudget
from services.broker.credentials import validate_credentials
from services.broker.health import HealthMonitor
from services.broker.latency import LatencyRecorder
from services.domain.enums import Mode
from services.marketdata.history import HistoryService

log = logging.getLogger("heron.app")

#: key id, secret, environment ("paper", "live" or "local"), base URL (None: Alpaca's own).
Credentials = tuple[str, str, str, str | None]


def _key_environment(key_id: str) -> str | None:
    """Alpaca key ids start with PK (paper) or AK (live)."""
    return {"PK": "paper", "AK": "live"}.get(key_id[:2].upper())


async def alpaca_credentials(ctx: AppContext, services: Services) -> Credentials | None:
    store = SecretStore(on_secret=ctx.redactor.register)
    services.secret_store = store
    environment = "live" if ctx.mode is Mode.LIVE else "paper"
    try:
        keys = await asyncio.to_thread(store.load, ctx.paths.profile, ctx.mode)
    except SecretStoreError as exc:
        usable = not isinstance(exc, KeyringUnavailableError)
        _keys_needed(ctx, services, str(exc).rstrip("."), keyring_usable=usable)
        return None
    if keys is None:
        why = f"no API keys are stored for profile {ctx.paths.profile!r} in {ctx.mode.value} mode"
        _keys_needed(ctx, services, why, keyring_usable=True)
        return None
    log.info("API keys for %s found in the keyring (%s)", ctx.mode.value, store.describe())
    hinted = _key_environment(keys.key_id)
    if hinted is not None and hinted != environment:
        why = (
            f"the keys stored for {ctx.mode.value} are {hinted} keys, and paper and live keys are never mixed"
        )
        _keys_needed(ctx, services, why, keyring_usable=True)
        return None
    if ctx.mode is Mode.LIVE:
        confirm = ctx.confirm_live
        ok = await confirm() if confirm is not None else ctx.args.confirm_live == LIVE_CONFIRMATION
        if not ok:
            fail(ctx, services, "broker", "live trading was not confirmed (type LIVE); not connected")
            return None
        log.warning("LIVE trading confirmed by the user")
    return keys.key_id, keys.secret, environment, None


def _keys_needed(ctx: AppContext, services: Services, reason: str, *, keyring_usable: bool) -> None:
    """No usable keys: nothing connects. The window explains what to do instead of its panels
    (``services.keys_needed``); a headless run ends at once, non-zero, with one line."""
    needed = KeysNeeded(ctx.mode, ctx.paths.profile, reason, keyring_usable)
    services.keys_needed = needed
    if getattr(ctx.args, "headless", False):
        startup_failed(ctx, services, needed.line())
    else:
        fail(ctx, services, "keyring", needed.line())


async def connect_broker(
    ctx: AppContext, services: Services, key_id: str, secret: str, environment: str, base_url: str | None
) -> bool:
    try:
        services.identity = await validate_credentials(
            key_id, secret, environment=environment, base_url=base_url
        )
    except (BrokerAuthError, BrokerUnavailable) as exc:
        fail(ctx, services, "broker", f"the account check failed: {exc.message}; nothing was connected")
        return False
    services.health = HealthMonitor(ctx.bus)
    services.latency = LatencyRecorder()
    services.budget = RequestBudget()
    broker = AlpacaBroker(
        key_id,
        secret,
        environment=environment,
        base_url=base_url,
        budget=services.budget,
        health=services.health,
        latency=services.latency,
    )
    services.broker = broker
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "broker", broker.close)
    ctx.notify(
        "info",
        "broker",
        f"{ctx.mode.badge}: account {services.identity.account_number} ({services.identity.status})",
    )
    feeds = ctx.settings.market_data
    services.history = HistoryService(
        key_id,
        secret,
        base_url=base_url,
        store=services.candles,
        feed=feeds.live_feed,
        history_feed=feeds.history_feed,
    )
    history = services.history
    ctx.lifecycle.add_step(stages.CLOSE_BROKER, "history", history.close)
    return True
