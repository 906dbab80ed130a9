"""The lab window on Heron's real sweep engine: a grid on a local Dask cluster, stored in the
session's database, shown in the window, listed again and opened from the store; and where the
sweep's bars come from."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.context import Services
from app.lab_settings import LabSettings as SavedLab
from app.qt.panels.backtests import BacktestDialogs
from app.qt.panels.lab import (
    LabEngine,
    bar_loader,
    install,
    lab_settings,
    open_point,
    plain_loops_off_the_gui_thread,
)
from services.domain.enums import Mode, Timeframe
from services.domain.models import Bar
from services.lab.cluster import LabSettings
from services.lab.model import SweepState
from services.storage import Database
from services.strategies.builtin import builtin_registry
from services.strategies.synthetic import synthetic_bars
from tests.support.polling import qt_pump, wait_for
from widgets.lab.dialog import StrategyLabDialog

START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def load(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
    return synthetic_bars(symbol, 3_000, seed=3)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEngine]:
    db = Database.open(None, tmp_path_factory.mktemp("lab-db"))
    lab = LabEngine(db, builtin_registry(), load, lambda: LabSettings(workers=1))
    yield lab
    lab.close()
    db.dispose()


def sweep_to_its_end(
    qtbot: Any, d: StrategyLabDialog, fast: str | None = None, slow: str | None = None
) -> None:
    """Start the form's sweep (``fast`` and ``slow`` typed first when given) on one worker and wait
    for its end."""
    if fast is not None:
        d.form.fields["fast"].setText(fast)
    if slow is not None:
        d.form.fields["slow"].setText(slow)
    d.form.workers.setValue(1)
    assert d.start(), d.status.text()
    wait_for("the sweep to end", lambda: d.run is None, 120, pump=qt_pump(qtbot))


def opened_in_backtest(
    qtbot: Any, d: StrategyLabDialog, backtests: BacktestDialogs, row: int
) -> tuple[Any, Any]:
    """The point at ``row`` opened in the backtest dialog: (the point, the dialog)."""
    d.table.selectRow(row)
    point = d._selected()
    assert point is not None and point.metrics is not None and d.open_point()
    (bt,) = backtests.dialogs
    qtbot.addWidget(bt)
    return point, bt


def test_a_real_sweep_fills_the_window_and_is_stored(qtbot: Any, engine: LabEngine) -> None:
    d = StrategyLabDialog(builtin_registry(), engine)
    qtbot.addWidget(d)
    d.form.fields["fast"].setText("2, 3")
    d.form.fields["slow"].setText("3, 10")
    d.form.workers.setValue(1)
    assert d.update_count() and d.count.text().startswith("3 points; 1 combination refused")
    assert d.start(), d.status.text()
    assert d.run is not None
    sweep_id = d.run.sweep_id
    wait_for("the sweep to end", lambda: d.run is None, 120, pump=qt_pump(qtbot))
    assert d.status.text().startswith("Done: 3 of 3 points"), d.status.text()
    assert d.points.rowCount() == 3
    grid = d.heatmap.grid
    assert grid is not None and sum(c.points for c in grid.cells.values()) == 3
    (past,) = [p for p in engine.past() if p.sweep_id == sweep_id]
    assert past.spec == d.spec  # the stored spec reads back to the one that ran
    assert past.state is SweepState.COMPLETED and past.completed == 3
    stored = engine.results(past.sweep_id)
    assert {r.key for r in stored} == {p.key for p in d.points.points()}
    shown = {p.key: dict(p.metrics or {}) for p in d.points.points()}
    assert {r.key: dict(r.metrics or {}) for r in stored} == shown  # what is shown is what was stored


def test_a_point_opened_in_the_backtest_dialog_replays_the_sweeps_data(qtbot: Any, engine: LabEngine) -> None:
    history = lambda symbol, start, end: load(symbol, Timeframe.MIN_1, start, end)  # noqa: E731
    backtests = BacktestDialogs(None, builtin_registry(), history)
    d = StrategyLabDialog(
        builtin_registry(), engine, open_backtest=functools.partial(open_point, backtests, load)
    )
    qtbot.addWidget(d)
    sweep_to_its_end(qtbot, d, "3, 5", "20")
    point, bt = opened_in_backtest(qtbot, d, backtests, 1)
    assert bt.source.currentData() == "replay" and bt.params.values()["fast"] == point.params["fast"]
    with qtbot.waitSignal(bt.bridge.finished, timeout=60_000):
        assert bt.start_run()
    result = bt.last_result
    assert result is not None
    # the dialog's run is the point the worker computed: same trades, same return
    assert len(result.trades) == point.metrics["trades"]
    assert float(result.total_return) == pytest.approx(point.metrics["total_return"], abs=1e-12)


def load_per_timeframe(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
    """Each symbol and timeframe its own history: a point run over other bars gets other figures."""
    seed = {"AAPL": 3, "MSFT": 5}[symbol] * 10 + list(Timeframe).index(Timeframe(timeframe))
    return synthetic_bars(symbol, 2_000, seed=seed)


@pytest.mark.parametrize(("timeframe", "symbols"), [("5Min", "AAPL"), ("1Min", "AAPL, MSFT")])
def test_a_5min_or_two_symbol_point_reproduces_its_row_in_the_backtest_dialog(
    qtbot: Any, tmp_path: Path, timeframe: str, symbols: str
) -> None:
    db = Database.open(None, tmp_path)
    engine = LabEngine(db, builtin_registry(), load_per_timeframe, lambda: LabSettings(workers=1))
    try:
        backtests = BacktestDialogs(None, builtin_registry(), None)  # no stored history to fall back on
        opener = functools.partial(open_point, backtests, load_per_timeframe)
        d = StrategyLabDialog(builtin_registry(), engine, open_backtest=opener)
        qtbot.addWidget(d)
        d.form.symbols.setText(symbols)
        d.form.timeframe.setCurrentIndex(d.form.timeframe.findData(timeframe))
        sweep_to_its_end(qtbot, d, "3, 5", "20")
        point, bt = opened_in_backtest(qtbot, d, backtests, 0)
        assert bt.source.currentData() == "replay" and timeframe in bt.source.currentText()
        with qtbot.waitSignal(bt.bridge.finished, timeout=60_000):
            assert bt.start_run()
        result = bt.last_result
        assert result is not None and point.metrics["trades"]
        assert len(result.trades) == point.metrics["trades"]
        assert float(result.total_return) == point.metrics["total_return"]
        assert result.sharpe == point.metrics["sharpe"]
    finally:
        engine.close()
        db.dispose()


def load_spread(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
    """Generated prices one bar every ten minutes from ``start``: weeks of bars for the folds."""
    bars = synthetic_bars(symbol, 4_000, seed=7)
    return [dataclasses.replace(b, ts=start + timedelta(minutes=10 * i)) for i, b in enumerate(bars)]


def test_a_walk_forward_out_of_sample_point_replays_its_folds_window(qtbot: Any, tmp_path: Path) -> None:
    db = Database.open(None, tmp_path)
    engine = LabEngine(db, builtin_registry(), load_spread, lambda: LabSettings(workers=1))
    try:
        backtests = BacktestDialogs(None, builtin_registry(), None)
        opener = functools.partial(open_point, backtests, load_spread)
        d = StrategyLabDialog(builtin_registry(), engine, open_backtest=opener)
        qtbot.addWidget(d)
        d.form.days.setValue(24)
        d.form.walk_forward.setChecked(True)
        d.form.folds.setValue(2)
        d.form.in_sample.setValue(8)
        d.form.out_of_sample.setValue(4)
        sweep_to_its_end(qtbot, d, "3, 5", "20")
        rows = [i for i in range(d.proxy.rowCount()) if d.points.point_at(d.proxy.mapToSource(
            d.proxy.index(i, 0)).row()).phase == "out_of_sample"]  # fmt: skip
        point, bt = opened_in_backtest(qtbot, d, backtests, rows[-1])
        assert point.fold == 1
        assert "fold 2 out-of-sample" in bt.source.currentText()
        with qtbot.waitSignal(bt.bridge.finished, timeout=60_000):
            assert bt.start_run()
        result = bt.last_result
        assert result is not None and result.measure_from is not None
        assert len(result.trades) == point.metrics["trades"]
        assert float(result.total_return) == point.metrics["total_return"]
    finally:
        engine.close()
        db.dispose()


def test_the_settings_file_becomes_the_clusters_settings() -> None:
    saved = SavedLab("tls://10.0.0.5:8786", 0, False, "~/ca.pem", "", "")
    got = lab_settings(saved)
    assert got.scheduler == "tls://10.0.0.5:8786" and got.workers is None
    assert got.tls_ca == Path("~/ca.pem").expanduser() and got.tls_cert is None
    assert lab_settings(SavedLab()).scheduler is None


class History:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def bars(self, symbol: str, timeframe: Any, start: datetime, end: datetime) -> list[Bar]:
        self.calls.append((symbol, str(timeframe), threading.get_ident()))
        return synthetic_bars(symbol, 5, seed=1)


def test_a_sweeps_bars_come_from_the_history_service_on_the_sessions_loop() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        history = History()
        services = Services(mode=Mode.LOCAL)
        services.history = history  # type: ignore[assignment]
        bars = bar_loader(services, loop)("AAPL", Timeframe.MIN_1, START, START)
        assert len(bars) == 5 and history.calls == [("AAPL", "1Min", runner.ident)]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


def test_without_market_data_a_sweep_is_refused_in_words() -> None:
    with pytest.raises(RuntimeError, match="no market data to run a sweep on"):
        bar_loader(Services(mode=Mode.LOCAL), None)("AAPL", Timeframe.MIN_1, START, START)


class QtLoops(asyncio.DefaultEventLoopPolicy):
    """Like qasync's policy: every new loop is the GUI's kind, whatever the thread."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[str] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        self.made.append(threading.current_thread().name)
        return super().new_event_loop()


def test_loops_made_off_the_gui_thread_are_plain_asyncio_ones() -> None:
    policy = QtLoops()
    asyncio.set_event_loop_policy(policy)
    try:
        plain_loops_off_the_gui_thread()
        plain_loops_off_the_gui_thread()  # once is enough
        gui = asyncio.new_event_loop()
        gui.close()
        kinds: list[str] = []

        def coordinator() -> None:  # what Dask's LoopRunner does on the sweep's thread
            loop = asyncio.new_event_loop()
            kinds.append(type(loop).__name__)
            loop.close()

        thread = threading.Thread(target=coordinator, name="sweep-x")
        thread.start()
        thread.join(5)
        assert policy.made == [threading.main_thread().name]  # the GUI thread still gets the policy's
        assert kinds == ["_UnixSelectorEventLoop"]
    finally:
        asyncio.set_event_loop_policy(None)


class Steps:
    def __init__(self) -> None:
        self.steps: list[tuple[str, str, Any]] = []

    def add_step(self, stage: str, name: str, fn: Any, timeout: float | None = None) -> None:
        self.steps.append((stage, name, fn))


def test_the_menu_opens_one_lab_made_on_first_use_and_quitting_closes_its_engine(
    qtbot: Any, tmp_path: Path
) -> None:
    from app.settings import Settings
    from widgets.main_window import MainWindow
    from widgets.shortcuts import Command

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    steps = Steps()
    ctx = SimpleNamespace(settings=Settings(), lifecycle=steps)
    assert install(window, ctx, Services(mode=Mode.LOCAL), None) is None  # type: ignore[arg-type]
    assert not window.commands[Command.STRATEGY_LAB].isEnabled() and steps.steps == []
    db = Database.open(None, tmp_path)
    try:
        services = Services(mode=Mode.LOCAL, db=db)
        lab = install(window, ctx, services, None)  # type: ignore[arg-type]
        assert lab is not None and lab.engine is None  # nothing made before the lab is opened
        window.commands[Command.STRATEGY_LAB].trigger()
        dialog = lab.dialog
        assert dialog is not None and dialog.isVisible() and lab.engine is not None
        window.commands[Command.STRATEGY_LAB].trigger()
        assert lab.dialog is dialog  # one lab, raised again
        ((stage, name, stop),) = steps.steps
        assert (stage, name) == ("stop strategies", "strategy lab")
        closed: list[bool] = []
        lab.engine.close = lambda: closed.append(True)
        asyncio.run(stop())
        assert closed == [True]
        dialog.close()
    finally:
        db.dispose()


def test_closing_the_lab_after_a_sweep_stops_its_local_cluster_and_the_next_sweep_starts_one(
    qtbot: Any, tmp_path: Path
) -> None:
    """A local cluster left running after the lab window closed kept its workers alive and its
    scheduler ticking inside the terminal (the idle window cost several % more CPU). Closing the lab
    with no sweep running shuts it down off the GUI thread; a sweep started later brings up a new one."""
    from app.settings import Settings
    from widgets.main_window import MainWindow
    from widgets.shortcuts import Command

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    ctx = SimpleNamespace(settings=Settings(), lifecycle=Steps())
    db = Database.open(None, tmp_path)
    try:
        lab = install(window, ctx, Services(mode=Mode.LOCAL, db=db), None)  # type: ignore[arg-type]
        assert lab is not None
        window.commands[Command.STRATEGY_LAB].trigger()
        assert lab.engine is not None
        lab.engine.load_bars = load
        lab.engine.settings = lambda: LabSettings(workers=1)
        d = lab.dialog
        sweep_to_its_end(qtbot, d, "2, 3", "10")
        (runner,) = lab.engine.runners.values()
        client = runner.cluster.client()
        assert client.status == "running"
        d.close()
        assert lab.closing is not None and lab.engine.runners == {}
        lab.closing.join(60)
        assert client.status != "running"  # the workers and the in-process scheduler are gone
        window.commands[Command.STRATEGY_LAB].trigger()
        sweep_to_its_end(qtbot, d)
        assert d.status.text().startswith("Done: 2 of 2"), d.status.text()
        d.close()
        lab.close()
    finally:
        db.dispose()
