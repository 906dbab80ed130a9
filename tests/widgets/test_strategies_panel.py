"""Strategies panel over a real StrategyRunner: parameter editor, lifecycle, errors shown."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QSpinBox

from services.strategies.api import Param, Strategy, StrategyState
from services.strategies.builtin import builtin_registry
from widgets.param_editor import ParamEditor
from widgets.strategies import StrategiesPanel, preview_runner


class Exploding(Strategy):
    KEY = "exploding"
    DESCRIPTION = "Raises on the third bar (test strategy)."
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("after", int, 3, "bars before failing", minimum=1, maximum=10),
    )

    def on_start(self) -> None:
        self.ctx.state["seen"] = 0

    def on_bar(self, bar: Any) -> None:
        self.ctx.state["seen"] += 1
        if self.ctx.state["seen"] >= self.params["after"]:
            raise RuntimeError("division by zero in the signal")


@pytest.fixture
def registry() -> dict[str, type[Strategy]]:
    return {**builtin_registry(), "exploding": Exploding}


@pytest.fixture
def rig(qtbot: Any, registry: dict[str, type[Strategy]]) -> tuple[StrategiesPanel, Any, Any, list[Any]]:
    runner, step = preview_runner(registry, bars=1000)
    opened: list[Any] = []
    panel = StrategiesPanel(
        runner, registry, open_backtest=lambda k, p: opened.append((k, p)), refresh_ms=60_000
    )
    qtbot.addWidget(panel)
    return panel, runner, step, opened


def _choose(panel: StrategiesPanel, key: str) -> None:
    item = panel.available.findItems(key, Qt.MatchFlag.MatchExactly)[0]
    panel.available.setCurrentItem(item)


def test_param_editor_is_typed_from_declarations(qtbot: Any) -> None:
    specs = builtin_registry()["sma_crossover"].param_specs()
    editor = ParamEditor(specs)
    qtbot.addWidget(editor)
    fast = editor.editors["fast"]
    assert isinstance(fast, QSpinBox) and (fast.minimum(), fast.maximum()) == (1, 100_000)
    assert isinstance(editor.editors["allow_short"], QCheckBox)
    values = editor.values()
    assert values["fast"] == 10 and values["symbols"] == ("AAPL",)
    editor.set_value_text("qty", "-3")
    editor.set_value_text("symbols", "")
    with pytest.raises(ValueError, match="qty"):
        editor.values()
    assert not editor.errors["qty"].isHidden() and "must be >= 0" in editor.errors["qty"].text()
    assert not editor.errors["symbols"].isHidden()


def test_model_passes_qtmodeltester(qtmodeltester: Any, rig: Any) -> None:
    panel, _runner, step, _ = rig
    _choose(panel, "sma_crossover")
    panel.add_selected()
    panel.params.set_value_text("symbols", "MSFT")
    panel.name.setText("second")
    panel.add_selected()
    for _ in range(50):
        step()
    panel.refresh()
    qtmodeltester.check(panel.model, force_py=True)


def test_add_start_pause_stop_show_runner_state(rig: Any) -> None:
    panel, runner, step, _ = rig
    _choose(panel, "sma_crossover")
    panel.params.set_value_text("fast", "3")
    panel.params.set_value_text("slow", "8")
    panel.name.setText("fast_aapl")
    assert panel.add_selected() == "fast_aapl"
    assert runner.state("fast_aapl") is StrategyState.RUNNING
    assert runner.strategy("fast_aapl").params["fast"] == 3
    for _ in range(400):
        step()
    panel.refresh()
    row = panel.model.rows()[panel.model.row_for_key("fast_aapl")]
    assert row.orders > 0 and row.last_signal is not None
    shown_pnl = panel.model.data(panel.model.index(panel.model.row_for_key("fast_aapl"), 4))
    assert shown_pnl == f"{runner.pnl('fast_aapl'):,.2f}"
    panel.select("fast_aapl")
    assert panel.pause.isEnabled() and not panel.start.isEnabled()
    panel.pause.click()
    assert runner.state("fast_aapl") is StrategyState.PAUSED and panel.pause.text() == "Resume"
    panel.pause.click()
    assert runner.state("fast_aapl") is StrategyState.RUNNING
    panel.stop.click()
    assert runner.state("fast_aapl") is StrategyState.STOPPED and panel.start.isEnabled()


def test_invalid_params_are_refused_with_the_reason(rig: Any) -> None:
    panel, runner, _, _ = rig
    _choose(panel, "sma_crossover")
    panel.params.set_value_text("qty", "abc")
    assert panel.add_selected() is None
    assert "qty" in panel.message.text() and runner.names() == []
    panel.params.set_value_text("qty", "1")
    panel.name.setText("bad name!")
    assert panel.add_selected() is None and "must be 1-40" in panel.message.text()


@pytest.mark.expected_log(
    r"^services\.strategies\.runner: strategy exploding failed and was stopped: RuntimeError:",
)
def test_strategy_exception_is_shown(rig: Any) -> None:
    panel, runner, step, _ = rig
    _choose(panel, "exploding")
    assert panel.add_selected() == "exploding"
    for _ in range(3):
        step()
    panel.refresh()
    assert runner.state("exploding") is StrategyState.ERROR
    r = panel.model.row_for_key("exploding")
    assert panel.model.data(panel.model.index(r, 1)) == "error"
    assert panel.model.data(panel.model.index(r, 7)) == "RuntimeError: division by zero in the signal"
    panel.select("exploding")
    assert "division by zero in the signal" in panel.error.toPlainText()
    assert "Traceback" in panel.error.toPlainText() or "RuntimeError" in panel.error.toPlainText()
    assert panel.start.isEnabled() and panel.start.text() == "Restart"


def test_backtest_button_passes_the_selection(rig: Any) -> None:
    panel, runner, _, opened = rig
    _choose(panel, "rsi_reversion")
    panel.backtest.click()
    assert opened[-1][0] == "rsi_reversion" and opened[-1][1]["symbols"] == "AAPL"
    _choose(panel, "sma_crossover")
    panel.add_selected()
    panel.select("sma_crossover")
    panel.backtest.click()
    assert opened[-1] == ("sma_crossover", runner.info("sma_crossover").params)


def test_without_runner_backtests_still_work(qtbot: Any, registry: Any) -> None:
    panel = StrategiesPanel(None, registry, open_backtest=lambda k, p: None)
    qtbot.addWidget(panel)
    assert not panel.add.isEnabled() and panel.backtest.isEnabled()
    assert "not running" in panel.message.text()


def test_the_panel_fits_the_dock_a_1366_px_window_gives_it_without_scrolling_sideways(
    qtbot: Any, registry: Any
) -> None:
    """On a 1366x768 screen the Strategies tab shares the bottom-right dock, some 535 px wide. The
    style's 80-px floor for each of Start, Pause, Stop and Backtest… made the panel wider than that,
    so it scrolled sideways with Backtest… cut; each button is now as wide as its label needs. Also
    with a larger font (11 pt): offscreen text measures narrower than on the X display where the
    overflow was seen, and at the default offscreen font the old panel fitted."""
    from PySide6.QtGui import QFont

    panel = StrategiesPanel(None, registry, open_backtest=lambda k, p: None)
    qtbot.addWidget(panel)
    assert panel.minimumSizeHint().width() <= 535
    large = QFont(panel.font())
    large.setPointSize(11)
    bigger = StrategiesPanel(None, registry, open_backtest=lambda k, p: None)
    qtbot.addWidget(bigger)
    bigger.setFont(large)
    assert bigger.minimumSizeHint().width() <= 535
    panel.resize(535, 400)
    panel.show()
    qtbot.waitExposed(panel)
    for button in (panel.start, panel.pause, panel.stop, panel.backtest):
        assert button.width() >= button.fontMetrics().horizontalAdvance(button.text()) + 8, button.text()
        assert button.geometry().right() < button.parentWidget().width(), button.text()
