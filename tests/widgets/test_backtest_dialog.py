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


def test_dates_shown_are_those_of_the_data_used(qtbot: Any) -> None:
    from datetime import UTC

    d = BacktestDialog(builtin_registry(), kind="sma_crossover")
    qtbot.addWidget(d)
    d.bars.setValue(3000)
    bars = synthetic_bars("AAPL", 3000, seed=1)
    shown = (d.start.dateTime().toSecsSinceEpoch(), d.end.dateTime().toSecsSinceEpoch())
    assert shown == (int(bars[0].ts.timestamp()), int(bars[-1].ts.timestamp()))

    first, last = datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 3, 27, 20, 59, tzinfo=UTC)

    def stored(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        # the store holds less than was asked for: the result names the bars it really had
        head = synthetic_bars(symbol, 600, seed=3, start=first)[:-1]
        return [*head, synthetic_bars(symbol, 1, seed=4, start=last)[0]]

    d2 = BacktestDialog(builtin_registry(), history=stored, kind="sma_crossover")
    qtbot.addWidget(d2)
    d2.source.setCurrentIndex(1)
    with qtbot.waitSignal(d2.bridge.finished, timeout=20_000):
        assert d2.start_run()
    assert d2.data_range.text() == "Data used: 2026-03-02 15:00 to 2026-03-27 20:59 UTC, 600 bars"


def test_the_time_axis_shows_dates_and_sharpe_says_how_it_is_annualised(qtbot: Any) -> None:
    import re
    from datetime import UTC

    import pyqtgraph as pg

    from widgets.backtest_dialog import tick_label

    d = BacktestDialog(builtin_registry(), kind="sma_crossover")
    qtbot.addWidget(d)
    d.bars.setValue(2000)
    with qtbot.waitSignal(d.bridge.finished, timeout=20_000):
        assert d.start_run()
    axis = d.plot.getAxis("bottom")
    assert isinstance(axis, pg.DateAxisItem)
    xs = d.curve.getData()[0]
    assert xs[0] == synthetic_bars("AAPL", 1)[0].ts.timestamp()  # seconds since the epoch, not bar numbers
    # shown over a quarter, the axis labels months (painted once so it has its font and zoom level)
    d.show()
    qtbot.waitExposed(d)
    start = xs[0]
    d.plot.setXRange(start, start + 90 * 86_400.0, padding=0)
    d.plot.grab()
    (spacing, values), *finer = axis.tickValues(start, start + 90 * 86_400.0, 600)
    labels = axis.tickStrings(values, 1.0, spacing)
    assert not finer and len(labels) >= 3  # one level of ticks: no month label over a day's
    assert all(re.fullmatch(r"\d\d (Jan|Feb|Mar|Apr)|(Jan|Feb|Mar|Apr) 2024", t) for t in labels), labels
    # over the two days of bars the run used, hours, and the date at midnight
    ((spacing, values),) = axis.tickValues(xs[0], xs[-1], 600)
    assert "03 Jan" in axis.tickStrings(values, 1.0, spacing) and spacing < 86_400
    assert tick_label(datetime(2024, 1, 3, 14, 30, tzinfo=UTC).timestamp(), 3600) == "14:30"
    assert tick_label(datetime(2024, 1, 4, tzinfo=UTC).timestamp(), 3600) == "04 Jan"
    assert d.captions["Sharpe"].text() == "Sharpe (annualised ×√(252·390), one-minute returns)"
    assert "√98280" in d.captions["Sharpe"].toolTip()


def test_commission_and_slippage_are_charged_by_the_run(qtbot: Any) -> None:
    from decimal import Decimal

    from services.strategies.backtest import BacktestConfig

    reg = builtin_registry()
    params = {"fast": "5", "slow": "20", "symbols": "MSFT"}
    d = BacktestDialog(reg, kind="sma_crossover", params=params)
    qtbot.addWidget(d)
    d.bars.setValue(3000)
    d.commission.setText("0.01")
    d.slippage.setText("5")
    with qtbot.waitSignal(d.bridge.finished, timeout=20_000):
        assert d.start_run()
    r = d.last_result
    assert r is not None
    strategy = reg["sma_crossover"]({"fast": 5, "slow": 20, "symbols": "MSFT"})
    cfg = BacktestConfig(commission_per_share=Decimal("0.01"), slippage_bps=Decimal(5))
    expected = run_backtest(strategy, synthetic_bars("MSFT", 3000, seed=1), config=cfg)
    free = run_backtest(reg["sma_crossover"]({"fast": 5, "slow": 20, "symbols": "MSFT"}),
                        synthetic_bars("MSFT", 3000, seed=1))  # fmt: skip
    assert r.final_equity == expected.final_equity < free.final_equity
    d.slippage.setText("-1")
    assert not d.start_run() and "negative" in d.status.text()
    d.slippage.setText("abc")
    assert not d.start_run() and "slippage" in d.status.text()


def test_no_axis_labels_before_a_run_and_the_dialog_keeps_within_the_screen(qtbot: Any) -> None:
    d = BacktestDialog(builtin_registry(), kind="sma_crossover")
    qtbot.addWidget(d)
    d.bars.setValue(2000)
    d.show()
    qtbot.waitExposed(d)
    axis, left = d.plot.getAxis("bottom"), d.plot.getAxis("left")
    d.plot.grab()
    # the empty plot's range is 0..1 s: no "01 Jan" labels, no 0.0..1.0 equity
    assert axis.tickValues(*axis.range, 600) == [] and not left.style["showValues"]
    room = d.screen().availableGeometry().size()
    width = d.width()
    assert width <= room.width() and d.height() <= room.height()
    with qtbot.waitSignal(d.bridge.finished, timeout=20_000):
        assert d.start_run()
    qtbot.waitUntil(lambda: bool(axis.tickValues(*axis.range, 600)))  # the curve's dates
    assert left.style["showValues"]
    assert d.width() == width and d.minimumSizeHint().width() <= room.width()  # it did not widen
