"""The composition root: the one place that builds every service, wires them and owns startup
and shutdown. Later parts plug in here: a subsystem module in ``app/subsystems`` builds its part,
keeps it on :class:`app.context.Services` and registers its shutdown step with the lifecycle;
:func:`build_services` runs the subsystems in order; the panels get it in ``app/qt/panels``.

Startup: data paths → logging (redacted) → settings → exception hooks → event loop (qasync with a
window, or plain asyncio with ``--headless``: no Qt import at all) → window shown → services built
in the background, so the window is usable before the exchange answers.

This module imports every subsystem at module level: ``app/preload.py`` imports it on a worker
thread during a windowed start-up, which loads the whole service layer off the main thread.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app import exchange_supervisor
from app.cli import LIVE_CONFIRMATION
from app.context import AppContext, Services, fail, spawn, startup_failed
from app.errors import ExceptionHooks, LoopNotifier
from app.headless import run_headless
from app.launch import Launch
from app.lifecycle import Lifecycle
from app.local_exchange import LocalExchangeLauncher
from app.logging_setup import LoggingHandle, LogHub, SecretRedactor, setup_logging
from app.paths import DataDirError, ProfilePaths, prepare, resolve_paths
from app.report import register_report, schedule_state_report
from app.script import ScriptError, load_script
from app.settings import SettingsError, defaults_after_set_aside, load_or_defaults
from app.subsystems.broker import Credentials, alpaca_credentials, connect_broker
from app.subsystems.exchange import connect_local_exchange, restart_dead_exchange
from app.subsystems.marketdata import start_market_data
from app.subsystems.metrics import start_metrics
from app.subsystems.orders import build_orders, start_trading
from app.subsystems.shadow import build_shadow
from app.subsystems.storage import open_storage
from app.subsystems.strategies import build_strategies, check_strategy_specs
from services.domain.bus import EventBus
from services.domain.enums import Mode
from services.storage import StorageError

log = logging.getLogger("heron.app")


async def build_services(ctx: AppContext, services: Services) -> Services:
    """Construct and start every service on the running loop, registering each one's shutdown step.

    ``services`` is filled in place so a shutdown that interrupts this coroutine still finds
    (and stops) whatever was already started. Order: storage → credentials (checked with
    GET /v2/account before any stream) → broker → market data → orders/risk/reconciliation →
    strategies and shadow → metrics; trading is enabled only by a clean start-up reconciliation
    with market data flowing.
    """
    open_storage(ctx, services)
    if services.fatal is not None:
        return services
    if ctx.mode is Mode.LOCAL:
        await connect_local_exchange(ctx, services)
        if services.exchange is None:
            fail(ctx, services, "broker", "no exchange: trading stays DISABLED")
            register_report(ctx, services)
            return services
        keys = services.exchange.keys
        creds: Credentials | None = (keys.key_id, keys.secret, "local", services.exchange.url)
    else:
        creds = await alpaca_credentials(ctx, services)
    register_report(ctx, services)
    if creds is None:
        return services
    connected = await connect_broker(ctx, services, *creds)
    if not connected and not await restart_dead_exchange(ctx, services, creds):
        return services
    await start_market_data(ctx, services, *creds)
    if services.db is not None:
        try:
            build_orders(ctx, services)
        except StorageError as exc:
            startup_failed(ctx, services, str(exc))
            return services
        build_strategies(ctx, services)
    build_shadow(ctx, services)
    start_metrics(ctx, services)
    if services.engine is not None:
        spawn(services, "startup", start_trading(ctx, services))
    exchange_supervisor.supervise(ctx, services)  # a dead local exchange: said, restarted, reconciled
    return services


async def start_services(ctx: AppContext, services: Services) -> asyncio.Task[Services]:
    """The state report's schedule (if asked for), then :func:`build_services` in the background."""
    if ctx.args.state_report is not None:
        schedule_state_report(ctx, services, ctx.args.state_report)
    return asyncio.ensure_future(build_services(ctx, services))


def _fatal(message: str, *, logged: bool = True) -> int:
    """A start-up failure before the services: one line, an ERROR in the log (and so on stderr);
    printed instead when there is no log yet (``logged=False``)."""
    message = " ".join(message.split())
    if logged:
        log.error("startup failed: %s", message)
    else:
        print(f"heron: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace, launch: Launch | None = None) -> int:
    """Start Heron; returns the exit code. Every startup failure is one clear line, never a traceback."""
    try:
        paths = prepare(resolve_paths(args.profile, args.data_dir))
    except DataDirError as exc:
        return _fatal(str(exc), logged=False)
    redactor, hub = SecretRedactor(), LogHub()
    launch = launch or Launch()
    early = launch.early_exchange
    if isinstance(early, LocalExchangeLauncher):
        early.listen_for_secret(redactor.register)  # before the first log line
    try:
        logging_handle = setup_logging(redactor=redactor, hub=hub, log_dir=paths.log_dir)
    except OSError as exc:
        return _fatal(f"cannot open the log file in {paths.log_dir}: {exc.strerror or exc}", logged=False)
    try:
        return _run_with_logging(args, launch, paths, redactor, hub, logging_handle)
    finally:
        logging_handle.close()


def _run_with_logging(
    args: argparse.Namespace,
    launch: Launch,
    paths: ProfilePaths,
    redactor: SecretRedactor,
    hub: LogHub,
    logging_handle: LoggingHandle,
) -> int:
    log.info("Heron starting: profile %s, data in %s", paths.profile, paths.profile_dir)
    try:
        settings, settings_problem = load_or_defaults(paths.settings_file)
    except SettingsError as exc:
        return _fatal(str(exc))
    if settings_problem is not None:
        log.warning("%s", settings_problem)
    mode = Mode(args.mode) if args.mode else settings.mode
    set_aside = defaults_after_set_aside(paths.settings_file) if mode is Mode.LIVE else None
    if mode is Mode.LIVE and (settings_problem is not None or set_aside is not None):
        # the defaults' risk limits may be looser than the trader's own: never for real money, not
        # on this start nor on the next ones, until the settings are fixed or saved on purpose
        why = settings_problem or (
            f"the settings file {paths.settings_file} holds the defaults written when an unusable one "
            f"was moved aside to {set_aside.name if set_aside else '?'}"
        )
        return _fatal(
            f"alpaca-live refused: {why}. Heron does not trade real money on default risk limits; fix "
            "the moved file and move it back, or review and save the settings in paper or local mode "
            "first; nothing was connected"
        )
    if mode is Mode.LIVE and args.headless and getattr(args, "confirm_live", None) != LIVE_CONFIRMATION:
        return _fatal(
            "alpaca-live trades real money: a headless live run needs the typed confirmation "
            f"--confirm-live {LIVE_CONFIRMATION}; nothing was connected"
        )
    if getattr(args, "sweep", None) is not None:  # a parameter sweep: no trading services at all
        from app.sweep import run_sweep

        return run_sweep(args, paths, settings, mode, launch, redactor)
    problem = check_strategy_specs(getattr(args, "start_strategy", None) or [])
    if problem:
        return _fatal(problem)
    script_orders = None
    if getattr(args, "script", None) is not None:
        try:  # every entry checked before anything connects: a bad script runs no order at all
            script_orders = load_script(args.script)
        except ScriptError as exc:
            return _fatal(f"--script refused, no order was sent: {exc}")
    bus = EventBus()
    notifier = LoopNotifier(bus, redact=redactor.redact)
    hooks = ExceptionHooks(notify=notifier)
    ctx = AppContext(
        args=args,
        paths=paths,
        settings=settings,
        mode=mode,
        redactor=redactor,
        log_hub=hub,
        bus=bus,
        lifecycle=Lifecycle(),
        notifier=notifier,
        hooks=hooks,
        launch=launch,
        script_orders=script_orders,
    )
    if settings_problem is not None:
        ctx.notify("warning", "settings", settings_problem)
    hooks.install()
    try:
        if args.headless:
            return run_headless(ctx, start_services)
        from app.qt.runner import run_gui

        return run_gui(ctx, start_services)
    finally:
        hooks.uninstall()
