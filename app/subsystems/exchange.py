"""The local exchange: adopt the child main.py started early, or start one (waiting while the disk is
full, again when it dies during its start), or connect to one given with ``--exchange-url``."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import time

from app import lifecycle as stages
from app.context import AppContext, Services
from app.exchange_process import ExchangeDiedAtStart, ExchangeError, ExchangeSession, connect_external
from app.local_exchange import LocalExchangeLauncher
from app.subsystems.broker import Credentials, connect_broker

log = logging.getLogger("heron.app")


async def _adopt_early_exchange(ctx: AppContext) -> LocalExchangeLauncher | None:
    """The exchange child main.py started before the imports, if it fits this run (same exchange
    folder and settings); the shutdown sequence then stops it like one started here."""
    early = ctx.launch.early_exchange
    if not isinstance(early, LocalExchangeLauncher) or early.process is None:
        return None
    if early.exchange_dir != ctx.paths.exchange_dir or early.settings != ctx.settings.local_exchange:
        log.warning("the early-started local exchange does not match this run's settings; restarting it")
        await early.stop()
        return None
    early.listen_for_secret(ctx.redactor.register)
    return early


async def connect_local_exchange(ctx: AppContext, services: Services) -> None:
    args = ctx.args
    try:
        if args.exchange_url is not None:
            services.exchange = await connect_external(args.exchange_url, args.exchange_keys)
            ctx.redactor.register(services.exchange.keys.secret)
        else:
            launcher = await _adopt_early_exchange(ctx)
            if launcher is None:
                launcher = LocalExchangeLauncher(
                    ctx.paths.exchange_dir, ctx.settings.local_exchange, on_secret=ctx.redactor.register
                )
            services.launcher = launcher
            ctx.lifecycle.add_step(stages.STOP_LOCAL_EXCHANGE, "local exchange", launcher.stop, timeout=15)
            services.exchange = await start_local_exchange(ctx, launcher)
    except ExchangeError as exc:
        services.exchange_status, services.exchange_ok = "unavailable", False
        services.exchange_detail = str(exc)
        log.error("local exchange: %s", exc)
        ctx.notify("error", "exchange", f"The local exchange could not start: {exc}")
        return
    services.exchange_status, services.exchange_ok = services.exchange.describe, True
    ctx.notify("info", "exchange", f"Local exchange at {services.exchange.describe}")


#: How long start-up waits for disk space to start the local exchange (its session file needs it).
EXCHANGE_DISK_WAIT_S = 120.0
#: A child that dies before it reports its address (killed, or its port lost to a race) is started
#: again this many times, after a short pause each.
EXCHANGE_START_RETRIES = 3
EXCHANGE_RETRY_PAUSE_S = 1.0


async def start_local_exchange(ctx: AppContext, launcher: LocalExchangeLauncher) -> ExchangeSession:
    """``launcher.start()``, waiting (said once, retried every second) while the disk is full: a start
    on a full disk goes on when space returns instead of staying DISABLED for the whole session. A
    child that dies during its start is started again (each time said), up to
    ``EXCHANGE_START_RETRIES`` times."""
    deadline = time.monotonic() + EXCHANGE_DISK_WAIT_S
    said = False
    deaths = 0
    while True:
        try:
            return await launcher.start()
        except ExchangeDiedAtStart as exc:
            deaths += 1
            if deaths > EXCHANGE_START_RETRIES or ctx.lifecycle.requested:
                raise
            message = (f"{exc}; starting it again in {EXCHANGE_RETRY_PAUSE_S:g} s (attempt {deaths + 1} of "
                       f"{EXCHANGE_START_RETRIES + 1})")  # fmt: skip
            log.error("%s", message)
            ctx.notify("error", "exchange", message)
            await asyncio.sleep(EXCHANGE_RETRY_PAUSE_S)
            continue
        except ExchangeError as exc:
            cause = exc.__cause__
            full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
            if not full or time.monotonic() >= deadline or ctx.lifecycle.requested:
                raise
            if not said:
                said = True
                message = f"the local exchange cannot start yet: {exc}; trying again every second"
                log.error("%s", message)
                ctx.notify("error", "exchange", message)
        await asyncio.sleep(1.0)


async def restart_dead_exchange(ctx: AppContext, services: Services, creds: Credentials) -> bool:
    """The account check failed because the local exchange died after it reported its address (its
    supervisor starts only once start-up is through): say so, start it again on the same address
    with the same keys (up to 3 times) and connect. False when it was not that or did not help."""
    launcher = services.launcher
    for attempt in range(1, EXCHANGE_START_RETRIES + 1):
        proc = launcher.process if launcher is not None else None
        code = proc.poll() if proc is not None else None
        if launcher is None or proc is None or code is None or ctx.lifecycle.requested:
            return False
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        message = (f"the local exchange (pid {proc.pid}) {how} during start-up; starting it again "
                   f"(attempt {attempt + 1} of {EXCHANGE_START_RETRIES + 1})")  # fmt: skip
        log.error("%s", message)
        ctx.notify("error", "exchange", message)
        try:
            services.exchange = await launcher.restart()
        except ExchangeError as exc:
            log.error("the local exchange could not be started again: %s", exc)
            continue
        services.failures.pop("broker", None)
        if await connect_broker(ctx, services, *creds):
            return True
    return False
