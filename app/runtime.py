"""The run's frame, shared by the headless and the GUI runner: attach the loop to the plumbing, stop
everything at the end, and tune the garbage collector around start-up."""

from __future__ import annotations

import asyncio
import logging

from app.context import AppContext, Services
from app.lifecycle import ShutdownReport

log = logging.getLogger("heron.app")

#: main.py turns the cyclic garbage collector off for start-up; at the latest this long after the
#: loop starts it is back on, even if the services never finish starting.
GC_FALLBACK_S = 15.0


def attach_loop(ctx: AppContext, loop: asyncio.AbstractEventLoop) -> None:
    ctx.notifier.attach_loop(loop)
    ctx.hooks.install_loop_handler(loop)
    ctx.lifecycle.install_signal_handlers(loop)


async def finish(ctx: AppContext, task: asyncio.Task[Services]) -> tuple[str | None, ShutdownReport]:
    """Stop everything; returns why building the services failed, if it raised, and how shutdown went."""
    failed: str | None = None
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        log.info("startup of services was interrupted by shutdown")
    except Exception as exc:
        log.exception("building services failed")
        failed = f"building the services failed: {type(exc).__name__}: {exc}"
    report = await ctx.lifecycle.shutdown("quit")
    ctx.lifecycle.remove_signal_handlers()
    for step in report.steps:
        if not step.ok:
            log.warning("shutdown step %s/%s: %s", step.stage, step.name, step.error)
    return failed, report


def settle_gc() -> None:
    """After the start-up loads (modules, the blotter's orders, history): move every object alive
    now into the permanent generation, out of every future collection (a gen-2 pass over them cost
    tens to hundreds of ms), and turn the collector back on. Idempotent once on."""
    import gc

    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()
    log.debug("garbage collector on; %d start-up objects frozen", gc.get_freeze_count())


def freeze_late_load(what: str) -> None:
    """After a large load later in the session (scikit-learn and the shadow models: hundreds of
    thousands of objects kept to the end): move them into the permanent generation too, or every
    later gen-2 pass walks them and stalls the loop some 60 ms (seen in the soak). Before
    :func:`settle_gc` has run (the collector still off for start-up) that first freeze covers them."""
    import gc

    if not gc.isenabled():
        return
    before = gc.get_freeze_count()
    gc.freeze()
    log.debug("%s loaded: %d more objects frozen", what, gc.get_freeze_count() - before)
