"""``--headless``: plain asyncio, no Qt import at all; the exit code says whether the run did what it
was for (trading enabled, the report written, a clean shutdown)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.context import AppContext, Services
from app.lifecycle import ShutdownReport
from app.runtime import GC_FALLBACK_S, attach_loop, finish, settle_gc
from services.domain.enums import TradingState
from services.domain.events import TradingStateEvent

log = logging.getLogger("heron.app")

#: Starts the services on the running loop (the composition root's); returns the build task.
StartServices = Callable[[AppContext, Services], Awaitable["asyncio.Task[Services]"]]


def headless_exit_reasons(
    services: Services, build_failure: str | None, shutdown: ShutdownReport | None = None
) -> list[str]:
    """Why a headless run must exit non-zero (empty: exit 0), one line each: start-up failed,
    trading was never enabled, the state report could not be written, a shutdown step failed or
    timed out (the run did not end cleanly: e.g. orders not cancelled or the broker not answering)."""
    reasons: list[str] = []
    if services.fatal is not None:
        reasons.append(f"start-up failed: {services.fatal}")
    elif build_failure is not None:
        reasons.append(f"start-up failed: {' '.join(build_failure.split())}")
    else:
        trading = services.trading
        if trading is not None and trading.state is TradingState.ACTIVE:
            services.trading_was_active = True
        if not services.trading_was_active:
            if trading is not None:
                why = f"trading stayed {trading.state.value}: {trading.reason}"
            else:
                why = "; ".join(f"{part}: {msg}" for part, msg in services.failures.items()) or (
                    "the trading services never started"
                )
            reasons.append(f"trading was never enabled ({why})")
    if services.report_error is not None:
        reasons.append(services.report_error)
    if shutdown is not None and not shutdown.ok:
        failed = "; ".join(f"{s.stage}/{s.name}: {s.error}" for s in shutdown.steps if not s.ok)
        reasons.append(f"shutdown finished with errors ({failed})")
    return reasons


def run_headless(ctx: AppContext, start_services: StartServices) -> int:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        attach_loop(ctx, loop)
        services = Services(mode=ctx.mode)

        def on_trading(event: TradingStateEvent) -> None:
            if event.state is TradingState.ACTIVE:
                services.trading_was_active = True

        ctx.bus.subscribe(TradingStateEvent, on_trading)
        task = await start_services(ctx, services)
        task.add_done_callback(lambda _: settle_gc())
        loop.call_later(GC_FALLBACK_S, settle_gc)
        if ctx.args.quit_after is not None:
            loop.call_later(ctx.args.quit_after, ctx.lifecycle.request_shutdown, "--quit-after")
        log.info("running headless in %s mode", ctx.mode.value)
        await ctx.lifecycle.wait_requested()
        build_failure, shutdown = await finish(ctx, task)
        reasons = headless_exit_reasons(services, build_failure, shutdown)
        for reason in reasons:
            if services.fatal is None and reason != services.report_error:  # those are said already
                log.error("headless run failed: %s", reason)
        return 1 if reasons else 0

    return asyncio.run(main())
