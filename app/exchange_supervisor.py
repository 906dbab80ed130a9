"""A local exchange that dies under a running terminal is said, restarted and reconciled against.

The launcher's watch thread reports the death the moment the process ends. Then, on the loop:

1. the log gets an ERROR naming the exit status or signal, the window a notification, and
   trading goes DISABLED at once (no order can be sent to an exchange that is not there);
2. at the same moment (on the thread that noticed the death, before the loop hears of it) the
   broker, the history client and the streams are suspended: the port is free, and whatever binds
   it would receive the keys they send with every request and auth message. They stay suspended
   until our own restarted child reports that it listens on that port. A port taken meanwhile is
   said once, naming the process that holds it, and the clients stay suspended;
3. the exchange is started again for the same data directory, on the same port with the same
   keys, so the broker, the streams and the history client reconnect to the address they know
   (their own reconnect paths, as after any network outage); a start that fails is retried with
   a growing pause, each failure said;
4. once the trading stream is live again, every open order is re-read from the exchange and the
   start-up reconciliation runs again: trading goes back to ACTIVE only when it is clean (or
   HALTED while a kill-switch HALT holds), exactly as at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING

from app import lifecycle as stages
from app.context import cancel_tasks, spawn
from app.exchange_process import ExchangeError, port_holder
from app.local_exchange import LocalExchangeLauncher
from services.domain.enums import TradingState
from services.orders.startup import refresh_open_orders, wait_market_data

if TYPE_CHECKING:
    from app.context import AppContext, Services

log = logging.getLogger("heron.exchange")

TASK = "exchange restart"
SOURCE = "exchange"
#: A restart within this many seconds of the previous one waits before trying (a crash loop).
QUICK_DEATH_S = 60.0
MAX_PAUSE_S = 30.0
#: Failed restarts retried every second before the pause grows.
QUICK_RETRIES = 20


class ExchangeSupervisor:
    """Owns the reaction to the local exchange's death. Loop thread only."""

    def __init__(self, ctx: AppContext, services: Services, launcher: LocalExchangeLauncher) -> None:
        self.ctx, self.services, self.launcher = ctx, services, launcher
        self.quick_deaths = 0
        self._last_restart: float | None = None
        self._stopped = False

    def start(self) -> None:
        self.launcher.watch(asyncio.get_running_loop(), self._on_exit, self._suspend_clients)
        self.ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "exchange watch", self.stop)

    async def stop(self) -> None:
        self._stopped = True
        await cancel_tasks(self.services, TASK)

    def _suspend_clients(self, pid: int) -> None:
        """Any thread (the watcher's, the moment the child is gone): nothing more goes to its address."""
        session = self.launcher.session
        where = session.url if session is not None else "the exchange's address"
        reason = (f"the local exchange (pid {pid}) ended; nothing is sent to {where} until the restarted "
                  "exchange listens there")  # fmt: skip
        services = self.services
        for client in (services.broker, services.history, services.streams):
            if client is not None:
                client.suspend(reason)

    def _resume_clients(self) -> None:
        services = self.services
        for client in (services.broker, services.history, services.streams):
            if client is not None:
                client.resume()

    def _on_exit(self, pid: int, how: str) -> None:
        if self._stopped or self.ctx.lifecycle.requested:
            return
        self._suspend_clients(pid)  # normally done already, on the watching thread

        services = self.services
        message = (f"the local exchange (pid {pid}) {how}; restarting it. Trading is paused until "
                   "reconciliation against the restarted exchange is clean")  # fmt: skip
        log.error("%s", message)
        self.ctx.notify("error", "exchange", message)
        services.exchange_status, services.exchange_ok = "restarting", False
        services.exchange_detail = message
        trading = services.trading
        if trading is not None:
            trading.set(TradingState.DISABLED, f"the local exchange {how}; paused until it is restarted and "
                        "reconciliation is clean", source=SOURCE)  # fmt: skip
        previous = services.tasks.get(TASK)
        if previous is not None and not previous.done():
            previous.cancel()
        spawn(services, TASK, self._recover())

    def _pause(self) -> float:
        """0 for a death long after the last restart; 1, 2, 4 … 30 s for each quick death in a row
        (a crash loop), so an exchange killed twice in a session is not made to wait for the first."""
        now = time.monotonic()
        if self._last_restart is None or now - self._last_restart >= QUICK_DEATH_S:
            self.quick_deaths = 0
            return 0.0
        self.quick_deaths += 1
        return min(MAX_PAUSE_S, 2.0 ** min(self.quick_deaths - 1, 5))

    async def _recover(self) -> None:
        ctx, services = self.ctx, self.services
        pause = self._pause()
        failures = 0
        said = ""
        old = self.launcher.session or services.exchange
        address = old.url if old is not None else None
        port = urllib.parse.urlsplit(address).port if address else None
        while True:
            if pause:
                log.warning("restarting the local exchange in %.0f s", pause)
                await asyncio.sleep(pause)
            try:
                session = await self.launcher.restart()
                break
            except ExchangeError as exc:
                failures += 1
                # a passing cause (a full disk, the port held a moment) is retried every second for a
                # while; a lasting one backs off so the log is not flooded
                slow = failures - QUICK_RETRIES + 1
                pause = 1.0 if slow <= 0 else min(MAX_PAUSE_S, 2.0**slow)
                holder = await asyncio.to_thread(port_holder, port) if port else None
                if holder is not None:
                    message = (f"the local exchange could not be restarted: its port {port} is taken by "
                               f"{holder}; nothing is sent there (not the keys) and trading stays DISABLED "
                               "until the port is free; retrying")  # fmt: skip
                else:
                    message = f"the local exchange could not be restarted: {exc}; retrying"
                services.exchange_detail = message
                if message != said:  # said once, not on every retry
                    said = message
                    log.error("%s", message)
                    ctx.notify("error", "exchange", message)
                else:
                    log.debug("%s (attempt %d)", message, failures)
        self._last_restart = time.monotonic()
        if address is not None and session.url != address:  # cannot happen: restart() keeps the port
            log.error("the local exchange came back at %s, not %s; its clients stay suspended", session.url,
                      address)  # fmt: skip
            return
        self._resume_clients()  # our own child reported that it listens there: the keys may go again
        services.exchange = session
        services.exchange_status, services.exchange_ok, services.exchange_detail = session.describe, True, ""
        log.warning("local exchange restarted: %s (pid %s)", session.url, session.pid)
        ctx.notify("warning", "exchange", f"Local exchange restarted at {session.describe}; reconciling")
        self.launcher.watch(asyncio.get_running_loop(), self._on_exit, self._suspend_clients)
        await self._resume()

    async def _resume(self) -> None:
        """Trading comes back only through a clean reconciliation against the restarted exchange."""
        ctx, services = self.ctx, self.services
        startup = services.tasks.get("startup")
        if startup is not None and not startup.done():
            await asyncio.wait({startup})  # start-up was under way: let it finish first
        trading, reconciler = services.trading, services.reconciler
        if trading is None or reconciler is None:
            return
        problem = await wait_market_data(services.streams, services.book, 20.0)
        while problem is not None:
            why = f"{problem} after the exchange restart; trading stays DISABLED until it is"
            trading.set(TradingState.DISABLED, why, source=SOURCE)
            ctx.notify("warning", "trading", f"trading DISABLED: {problem} after the exchange restart")
            problem = await wait_market_data(services.streams, services.book, 10.0)
        await refresh_open_orders(services.engine, services.orders)
        result = await reconciler.startup()
        if result.clean and trading.state is not TradingState.DISABLED:
            log.warning("trading resumed (%s): reconciliation against the restarted exchange is clean",
                        trading.state.value)  # fmt: skip
            ctx.notify("info", "trading", f"Trading {trading.state.value} again: reconciliation against the "
                       "restarted exchange is clean")  # fmt: skip
        else:
            log.error("trading stays %s after the exchange restart: %s", trading.state.value, trading.reason)
            ctx.notify("error", "trading", f"trading stays {trading.state.value} after the exchange restart: "
                       f"{trading.reason}")  # fmt: skip


def supervise(ctx: AppContext, services: Services) -> None:
    """From the composition root once the local exchange is running (a launcher exists)."""
    launcher = services.launcher
    if launcher is None or services.exchange is None:
        return
    ExchangeSupervisor(ctx, services, launcher).start()
