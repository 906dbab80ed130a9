"""Staged, idempotent shutdown (docs/DESIGN.md §2), triggered by the window, a timer or SIGINT/SIGTERM/SIGHUP.

Before the event loop exists, main.py's own handlers cover the same signals (they stop the
exchange child and exit); :meth:`Lifecycle.install_signal_handlers` takes over from them.

Owners register steps into named stages; :meth:`Lifecycle.shutdown` runs the stages in the fixed
order of :data:`STAGES`, steps within a stage in registration order. Every step has a timeout; a
step that fails or times out is logged and recorded, and the next steps run anyway. Shutdown runs
once: later calls wait for, and return, the first run's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("heron.lifecycle")

STOP_STRATEGIES = "stop strategies"
OPEN_ORDER_POLICY = "open-order policy"
FINAL_RECONCILIATION = "final reconciliation"
CLOSE_STREAMS = "close streams"
CLOSE_BROKER = "close broker"
FLUSH_STORAGE = "flush storage"
WRITE_REPORTS = "write reports"
STOP_LOCAL_EXCHANGE = "stop local exchange"

#: The order of shutdown. The first six are docs/DESIGN.md §2; reports are written once the stores are
#: final, and the local exchange goes last because the broker talks to it until then.
STAGES: tuple[str, ...] = (
    STOP_STRATEGIES,
    OPEN_ORDER_POLICY,
    FINAL_RECONCILIATION,
    CLOSE_STREAMS,
    CLOSE_BROKER,
    FLUSH_STORAGE,
    WRITE_REPORTS,
    STOP_LOCAL_EXCHANGE,
)

StepFn = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class StepResult:
    stage: str
    name: str
    ok: bool
    seconds: float
    error: str | None = None


@dataclass
class ShutdownReport:
    reason: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


@dataclass(frozen=True)
class _Step:
    stage: str
    name: str
    fn: StepFn
    timeout: float


class Lifecycle:
    """Owns shutdown. Loop-bound methods run on the event-loop thread unless noted."""

    def __init__(self, default_timeout: float = 10.0) -> None:
        self.default_timeout = default_timeout
        self._steps: list[_Step] = []
        self._requested: asyncio.Event | None = None
        self._reason: str | None = None
        self._task: asyncio.Task[ShutdownReport] | None = None
        self._signals_seen = 0
        self._installed_signals: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- registration -------------------------------------------------------------------------
    def add_step(self, stage: str, name: str, fn: StepFn, timeout: float | None = None) -> None:
        """Register ``fn`` (sync or async) to run during ``stage`` (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown shutdown stage {stage!r}; stages: {STAGES}")
        if self._task is not None:
            raise RuntimeError(f"shutdown already started; cannot add step {name!r}")
        self._steps.append(_Step(stage, name, fn, self.default_timeout if timeout is None else timeout))

    def steps(self) -> list[tuple[str, str]]:
        return [(s.stage, s.name) for s in self._ordered()]

    def _ordered(self) -> list[_Step]:
        return sorted(self._steps, key=lambda s: STAGES.index(s.stage))  # stable: keeps insertion order

    # -- requests -----------------------------------------------------------------------------
    def _event(self) -> asyncio.Event:
        if self._requested is None:
            self._requested = asyncio.Event()
        return self._requested

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def requested(self) -> bool:
        return self._reason is not None

    def request_shutdown(self, reason: str) -> None:
        """Ask for shutdown; the first reason wins. Loop thread only (signals arrive there)."""
        if self._reason is None:
            self._reason = reason
            log.info("shutdown requested: %s", reason)
        self._event().set()

    async def wait_requested(self) -> str:
        await self._event().wait()
        return self._reason or "unknown"

    # -- signals ------------------------------------------------------------------------------
    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGINT/SIGTERM/SIGHUP request shutdown through the loop's wakeup fd (works while Qt runs).

        A second SIGINT while shutting down exits at once with status 130.
        """
        self._loop = loop
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.warning("cannot handle %s through the event loop: %s", sig.name, exc)
                continue
            self._installed_signals.append(sig)

    def remove_signal_handlers(self) -> None:
        if self._loop is None:
            return
        for sig in self._installed_signals:
            with contextlib.suppress(RuntimeError, ValueError):
                self._loop.remove_signal_handler(sig)
        self._installed_signals.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1 and sig is signal.SIGINT and self.requested:
            log.warning("second interrupt during shutdown: exiting now")
            logging.shutdown()
            os._exit(130)
        self.request_shutdown(f"signal {sig.name}")

    # -- shutdown -----------------------------------------------------------------------------
    async def shutdown(self, reason: str = "shutdown") -> ShutdownReport:
        """Run every stage once; concurrent and later calls get the same report."""
        if self._reason is None:
            self.request_shutdown(reason)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run(self._reason or reason))
        return await asyncio.shield(self._task)

    async def _run(self, reason: str) -> ShutdownReport:
        report = ShutdownReport(reason=reason)
        log.info("shutting down (%s): %d step(s)", reason, len(self._steps))
        for step in self._ordered():
            started = time.monotonic()
            error: str | None = None
            try:
                result = step.fn()
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, timeout=step.timeout)
            except TimeoutError:
                error = f"timed out after {step.timeout:g} s"
                log.error("shutdown step %r (%s) %s; continuing", step.name, step.stage, error)
            except asyncio.CancelledError:
                # A step cancelled from inside must not abort the remaining stages.
                error = "cancelled"
                log.error("shutdown step %r (%s) was cancelled; continuing", step.name, step.stage)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                # an outcome the step foresaw and put in words (``expected = True``) needs no traceback
                foreseen = bool(getattr(exc, "expected", False))
                log.error("shutdown step %r (%s) failed; continuing%s", step.name, step.stage,
                          f": {exc}" if foreseen else "", exc_info=not foreseen)  # fmt: skip
            elapsed = time.monotonic() - started
            report.steps.append(StepResult(step.stage, step.name, error is None, elapsed, error))
        log.info("shutdown finished (%s)", "clean" if report.ok else "with errors")
        return report
