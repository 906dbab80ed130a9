"""Backtest dialog: runs the real backtest off the GUI thread, progress, cancel, results."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from services.domain.models import Bar
from services.strategies.backtest import run_backtest
from services.strategies.builtin import builtin_registry
from services.strategies.synthetic import synthetic_bars
from widgets.backtest_dialog import BacktestDialog


def test_run_shows_the_backtests_own_figures(qtbot: Any, qtmodeltester: Any) -> None:
    reg = builtin_registry()
    d = BacktestDialog(reg, kind="sma_crossover", params={"fast": "5", "slow": "20", "symbols": "MSFT"})
    qtbot.addWidget(d)
    assert d.symbol.text() == "MSFT" and d.params.values()["fast"] == 5
    d.bars.setValue(3000)
    d.seed.setValue(9)
    progress: list[int] = []
    d.progress.valueChanged.connect(progress.append)
    gui = threading.get_ident()
    with qtbot.waitSignal(d.bridge.finished, timeout=20_000):
        assert d.start_run()
        assert not d.run.isEnabled() and d.cancel.isEnabled()
    assert threading.get_ident() == gui
    r = d.last_result
    assert r is not None and r.bars == 3000 and r.error is None
    # the same backtest, run directly, gives exactly the figures shown
    expected = run_backtest(reg["sma_crossover"]({"fast": 5, "slow": 20, "symbols": "MSFT"}),
                            synthetic_bars("MSFT", 3000, seed=9))  # fmt: skip
    assert r.final_equity == expected.final_equity and len(r.trades) == len(expected.trades)
    assert d.metrics["Trades"].text() == f"{len(expected.trades):,}"
    assert d.metrics["Sharpe"].text() == ("—" if expected.sharpe is None else f"{expected.sharpe:.2f}")
    assert d.metrics["Final"].text() == f"{expected.final_equity:,.2f}"
    assert d.trades.rowCount() == len(expected.trades) > 0
    assert len(d.curve.getData()[0]) == len(expected.equity_curve)
    assert progress[-1] == 1000 and len(progress) > 3  # intermediate progress arrived
    assert d.run.isEnabled() and not d.cancel.isEnabled()
    qtmodeltester.check(d.trades, force_py=True)


def test_cancel_stops_the_run(qtbot: Any) -> None:
    gate = threading.Event()

    def slow_history(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        gate.wait(5)  # hold the worker until Cancel was pressed
        return synthetic_bars(symbol, 50_000, seed=2)

    d = BacktestDialog(builtin_registry(), history=slow_history, kind="sma_crossover")
    qtbot.addWidget(d)
    d.source.setCurrentIndex(1)
    assert d.start.isEnabled() and not d.bars.isEnabled()
    with qtbot.waitSignal(d.bridge.finished, timeout=20_000):
        assert d.start_run()
        assert not d.start_run()  # one run at a time
        d.cancel.click()
        gate.set()
    assert d.last_result is None
    assert d.status.text().startswith("Cancelled after") and "no result" in d.status.text()
    assert d.run.isEnabled()


def test_bad_input_is_refused_before_running(qtbot: Any) -> None:
    d = BacktestDialog(builtin_registry(), kind="sma_crossover")
    qtbot.addWidget(d)
    d.symbol.setText("not a symbol!!")
    assert not d.start_run() and d.bridge.running == 0
    assert d.status.text()
    d.symbol.setText("AAPL")
    d.params.set_value_text("qty", "-1")
    assert not d.start_run() and "qty" in d.status.text()


def test_strategy_error_during_run_is_reported(qtbot: Any) -> None:
    def empty(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        return []

    d = BacktestDialog(builtin_registry(), history=empty, kind="sma_crossover")
    qtbot.addWidget(d)
    d.source.setCurrentIndex(1)
    with qtbot.waitSignal(d.bridge.finished, timeout=10_000):
        d.start_run()
    assert "no bars for AAPL" in d.status.text()
