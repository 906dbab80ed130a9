"""The Strategy lab window against an engine that reports points from its own thread: the space and
its count, start, progress, the heatmap and table filled, cancel, errors in words, opening a point in
the backtest dialog, and stored sweeps opened and resumed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from services.lab.model import PointResult, SearchKind, SweepSpec, SweepState
from services.strategies.builtin import builtin_registry
from tests.support.polling import qt_pump, wait_for
from tests.widgets.lab.fake_backend import FakeBackend, figures
from widgets.lab.backend import Engine
from widgets.lab.dialog import StrategyLabDialog
from widgets.lab.texts import progress_text
from widgets.models.common import TIMES


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(builtin_registry())


def lab(qtbot: Any, backend: FakeBackend, **kw: Any) -> StrategyLabDialog:
    d = StrategyLabDialog(builtin_registry(), backend, **kw)
    qtbot.addWidget(d)
    d.form.fields["fast"].setText("2..10")
    d.form.fields["slow"].setText("10..40 step 10")
    return d


def finished(qtbot: Any, d: StrategyLabDialog) -> None:
    wait_for("the sweep to end", lambda: d.run is None and d.status.text() != "", 20, pump=qt_pump(qtbot))


def test_the_count_is_shown_before_starting_with_the_refused_combinations(
    qtbot: Any, backend: FakeBackend
) -> None:
    d = lab(qtbot, backend)
    assert d.update_count()
    # fast 2..10 × slow 10..40: 36 combinations, fast=10 with slow=10 refused by the strategy
    assert d.count.text() == "35 points; 1 combination refused (fast (10) must be smaller than slow (10))"
    d.form.search.setCurrentIndex(d.form.search.findData(SearchKind.RANDOM.value))
    d.form.budget.setValue(12)
    assert d.update_count() and d.count.text().startswith("12 points drawn from 35;")
    d.form.fields["fast"].setText("2..x")
    assert not d.update_count()
    assert d.count.text() == "Not ready: fast: 'x' is not a number"
    assert "border" in d.form.fields["fast"].styleSheet() and not d.form.fields["slow"].styleSheet()


def test_a_sweep_fills_the_table_and_heatmap_and_names_the_best_point(
    qtbot: Any, backend: FakeBackend, qtmodeltester: Any
) -> None:
    d = lab(qtbot, backend, engine=Engine(None, 1))
    d.show()
    gui = threading.get_ident()
    seen: list[int] = []
    d.points.rowsInserted.connect(lambda *_: seen.append(threading.get_ident()))
    assert d.start()
    assert not d.start_button.isEnabled() and d.cancel_button.isEnabled()
    finished(qtbot, d)
    spec, engine, resume = backend.started[0]
    assert engine == Engine(None, 1) and resume is None
    assert dict(spec.space) == {"fast": tuple(range(2, 11)), "slow": (10, 20, 30, 40)}
    assert spec.fixed["qty"] == 1 and spec.fixed["allow_short"] is False
    assert d.points.rowCount() == 35 and set(seen) == {gui}
    assert d.status.text() == "Done: 35 of 35 points in 0 s. Best: fast=5, slow=20, Sharpe 2.000."
    assert d.progress.value() == d.progress.maximum() == 35
    assert d.progress_text.text() == "35 / 35 points in 0 s · 2 workers"
    grid = d.heatmap.grid
    assert grid is not None and (grid.x, grid.y) == ("fast", "slow")
    assert grid.shown((3, 1)) == figures({"fast": 5, "slow": 20})["sharpe"]  # fast=5, slow=20
    assert grid.refused((8, 0))  # fast 10, slow 10
    assert sum(c.points for c in grid.cells.values()) == 35
    d.heat_x.setCurrentText("slow")
    d.heat_y.setCurrentText("fast")
    assert d.heatmap.grid is not None and d.heatmap.grid.x == "slow" and d.heatmap.grid.shown((1, 3)) == 2.0
    assert d.start_button.isEnabled() and not d.cancel_button.isEnabled()
    qtmodeltester.check(d.proxy, force_py=True)


def test_cancel_stops_the_sweep_and_says_so(qtbot: Any, backend: FakeBackend) -> None:
    backend.gate = threading.Semaphore(0)
    d = lab(qtbot, backend)
    assert d.start()
    backend.gate.release(2)
    wait_for("two points", lambda: d.points.rowCount() == 2, 10, pump=qt_pump(qtbot))
    d.cancel_button.click()
    assert d.status.text().startswith("Cancelling")
    backend.gate.release(100)
    finished(qtbot, d)
    assert backend.runs[0].cancelled.is_set() and backend.runs[0].done
    assert (
        d.status.text().startswith("Cancelled: ")
        and "of 35 points done; resume it from Past sweeps." in d.status.text()
    )
    assert d.points.rowCount() <= 3
    assert "left" not in d.progress_text.text()


def test_failed_points_and_a_refused_start_are_said_in_words(qtbot: Any, backend: FakeBackend) -> None:
    backend.fail_on = lambda p: "the point killed its worker 4 times" if p["fast"] == 3 else None
    d = lab(qtbot, backend)
    assert d.start()
    finished(qtbot, d)
    errors = [p for p in d.points.points() if p.error]
    assert len(errors) == 4 and "4 failed" in d.status.text()
    backend.refuse_start = "the workers run dask 2024.1.0, this computer 2025.2.0"
    assert not d.start()
    assert d.status.text() == "Cannot start: the workers run dask 2024.1.0, this computer 2025.2.0"
    assert "Traceback" not in d.status.text() and d.start_button.isEnabled()
    d.form.engine_kind.setCurrentIndex(1)
    d.form.scheduler.setText("")
    assert not d.start() and d.status.text().startswith("Cannot start: scheduler:")


def test_a_point_opens_in_the_backtest_dialog_with_its_parameters(qtbot: Any, backend: FakeBackend) -> None:
    opened: list[tuple[str, dict[str, str]]] = []
    specs: list[SweepSpec] = []

    def open_backtest(kind: str, params: dict[str, str], spec: SweepSpec, point: PointResult) -> None:
        if refuse:
            raise ValueError(refuse[0])
        opened.append((kind, params))
        specs.append(spec)
        assert point.params["fast"] == int(params["fast"])

    refuse: list[str] = []

    d = lab(qtbot, backend, open_backtest=open_backtest)
    d.form.symbols.setText("msft, AAPL")
    d.form.fields["allow_short"].setText("true")
    assert d.start()
    finished(qtbot, d)
    d.table.sortByColumn(d.points.headers().index("Sharpe"), Qt.SortOrder.DescendingOrder)
    d.table.selectRow(0)
    assert d.open_button.isEnabled()
    d.open_button.click()
    assert opened == [("sma_crossover", {"qty": "1", "allow_short": "true", "fast": "5", "slow": "20",
                                         "symbols": "MSFT;AAPL"})]  # fmt: skip
    assert specs == [d.spec]
    d.table.doubleClicked.emit(d.proxy.index(1, 0))
    assert len(opened) == 2 and opened[1][1]["fast"] != "5"
    refuse.append("its bars are gone")  # never other data in their place: said in the lab
    assert not d.open_point()
    assert (
        len(opened) == 2
        and d.status.text() == "Cannot open this point in the backtest dialog: its bars are gone"
    )


def test_a_stored_sweep_opens_again_and_an_unfinished_one_resumes(qtbot: Any, backend: FakeBackend) -> None:
    backend.gate = threading.Semaphore(0)
    first = lab(qtbot, backend)
    assert first.start()
    backend.gate.release(3)
    wait_for("three points", lambda: first.points.rowCount() == 3, 10, pump=qt_pump(qtbot))
    first.close()  # closing the window cancels the sweep; its points stay stored
    backend.gate.release(100)
    wait_for("the sweep stopped", lambda: backend.runs[0].done, 10)
    stored = len(backend.results("sw1"))
    assert backend.stored["sw1"][1] is SweepState.CANCELLED and 3 <= stored <= 4

    d = StrategyLabDialog(builtin_registry(), backend)
    qtbot.addWidget(d)
    d.tabs.setCurrentWidget(d.past)
    d.show()
    wait_for("the stored sweeps", lambda: d.past.table.rowCount() == 1, 10, pump=qt_pump(qtbot))
    started = d.past.table.horizontalHeaderItem(0)
    assert started is not None and started.text() == f"Started ({TIMES.label()})"  # the display zone
    cells = [d.past.table.item(0, c) for c in (4, 5)]
    assert [c.text() if c is not None else None for c in cells] == [f"{stored} / 35", "cancelled"]
    d.past.table.selectRow(0)
    d.past.open_button.click()
    wait_for("its points", lambda: d.points.rowCount() == stored, 10, pump=qt_pump(qtbot))
    assert d.form.fields["fast"].text() == "2..10" and d.form.fields["slow"].text() == "10..40 step 10"
    assert d.heatmap.grid is not None and sum(c.points for c in d.heatmap.grid.cells.values()) == stored
    # its own progress, not the empty bar of a sweep not yet run
    assert (d.progress.value(), d.progress.maximum()) == (stored, 35)
    assert d.progress_text.text() == f"{stored} / 35 points stored"
    backend.gate = None
    d.past.resume_button.click()
    wait_for("resumed", lambda: len(backend.started) == 2, 10, pump=qt_pump(qtbot))
    finished(qtbot, d)
    assert backend.started[1][2] == "sw1"  # resumed, not started anew
    assert (
        d.points.rowCount() == 35 and len(backend.results("sw1")) == 35
    )  # the done points were not run again
    assert d.status.text().startswith("Done: 35 of 35 points")


def test_progress_words() -> None:
    from services.lab.model import SweepProgress

    text = progress_text(SweepProgress("s", 200, 50, 2, 3, 4.25, 95.0, 3))
    assert text == "50 / 200 points · 4.2 points/s · 1 min 35 s left · 3 workers · 2 failed"


def test_durations_read_the_same_in_the_lab_and_compactly_in_the_reconciliation_panel() -> None:
    from widgets.models.common import fmt_duration

    spans = (None, -3, 0, 59.4, 65, 3599, 7380)
    assert [fmt_duration(s) for s in spans] == [
        "—", "0 s", "0 s", "59 s", "1 min 05 s", "59 min 59 s", "2 h 03 min"
    ]  # fmt: skip
    compact = ["—", "0s", "0s", "59s", "1m 05s", "59m 59s", "2h 03m"]
    assert [fmt_duration(s, compact=True) for s in spans] == compact


def test_nothing_swept_yet_is_a_hint_and_the_keyboard_goes_down_the_form(
    qtbot: Any, backend: FakeBackend
) -> None:
    d = StrategyLabDialog(builtin_registry(), backend)
    qtbot.addWidget(d)
    assert not d.update_count()
    assert d.count.text().startswith("Give at least one parameter several values to sweep it")
    assert not d.start() and backend.started == []
    order: list[str] = []
    widget = d.form.strategy.nextInFocusChain()
    while widget is not None and widget is not d.form.symbols and len(order) < 50:
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            order.append(widget.objectName())
        widget = widget.nextInFocusChain()
    assert order == ["labParam_qty", "labParam_fast", "labParam_slow", "labParam_allow_short"]


def test_a_large_grid_is_counted_and_started_off_the_gui_thread(qtbot: Any, backend: FakeBackend) -> None:
    gui = threading.get_ident()
    expanded_on: list[int] = []
    expand = backend.expand

    def counted(spec: SweepSpec) -> Any:
        expanded_on.append(threading.get_ident())
        return expand(spec)

    backend.expand = counted  # type: ignore[method-assign]
    d = StrategyLabDialog(builtin_registry(), backend)
    qtbot.addWidget(d)
    d.form.fields["fast"].setText("1..100")
    d.form.fields["slow"].setText("2..101")  # 10,000 combinations
    assert not d.update_count()
    assert d.count.text() == "Counting the valid points among 10,000 combinations…"
    wait_for("the count", lambda: d.count.text().startswith("5,050 points;"), 20, pump=qt_pump(qtbot))
    assert expanded_on and gui not in expanded_on
    d.form.fields["slow"].setText("2..100")  # another grid: counted again, then started
    assert d.start() and d.status.text() == "Counting the valid points before the start…"
    wait_for("the sweep to start", lambda: backend.started, 20, pump=qt_pump(qtbot))
    finished(qtbot, d)
    assert d.points.rowCount() == 4_950 and gui not in expanded_on


def test_closing_during_a_sweep_asks_then_leaves_the_window_ready_to_start_or_resume(
    qtbot: Any, backend: FakeBackend
) -> None:
    backend.gate = threading.Semaphore(0)
    d = lab(qtbot, backend)
    d.show()
    qtbot.waitExposed(d)
    answers: list[bool] = [False]
    asked: list[bool] = []
    d.ask_stop = lambda: asked.append(True) or answers.pop(0)  # type: ignore[method-assign]
    assert d.start()
    backend.gate.release(2)
    wait_for("two points", lambda: d.points.rowCount() == 2, 10, pump=qt_pump(qtbot))
    field = d.form.fields["fast"]
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Escape)  # Esc while typing: asked, "No" keeps the sweep
    assert asked == [True] and d.isVisible() and d.run is not None and not backend.runs[0].cancelled.is_set()
    answers.append(True)
    qtbot.keyClick(field, Qt.Key.Key_Escape)  # "Yes": cancelled, and the window is reset
    assert len(asked) == 2 and not d.isVisible() and backend.runs[0].cancelled.is_set()
    backend.gate.release(100)
    wait_for("the sweep stopped", lambda: backend.runs[0].done, 10)
    qt_pump(qtbot)(0.2)  # its late "cancelled" report is not this window's any more
    d.show()  # reopened: nothing frozen, a new sweep starts
    assert d.run is None and d.start_button.isEnabled() and not d.cancel_button.isEnabled()
    assert d.progress_text.text() == "—" and "cancelled when the window closed" in d.status.text()
    assert d.past.running is None
    backend.gate = None
    assert d.start()
    finished(qtbot, d)
    assert d.status.text().startswith("Done: 35 of 35 points")


def test_the_sweeps_cash_commission_and_slippage_are_read_checked_and_shown(
    qtbot: Any, backend: FakeBackend
) -> None:
    d = lab(qtbot, backend)
    form = d.form
    for text, field, why in (("0", form.cash, "initial_cash: must be more than 0"),
                             ("-0.01", form.commission, "commission_per_share: cannot be negative"),
                             ("2bp", form.slippage, "slippage_bps: '2bp' is not a number")):  # fmt: skip
        before = field.text()
        field.setText(text)
        assert not d.start() and d.status.text() == f"Cannot start: {why}"
        assert "border" in field.styleSheet() and not backend.started
        field.setText(before)
    form.cash.setText("25,000")
    form.commission.setText("0.005")
    form.slippage.setText("2")
    assert d.start()
    assert "$25,000 cash, $0.005/share, 2 bp slippage" in d.status.text()
    assert not form.cash.styleSheet()
    spec = backend.started[0][0]
    assert (spec.initial_cash, spec.commission_per_share, spec.slippage_bps) == ("25000", "0.005", "2")
    finished(qtbot, d)
    other = lab(qtbot, backend)  # a stored sweep opened again brings its costs back into the form
    other.show_past("sw1", spec, backend.results("sw1"))
    assert (other.form.cash.text(), other.form.commission.text(), other.form.slippage.text()) == (
        "25000", "0.005", "2")  # fmt: skip
    assert "$25,000 cash, $0.005/share, 2 bp slippage" in other.status.text()


def test_past_sweeps_follow_a_run_and_a_resumed_one_says_its_time_is_this_runs(
    qtbot: Any, backend: FakeBackend
) -> None:
    backend.gate = threading.Semaphore(0)
    d = lab(qtbot, backend)
    d.show()
    assert d.start()
    # the list shows the new sweep while it runs, not only once it has ended
    wait_for("the running sweep listed", lambda: d.past.table.rowCount() == 1, 10, pump=qt_pump(qtbot))
    assert d.run is not None
    backend.gate.release(3)
    wait_for("three points", lambda: d.points.rowCount() == 3, 10, pump=qt_pump(qtbot))
    d.cancel()
    backend.gate.release(100)
    finished(qtbot, d)
    backend.gate = None
    spec = backend.stored["sw1"][0]
    assert d.resume("sw1", spec, backend.results("sw1"))
    finished(qtbot, d)
    assert d.status.text().startswith("Done: 35 of 35 points in 0 s this run.")
    assert d.progress_text.text() == "35 / 35 points in 0 s this run · 2 workers"
    assert d.start()  # a fresh sweep's time is its own
    finished(qtbot, d)
    assert d.status.text().startswith("Done: 35 of 35 points in 0 s.")
    d.show_past("sw1", spec, backend.results("sw1"))  # the last run's progress is not this sweep's:
    assert d.progress_text.text() == "35 / 35 points stored" and d.progress.value() == 35  # its own


def test_the_wheel_over_the_form_changes_no_choice_that_is_not_focused(
    qtbot: Any, backend: FakeBackend
) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    d = lab(qtbot, backend)
    d.show()
    qtbot.waitExposed(d)
    form = d.form

    def wheel(widget: Any) -> None:
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)  # fmt: skip
        QApplication.sendEvent(widget, event)

    d.start_button.setFocus()
    tf, days = form.timeframe.currentIndex(), form.days.value()
    wheel(form.timeframe)
    wheel(form.days)
    assert (form.timeframe.currentIndex(), form.days.value()) == (tf, days)
    form.timeframe.setFocus()
    wait_for("the focus", form.timeframe.hasFocus, 5, pump=qt_pump(qtbot))
    wheel(form.timeframe)  # focused: the wheel is the trader's choice
    assert form.timeframe.currentIndex() != tf


def test_a_sweep_of_one_parameter_is_one_row_of_cells_over_it(qtbot: Any, backend: FakeBackend) -> None:
    """With one parameter swept (the other held at one value) there is no second axis to choose: the
    heatmap is one row over the swept parameter, the axis choice is off, and hover names that value."""
    d = lab(qtbot, backend)
    d.form.fields["slow"].setText("20")
    d.show()
    assert d.start()
    finished(qtbot, d)
    spec = backend.started[0][0]
    assert list(spec.space) == ["fast"] and spec.fixed["slow"] == 20
    grid = d.heatmap.grid
    assert grid is not None and (grid.x, grid.y, grid.y_values) == ("fast", "", [""])
    assert [grid.shown((i, 0)) for i in range(len(grid.x_values))] == [
        figures({"fast": f})["sharpe"]
        for f in range(2, 11)  # a point carries its swept values
    ]
    assert not d.heat_y.isEnabled() and not d.heat_x.isEnabled()
    assert d.heat_caption.text().startswith("colour: ")
    assert d.heatmap.tooltip_for((3, 0)).splitlines()[0] == "fast = 5"


def test_start_and_cancel_stay_where_they_are_as_the_count_and_status_change(
    qtbot: Any, backend: FakeBackend
) -> None:
    """The count ("35 points; …") and the status line above the buttons wrap to more or fewer lines
    as they change; the buttons moved up by a line under the pointer and a click on Cancel missed."""
    d = lab(qtbot, backend)
    d.resize(1100, 700)
    d.show()
    qtbot.waitExposed(d)

    def where() -> tuple[int, int]:
        return (d.start_button.mapTo(d, d.start_button.rect().topLeft()).y(),
                d.cancel_button.mapTo(d, d.cancel_button.rect().topLeft()).y())  # fmt: skip

    before = where()
    d.form.fields["fast"].setText("2..x")
    assert not d.update_count()  # a refusal in the count
    QApplication.processEvents()  # the layout requests the new texts posted
    assert where() == before
    d.form.fields["fast"].setText("2..10")
    assert d.update_count() and d.start()
    finished(qtbot, d)
    QApplication.processEvents()
    assert d.status.text().startswith("Done:") and where() == before
