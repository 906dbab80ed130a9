"""Trading start-up: recover the journal's in-flight intents, wait for the trading stream and market
data, run the start-up reconciliation (which enables trading when clean), then keep the polling and
reconciliation loops going. Also the operator's ``--release-halt`` at start, and the re-read of every
open order after a (re)connect and at quit.

The composition root (``app/subsystems/orders.py``) calls :func:`startup_trading` once the execution
engine, the reconciler and the trading state machine exist; the local exchange's supervisor uses
:func:`wait_market_data` and :func:`refresh_open_orders` after a restart. Loop thread only.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from services.domain.enums import TradingState
from services.storage import StorageError

if TYPE_CHECKING:
    from services.orders.engine import ExecutionEngine
    from services.orders.store import OrderStore
    from services.risk.trading_state import TradingStateMachine

log = logging.getLogger("heron.app")

#: ``notify(level, source, message)``: shown to the person (status bar, log panel).
Notify = Callable[[str, str, str], None]
#: ``spawn(name, coroutine)``: a named background task owned (and cancelled at quit) by the caller.
Spawn = Callable[[str, Coroutine[Any, Any, Any]], object]

#: Seconds to wait for the trading stream and prices before saying trading stays DISABLED, then
#: how often that is said again while they do not come.
FIRST_WAIT_S = 20.0
NEXT_WAIT_S = 10.0
POLL_EVERY_S = 2.0
ACCOUNT_EVERY_S = 15.0
RECONCILE_EVERY_S = 10.0


class _Gate(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class MarketDataStreams(Protocol):
    """What start-up reads of the market-data streams: the order gate of the trading stream."""

    @property
    def gate(self) -> _Gate: ...


class PricedSymbols(Protocol):
    """The quote book as start-up sees it: the symbols that have prices."""

    def symbols(self) -> Iterable[str]: ...


def operator() -> str:
    """The operator's login name, as journaled with a released halt or an accepted rollback."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


def halt_at_start(trading: TradingStateMachine, release_reason: str | None, notify: Notify) -> None:
    """A kill-switch HALT from an earlier run stays in force; ``--release-halt REASON`` releases it."""
    if release_reason is not None:
        who = operator()
        if trading.release_halt(who, release_reason):
            log.warning("kill-switch HALT released by %s: %s", who, release_reason)
            notify("warning", "trading", f"kill-switch HALT released by {who}: {release_reason}")
        else:
            log.info("--release-halt: no kill-switch HALT is in force; nothing released")
    if trading.halt_latch is not None:
        why = trading.halt_latch.describe()
        how = "release: Resume trading… in the status bar, or main.py --release-halt REASON"
        log.warning("%s (%s)", why, how)
        notify("warning", "trading", f"{why} ({how})")
        return
    said = previous_halt(trading.previous_run)
    if said is not None:
        log.warning("%s", said)
        notify("warning", "trading", said)


def previous_halt(previous: dict[str, Any] | None) -> str | None:
    """What the last run ended HALTED or REDUCING with, when the restart does not carry it over.

    Only the kill switch is latched across a restart (an operator pulled it; an operator releases
    it). A HALT from the loss limit or from reconciliation drift is a verdict on facts that the new
    run checks again (the risk gate on every order, the start-up reconciliation), so it is not
    carried over blindly; but the restart must not clear it in silence either."""
    if previous is None or previous.get("state") not in (TradingState.HALTED, TradingState.REDUCING):
        return None
    return (
        f"trading was {previous['state']} when Heron last ran (since {previous.get('ts', '?')}: "
        f"{previous.get('reason', '?')}); that cause is checked again now, and trading starts only "
        "after a clean start-up reconciliation"
    )


async def refresh_open_orders(engine: ExecutionEngine | None, store: OrderStore | None) -> None:
    """After a (re)connect and at quit: re-read every open order Heron knows from the broker.

    Alpaca does not replay trade updates missed while the stream was down; the engine's own
    polling covers silent orders only after a delay, so this asks at once.
    """
    if engine is None or store is None:
        return
    for rec in list(store.open_orders()):
        if rec.broker_order_id is not None:
            await engine.refresh_order(rec)
        else:
            await engine.resolve_intent(rec.client_order_id)


async def wait_market_data(
    streams: MarketDataStreams | None, book: PricedSymbols | None, timeout: float
) -> str | None:
    """None once the trading stream is live and prices arrive; otherwise why not (after ``timeout``)."""
    if streams is None or book is None:
        return "market data is not running"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        gate_ok = streams.gate.allowed
        priced = bool(book.symbols())
        if gate_ok and priced:
            return None
        if loop.time() >= deadline:
            if not priced:
                return "no market data received yet"
            return f"the trading stream is not live ({streams.gate.reason})"
        await asyncio.sleep(0.1)


async def every(seconds: float, fn: Callable[[], Awaitable[Any]]) -> None:
    """Run ``fn`` every ``seconds`` until cancelled; a failure is logged and the next run goes on."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic task %s failed; it runs again", getattr(fn, "__qualname__", fn))


class _ReconciliationResult(Protocol):
    @property
    def clean(self) -> bool: ...


class StartupReconciler(Protocol):
    """What start-up needs of :class:`services.reconciliation.reconciler.Reconciler` (a protocol:
    reconciliation sits above the order engine and imports it)."""

    suspected_cause: str | None

    async def startup(self) -> _ReconciliationResult: ...

    def open_incidents(self) -> Sequence[object]: ...

    async def run_cycle(self) -> _ReconciliationResult: ...


async def startup_trading(
    engine: ExecutionEngine,
    reconciler: StartupReconciler,
    trading: TradingStateMachine,
    streams: MarketDataStreams | None,
    book: PricedSymbols | None,
    *,
    notify: Notify,
    spawn: Spawn,
    suspected_cause: str | None = None,
    on_failed: Callable[[str], None],
) -> bool:
    """Recover → wait for streams → start-up reconciliation (enables trading when clean) → loops.

    ``suspected_cause``: named by the reconciliation as the cause of the drift it finds (a journal
    rolled back). Returns False (after ``on_failed(why)``) when the journal could not be recovered.
    """
    try:
        unresolved = await engine.recover()
    except StorageError as exc:
        on_failed(str(exc))
        return False
    if unresolved:
        log.warning("%d in-flight intent(s) not yet resolved: %s", len(unresolved), ", ".join(unresolved))
    spawn("poll", every(POLL_EVERY_S, engine.poll_once))
    spawn("account", every(ACCOUNT_EVERY_S, engine.refresh_account))
    trading.set(TradingState.DISABLED, "waiting for the trading stream and market data", source="startup")
    problem = await wait_market_data(streams, book, FIRST_WAIT_S)
    while problem is not None:
        trading.set(TradingState.DISABLED, f"{problem}; trading stays DISABLED until it is", source="startup")
        notify("warning", "trading", f"trading DISABLED: {problem}")
        problem = await wait_market_data(streams, book, NEXT_WAIT_S)
    reconciler.suspected_cause = suspected_cause
    try:
        result = await reconciler.startup()
    finally:
        reconciler.suspected_cause = None
    log.info("start-up reconciliation: %s (%d incident(s))", "clean" if result.clean else "NOT clean",
             len(reconciler.open_incidents()))  # fmt: skip
    spawn("reconcile", every(RECONCILE_EVERY_S, reconciler.run_cycle))
    return True
