"""The Strategy lab (Strategies → Strategy lab…): the lab window over ``services.lab``, on this
session's database (sweeps and their points are stored beside the orders) and its market data (bars
through the history service, which reads the candle store first and fetches what is missing; the
candle store alone when there is no history service).

:class:`LabEngine` adapts ``services.lab`` to :class:`widgets.lab.backend.LabBackend`. It keeps one
:class:`~services.lab.coordinator.SweepRunner` per engine setting (the local cluster is started on
the first sweep and reused); at quit the running sweeps are cancelled (their points stay stored, a
resume continues them) and the clusters closed, off the GUI thread. The lab module is imported when
the window is first opened.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.lifecycle import STOP_STRATEGIES
from services.domain.enums import Timeframe

if TYPE_CHECKING:
    from app.context import AppContext, Services
    from app.qt.panels.backtests import BacktestDialogs
    from services.domain.models import Bar
    from services.lab.cluster import LabSettings
    from services.lab.coordinator import BarLoader, SweepHandle, SweepRunner
    from services.lab.model import PointResult, SweepListener, SweepSpec
    from services.lab.store import SweepStore
    from services.storage.engine import Database
    from widgets.backtest_dialog import Replay
    from widgets.lab.backend import Engine, PastSweep
    from widgets.main_window import MainWindow

log = logging.getLogger("heron.app.lab")

#: how long a sweep waits for one symbol's bars from the history service
LOAD_TIMEOUT_S = 300.0
#: how long quitting waits for running sweeps to stop before the clusters are closed
STOP_WAIT_S = 5.0


def bar_loader(services: Services, loop: asyncio.AbstractEventLoop | None) -> BarLoader:
    """Bars for a sweep, called on its coordinator thread: the history service's (store first, the
    broker for what is missing) run on the session's loop, else the candle store's."""
    history, candles = services.history, services.candles

    def load(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        if history is not None and loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(history.bars(symbol, timeframe, start, end), loop)
            return future.result(timeout=LOAD_TIMEOUT_S)
        if candles is not None:
            return list(candles.range_bars(symbol, Timeframe(timeframe), start, end))
        raise RuntimeError("this session has no market data to run a sweep on")

    return load


def plain_loops_off_the_gui_thread() -> None:
    """Make event loops created off the GUI thread plain asyncio ones. ``qasync.run`` installs a policy
    whose every new loop is a Qt loop, on any thread; a sweep's coordinator thread runs Dask's client
    on an asyncio loop of its own, and a Qt loop there stops at once ("Event loop stopped before
    Future completed"). The GUI thread keeps the policy's loops. Idempotent."""
    policy = asyncio.get_event_loop_policy()
    if getattr(policy, "heron_plain_off_gui", False):
        return
    gui_loop = policy.new_event_loop
    gui = threading.main_thread()

    def new_event_loop() -> asyncio.AbstractEventLoop:
        return gui_loop() if threading.current_thread() is gui else asyncio.SelectorEventLoop()

    setattr(policy, "new_event_loop", new_event_loop)  # noqa: B010 (a method of this instance only)
    setattr(policy, "heron_plain_off_gui", True)  # noqa: B010


def lab_settings(saved: Any) -> LabSettings:
    """The settings file's lab section as the cluster reads it."""
    from services.lab.cluster import LabSettings

    def path(text: str) -> Path | None:
        return Path(text).expanduser() if text else None

    return LabSettings(
        scheduler=saved.scheduler or None,
        workers=saved.workers or None,
        allow_insecure_tcp=saved.allow_insecure_tcp,
        tls_ca=path(saved.tls_ca),
        tls_cert=path(saved.tls_cert),
        tls_key=path(saved.tls_key),
    )


class LabEngine:
    """:class:`widgets.lab.backend.LabBackend` over ``services.lab``."""

    def __init__(
        self,
        db: Database,
        registry: Mapping[str, Any],
        load_bars: BarLoader,
        settings: Callable[[], LabSettings],
    ) -> None:
        from services.lab.store import SweepStore

        self.registry = dict(registry)
        self.store: SweepStore = SweepStore(db)
        self.load_bars = load_bars
        self.settings = settings
        self.runners: dict[LabSettings, SweepRunner] = {}
        self.handles: list[SweepHandle] = []

    def parse(self, data: Mapping[str, Any]) -> SweepSpec:
        from services.lab.spec import parse_spec

        return parse_spec(data, self.registry, now=datetime.now(UTC))

    def expand(self, spec: SweepSpec) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        from services.lab.spec import expand

        return expand(spec, self.registry)

    def _runner(self, engine: Engine) -> SweepRunner:
        from services.lab.coordinator import SweepRunner

        settings = replace(self.settings(), scheduler=engine.scheduler, workers=engine.workers)
        runner = self.runners.get(settings)
        if runner is None:
            runner = self.runners[settings] = SweepRunner(self.store, self.load_bars, settings, self.registry)
        return runner

    def start(
        self, spec: SweepSpec, listener: SweepListener, *, engine: Engine, resume: str | None = None
    ) -> SweepHandle:
        handle = self._runner(engine).start(spec, listener, resume=resume)
        self.handles = [h for h in self.handles if not h.done] + [handle]
        log.info("sweep %s started on %s (%s)", handle.sweep_id, engine.describe(),
                 "resumed" if resume else spec.search.value)  # fmt: skip
        return handle

    def past(self) -> Sequence[PastSweep]:
        from services.lab.spec import SpecError, parse_spec
        from widgets.lab.backend import PastSweep

        out: list[PastSweep] = []
        for record in self.store.list():
            try:
                spec = parse_spec(record.spec, self.registry, now=record.created)
            except SpecError as exc:  # a strategy no longer built in, a spec an older Heron wrote
                log.info("stored sweep %s not listed: %s", record.id, exc)
                continue
            out.append(
                PastSweep(record.id, spec, record.state, record.total, record.completed, record.created)
            )
        return out

    def results(self, sweep_id: str) -> Sequence[PointResult]:
        return self.store.results(sweep_id)

    def stitched_equity(
        self, spec: SweepSpec, results: Sequence[PointResult]
    ) -> list[tuple[datetime, Decimal]]:
        """The walk-forward's out-of-sample runs recomputed here on the sweep's bars, chained."""
        from services.lab.walkforward import stitched_equity

        return stitched_equity(spec, results, self.load_bars, self.registry)

    def release_idle(self) -> Callable[[], None] | None:
        """With no sweep running: the clusters detached (the next sweep starts its own) and a
        function that closes them (blocking: call it off the GUI thread); None otherwise."""
        if not self.runners or any(not h.done for h in self.handles):
            return None
        runners = list(self.runners.values())
        self.runners.clear()

        def close() -> None:
            for runner in runners:
                try:
                    runner.close()
                except Exception as exc:  # a cluster already gone: nothing left to close
                    log.info("closing a sweep cluster: %s", exc)

        return close

    def close(self) -> None:
        """Cancel the running sweeps, wait a little for them, close the clusters. Blocking."""
        for handle in self.handles:
            handle.cancel()
        for handle in self.handles:
            handle.wait(STOP_WAIT_S)
        for runner in self.runners.values():
            try:
                runner.close()
            except Exception as exc:  # a cluster already gone: nothing left to close
                log.info("closing a sweep cluster: %s", exc)
        self.runners.clear()


def point_replay(spec: SweepSpec, point: PointResult, load_bars: BarLoader) -> Replay:
    """The bars, symbols, window and costs a sweep's point ran on, for the backtest dialog: the whole
    sweep's bars; an in-sample point its fold's in-sample window; an out-of-sample point its fold's
    in-sample and out-of-sample windows, measured from the out-of-sample start (as the workers ran
    them). ValueError when the point's fold is not one of the spec's."""
    from services.lab.coordinator import costs_of, load_all
    from services.lab.walkforward import OUT_OF_SAMPLE, folds_of
    from widgets.backtest_dialog import Replay

    start: datetime | None = None
    end: datetime | None = None
    measure_from: datetime | None = None
    where = f"{spec.start:%Y-%m-%d %H:%M} to {spec.end:%Y-%m-%d %H:%M} UTC"
    if point.fold is not None:
        fold = {f.index: f for f in folds_of(spec)}.get(point.fold) if spec.walk_forward else None
        if fold is None:
            raise ValueError(f"fold {point.fold + 1} is not one of this sweep's walk-forward folds")
        start, end = fold.in_start, fold.in_end
        where = f"fold {fold.index + 1} in-sample {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        if point.phase == OUT_OF_SAMPLE:
            end, measure_from = fold.out_end, fold.out_start
            where = (f"fold {fold.index + 1} out-of-sample {measure_from:%Y-%m-%d %H:%M} to "
                     f"{end:%Y-%m-%d %H:%M} UTC (warmed up from {start:%Y-%m-%d %H:%M})")  # fmt: skip

    def load() -> list[Bar]:
        bars = load_all(spec, load_bars)
        return [b for b in bars if (start is None or b.ts >= start) and (end is None or b.ts < end)]

    label = f"The sweep's bars: {', '.join(spec.symbols)} {spec.timeframe.value}, {where}"
    return Replay(label, tuple(spec.symbols), load, costs_of(spec).config(), measure_from)


def open_point(
    backtests: BacktestDialogs,
    load_bars: BarLoader,
    kind: str,
    params: dict[str, str],
    spec: SweepSpec,
    point: PointResult,
) -> Any:
    """The backtest dialog on one point over the sweep's own bars (its timeframe, symbols and window,
    loaded as the sweep loaded them) with the sweep's cash, commission and slippage, so its figures
    are the point's and its curve and trades show."""
    replay = point_replay(spec, point, load_bars)  # refused before a dialog opens
    backtests.open(kind, params)
    dialog = backtests.dialogs[-1]
    dialog.use_replay(replay)
    return dialog


class StrategyLab:
    """Opens the lab window (one; raised when open) and owns its engine, made when the lab is first
    opened (the sweep tables are checked then, not at start-up)."""

    def __init__(self, window: MainWindow, ctx: AppContext, make_engine: Callable[[], LabEngine],
                 backtests: BacktestDialogs | None) -> None:  # fmt: skip
        self.window, self.ctx = window, ctx
        self.make_engine = make_engine
        self.engine: LabEngine | None = None
        self.backtests = backtests
        self.dialog: Any = None
        self.closing: threading.Thread | None = None

    def open(self) -> Any:
        from widgets.lab.backend import Engine
        from widgets.lab.dialog import StrategyLabDialog

        if self.engine is None:
            self.engine = self.make_engine()
        if self.dialog is None:
            saved = self.ctx.settings.lab
            registry = self.engine.registry
            backtests = self.backtests
            load = self.engine.load_bars
            opener = None if backtests is None else functools.partial(open_point, backtests, load)
            engine = Engine(saved.scheduler or None, saved.workers or None)
            self.dialog = StrategyLabDialog(
                registry, self.engine, engine=engine, open_backtest=opener, parent=self.window
            )
            self.dialog.finished.connect(lambda _result: self.closed())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def closed(self) -> None:
        """The lab window was closed: its local workers and in-process scheduler stop (at idle they
        cost the terminal CPU and memory); the next sweep starts a cluster again."""
        closer = self.engine.release_idle() if self.engine is not None else None
        if closer is not None:
            log.info("strategy lab closed: its Dask cluster is being shut down")
            self.closing = threading.Thread(target=closer, name="heron-lab-close", daemon=True)
            self.closing.start()

    def close(self) -> None:
        """At quit: running sweeps cancelled (resumable), clusters closed. Blocking."""
        if self.engine is not None:
            self.engine.close()
        if self.closing is not None:
            self.closing.join(STOP_WAIT_S)


def install(
    window: MainWindow, ctx: AppContext, services: Services, backtests: BacktestDialogs | None
) -> StrategyLab | None:
    """Strategies → Strategy lab… (a command with its configurable shortcut), and the engine's
    shutdown step. Without a database the command stays disabled and the log says why."""
    from services.strategies.builtin import builtin_registry
    from widgets.shortcuts import Command

    if services.db is None:
        log.info("the strategy lab is not available: %s", services.failures.get("db", "no database"))
        return None
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    registry = dict(services.strategy_registry or builtin_registry())
    plain_loops_off_the_gui_thread()
    db, loader = services.db, bar_loader(services, loop)

    def make_engine() -> LabEngine:
        return LabEngine(db, registry, loader, lambda: lab_settings(ctx.settings.lab))

    lab = StrategyLab(window, ctx, make_engine, backtests)
    window.connect_command(Command.STRATEGY_LAB, lab.open)

    async def stop() -> None:
        await asyncio.to_thread(lab.close)

    ctx.lifecycle.add_step(STOP_STRATEGIES, "strategy lab", stop)
    return lab
