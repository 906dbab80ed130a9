"""The strategies panel (``strategiesPanel``): available built-ins with a parameter editor generated
from their declarations, the strategies the runner holds with state, P&L, orders, last signal and
error text, the start / pause / resume / stop actions, and "Backtest…".

The panel reads :meth:`StrategyRunner.infos` (in memory, cheap) on a timer and calls the runner's
own methods; every number shown comes from the runner. Runner calls happen on the GUI thread,
which is the service loop's thread under qasync (the runner's thread rule). GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QSize, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.strategies.api import ParamError, Strategy, StrategyState
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.columns import Column, KeyedTableModel
from widgets.models.common import named
from widgets.models.table import SORT_ROLE
from widgets.param_editor import ParamEditor

log = logging.getLogger("heron.widgets.strategies")

STATE_COLORS = {
    StrategyState.RUNNING: theme.UP,
    StrategyState.PAUSED: theme.WARN,
    StrategyState.STOPPED: theme.MUTED,
    StrategyState.CREATED: theme.MUTED,
    StrategyState.ERROR: theme.DOWN,
}


def _money(v: Any) -> str:
    return f"{v:,.2f}"


STRATEGY_COLUMNS: list[Column[Any]] = [
    Column("Name", lambda i: i.name, tooltip=lambda i: f"kind {i.key}"),
    Column("State", lambda i: i.state.value, foreground=lambda i: STATE_COLORS.get(i.state)),
    Column("Symbols", lambda i: ", ".join(i.symbols)),
    Column("Orders", lambda i: str(i.orders), sort=lambda i: i.orders, numeric=True),
    Column("P&L", lambda i: _money(i.pnl), sort=lambda i: i.pnl, numeric=True,
           foreground=lambda i: theme.sign_hex(i.pnl),
           tooltip=lambda i: f"realized {_money(i.realized)}"),
    Column("Last signal", lambda i: i.last_signal.value if i.last_signal else "—"),
    Column("Rejected", lambda i: str(i.rejected), sort=lambda i: i.rejected, numeric=True,
           tooltip=lambda i: i.last_rejection),
    Column("Error", lambda i: i.error or "", tooltip=lambda i: i.traceback or i.error,
           foreground=lambda i: theme.DOWN if i.error else None),
]  # fmt: skip


def strategy_model(parent: Any = None) -> KeyedTableModel[Any]:
    return KeyedTableModel(STRATEGY_COLUMNS, key=lambda i: i.name, parent=parent)


class SnugButton(QPushButton):
    """A push button that may shrink to its label and padding: the style's 80-px floor for each of
    Start, Pause, Stop and Backtest… made the panel scroll sideways in a 1366-px window's dock."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.setSizePolicy(
            QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed
        )  # may shrink to the hint below

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self.fontMetrics().horizontalAdvance(self.text()) + 20), hint.height())


class StrategiesPanel(QWidget):
    """objectName ``strategiesPanel``. Children: ``availableList``, ``paramEditor``,
    ``strategyName``, ``addStrategy``, ``strategyTable``, ``startStrategy``, ``pauseStrategy``,
    ``stopStrategy``, ``strategyError``, ``backtestButton``, ``strategyMessage``."""

    def __init__(
        self,
        runner: Any | None,
        registry: Mapping[str, type[Strategy]],
        *,
        open_backtest: Callable[[str | None, dict[str, str] | None], None] | None = None,
        refresh_ms: int = 1000,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("strategiesPanel")
        self.runner = runner
        self.registry = dict(registry)
        self.open_backtest = open_backtest
        self.model = strategy_model(self)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_available())
        split.addWidget(self._build_running())
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        if self.available.count():
            self.available.setCurrentRow(0)
        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.refresh)
        self.set_runner(runner)

    def _build_available(self) -> QGroupBox:
        """The left side: the strategy kinds, the chosen kind's parameters, Add && start."""
        self.available = named(QListWidget(), "availableList")
        for key, cls in sorted(self.registry.items()):
            item = QListWidgetItem(key)
            item.setToolTip(cls.DESCRIPTION)
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.available.addItem(item)
        self.description = named(QLabel(), "strategyDescription")
        self.description.setWordWrap(True)
        self.description.setStyleSheet(f"color: {theme.MUTED};")
        self.params = ParamEditor()
        self.name = named(QLineEdit(), "strategyName", placeholderText="instance name (default: kind)")
        self.add = named(QPushButton("Add && start"), "addStrategy")
        self.add.clicked.connect(self.add_selected)
        self.message = named(MessageLabel(), "strategyMessage")
        self.message.setWordWrap(True)
        self.available.currentItemChanged.connect(lambda *_: self._kind_changed())
        left = QGroupBox("Available")
        ll = QVBoxLayout(left)
        ll.addWidget(self.available, 1)
        ll.addWidget(self.description)
        ll.addWidget(self.params)
        row = QHBoxLayout()
        row.addWidget(self.name, 1)
        row.addWidget(self.add)
        ll.addLayout(row)
        ll.addWidget(self.message)
        return left

    def _build_running(self) -> QGroupBox:
        """The right side: the running strategies, their actions and the selected one's errors."""
        self._build_table()
        self.start = named(SnugButton("Start"), "startStrategy")
        self.start.clicked.connect(lambda: self._act("start"))
        self.pause = named(SnugButton("Pause"), "pauseStrategy")
        self.pause.clicked.connect(lambda: self._act("pause"))
        self.stop = named(SnugButton("Stop"), "stopStrategy")
        self.stop.clicked.connect(lambda: self._act("stop"))
        self.backtest = named(SnugButton("Backtest…"), "backtestButton")
        self.backtest.clicked.connect(self._backtest)
        self.backtest.setEnabled(self.open_backtest is not None)
        actions = QHBoxLayout()
        for b in (self.start, self.pause, self.stop):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.backtest)
        self.error = named(QPlainTextEdit(), "strategyError")
        self.error.setReadOnly(True)
        self.error.setPlaceholderText("Errors of the selected strategy appear here")
        self.error.setMaximumHeight(120)
        self.error.setStyleSheet(f"color: {theme.DOWN}; font-family: monospace;")
        right = QGroupBox("Strategies")
        rl = QVBoxLayout(right)
        rl.addWidget(self.table, 1)
        rl.addLayout(actions)
        rl.addWidget(self.error)
        return right

    def _build_table(self) -> None:
        self.table = named(QTableView(), "strategyTable")
        proxy = QSortFilterProxyModel(self)
        proxy.setSourceModel(self.model)
        proxy.setSortRole(SORT_ROLE)
        self.proxy = proxy
        self.table.setModel(proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in enumerate((130, 70, 120, 60, 90, 80, 70)):
            self.table.horizontalHeader().resizeSection(col, width)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())

    def set_runner(self, runner: Any | None) -> None:
        self.runner = runner
        self.add.setEnabled(runner is not None)
        if runner is None:
            self._timer.stop()
            self.message.setText("The strategy runner is not running in this session; backtests still work.")
        else:
            self._timer.start()
        self.refresh()

    # -- view -------------------------------------------------------------------------------------
    def _kind_changed(self) -> None:
        key = self.selected_kind()
        if key is None:
            self.params.set_specs(())
            return
        cls = self.registry[key]
        self.description.setText(cls.DESCRIPTION)
        self.params.set_specs(cls.param_specs())

    def selected_kind(self) -> str | None:
        item = self.available.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def refresh(self) -> None:
        if self.runner is None:
            self.model.set_rows([])
        else:
            self.model.set_rows(self.runner.infos())
        self._update_actions()

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return str(self.model.payload_at(self.proxy.mapToSource(rows[0]).row()).name)

    def select(self, name: str) -> None:
        row = self.model.row_for_key(name)
        if row is not None:
            self.table.selectRow(self.proxy.mapFromSource(self.model.index(row, 0)).row())

    def _update_actions(self) -> None:
        name = self.selected_name()
        info = None if name is None or self.runner is None else self.runner.info(name)
        state = None if info is None else info.state
        self.start.setEnabled(state in (StrategyState.CREATED, StrategyState.STOPPED, StrategyState.ERROR))
        self.start.setText("Restart" if state is StrategyState.ERROR else "Start")
        self.pause.setEnabled(state in (StrategyState.RUNNING, StrategyState.PAUSED))
        self.pause.setText("Resume" if state is StrategyState.PAUSED else "Pause")
        self.stop.setEnabled(state in (StrategyState.RUNNING, StrategyState.PAUSED))
        text = "" if info is None else (info.traceback or info.error or "")
        if self.error.toPlainText() != text:
            self.error.setPlainText(text)

    # -- actions ----------------------------------------------------------------------------------
    def _say(self, text: str, ok: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {theme.ok_color(ok)};")

    def add_selected(self) -> str | None:
        """Create the selected strategy with the edited parameters and start it."""
        key = self.selected_kind()
        if key is None or self.runner is None:
            return None
        try:
            strategy = self.registry[key](self.params.values())
            name = self.runner.add(strategy, self.name.text().strip() or None)
        except (ParamError, ValueError) as exc:
            self._say(str(exc), ok=False)
            return None
        self.runner.start(name)
        self.name.clear()
        self.refresh()
        self.select(name)
        info = self.runner.info(name)
        if info.state is StrategyState.ERROR:
            self._say(f"{name} failed on start: {info.error}", ok=False)
        else:
            self._say(f"{name} started", ok=True)
        return str(name)

    def _act(self, action: str) -> None:
        name = self.selected_name()
        if name is None or self.runner is None:
            return
        state = self.runner.state(name)
        try:
            if action == "start":
                self.runner.start(name)
            elif action == "pause":
                (self.runner.resume if state is StrategyState.PAUSED else self.runner.pause)(name)
            elif action == "stop":
                self.runner.stop(name)
        except ValueError as exc:
            self._say(str(exc), ok=False)
        self.refresh()

    def _backtest(self) -> None:
        if self.open_backtest is None:
            return
        name = self.selected_name()
        if name is not None and self.runner is not None:
            info = self.runner.info(name)
            self.open_backtest(info.key, dict(info.params))
            return
        key = self.selected_kind()
        try:
            params = {
                s.name: s.to_text(v)
                for s, v in zip(self.params.specs, self.params.values().values(), strict=True)
            }
        except ParamError:
            params = None
        self.open_backtest(key, params)


def preview_runner(
    registry: Mapping[str, type[Strategy]], bars: int = 50_000
) -> tuple[Any, Callable[[], None]]:
    """A real runner whose intents fill in the backtest's simulated broker; ``step()`` feeds one
    generated bar per symbol. For the preview only (generated data, never market data)."""
    from services.strategies.backtest import BacktestConfig, SimulatedBroker
    from services.strategies.runner import StrategyRunner
    from services.strategies.synthetic import synthetic_bars

    broker = SimulatedBroker(BacktestConfig())
    runner = StrategyRunner(broker, run_token="pv")
    broker.runner = runner
    symbols = ("AAPL", "MSFT", "NVDA")
    feeds = {s: iter(synthetic_bars(s, bars, seed=i + 3)) for i, s in enumerate(symbols)}

    def step() -> None:
        for it in feeds.values():
            bar = next(it, None)
            if bar is not None:
                broker.process_bar(bar)
                broker.last[bar.symbol] = bar.close
                runner.on_bar(bar)

    return runner, step


if __name__ == "__main__":  # preview: uv run python -m widgets.strategies [--screenshot FILE]
    import sys

    from services.strategies.builtin import builtin_registry
    from widgets.backtest_dialog import BacktestDialog
    from widgets.standalone import make_app, preview_args, show_preview

    args = preview_args("Heron strategies panel preview (a real runner over generated bars)")
    app = make_app()
    registry = builtin_registry()
    runner, step = preview_runner(registry)
    runner.add(registry["sma_crossover"]({"symbols": "AAPL", "fast": 5, "slow": 20}), "sma_aapl")
    runner.add(registry["rsi_reversion"]({"symbols": "MSFT"}), "rsi_msft")
    runner.add(registry["sma_crossover"]({"symbols": "NVDA", "fast": 8, "slow": 40}), "sma_nvda")
    for name in ("sma_aapl", "rsi_msft", "sma_nvda"):
        runner.start(name)
    runner.pause("sma_nvda")
    for _ in range(600):
        step()

    def open_bt(kind: str | None, params: dict[str, str] | None) -> None:
        BacktestDialog(registry, kind=kind, params=params, parent=panel).show()

    panel = StrategiesPanel(runner, registry, open_backtest=open_bt, refresh_ms=500)
    panel.resize(1150, 520)
    timer = QTimer()
    timer.timeout.connect(step)
    timer.start(50)
    panel.select("sma_aapl")
    sys.exit(show_preview(app, panel, args))
