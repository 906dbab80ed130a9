"""The lab's setup form: the strategy, one field per parameter (one value: fixed; a list or a range:
swept), symbols, days of history, timeframe, search kind and budget, the metric, an optional
walk-forward, and where the sweep runs (local cluster or a scheduler's address). It reads itself into
the headless SPEC JSON form (:meth:`SweepForm.spec_data`), the one the engine parses, and fills
itself back from a stored spec (:meth:`SweepForm.load_spec`). GUI thread only.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import Timeframe
from services.domain.symbols import normalize_symbol
from services.lab.model import METRICS, FoldKind, SearchKind, SweepSpec
from services.strategies.api import Param, Strategy
from widgets import theme
from widgets.lab.backend import Engine
from widgets.lab.points_model import METRIC_TITLES, MINIMISED, value_text
from widgets.lab.space import FieldValues, SpaceError, json_value, parse_field
from widgets.models.common import named

SEARCH_TEXT = {
    SearchKind.GRID: "Grid (every combination)",
    SearchKind.RANDOM: "Random (a budget of points)",
    SearchKind.BAYES: "Bayesian, Optuna (a budget of points)",
}
#: the metrics a sweep can rank by (what the best point means)
#: the SPEC's cost fields (docs/sweeps.md)
COST_CASH, COST_COMMISSION, COST_SLIPPAGE = "initial_cash", "commission_per_share", "slippage_bps"


class CostError(ValueError):
    """A cost field that cannot be read; ``field`` names it (the SPEC's name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


RANKED = tuple(m for m in METRICS if m != "final_equity")


def compact(values: tuple[Any, ...]) -> str:
    """Values as a field shows them: ``2..20 step 2`` when evenly spaced numbers, else a list."""
    texts = [value_text(v) for v in values]
    numbers = all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values)
    if numbers and len(values) >= 3:
        steps = {Decimal(str(b)) - Decimal(str(a)) for a, b in itertools.pairwise(values)}
        if len(steps) == 1 and (step := steps.pop()) > 0:
            tail = "" if step == 1 else f" step {step.normalize():f}"
            return f"{texts[0]}..{texts[-1]}{tail}"
    return ", ".join(texts)


class SweepForm(QWidget):
    """objectName ``labForm``. Children: ``labStrategy``, ``labParam_<name>`` per parameter,
    ``labSymbols``, ``labDays``, ``labTimeframe``, ``labSearch``, ``labBudget``, ``labMetric``,
    ``labWalkForwardBox`` (``labFoldKind``, ``labFolds``, ``labInSample``, ``labOutOfSample``),
    ``labEngine``, ``labScheduler``, ``labWorkers``. Signal ``changed()`` on any edit."""

    changed = Signal()

    def __init__(
        self, registry: Mapping[str, type[Strategy]], engine: Engine, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("labForm")
        self.registry = dict(registry)
        self.specs: dict[str, Param] = {}
        self.fields: dict[str, QLineEdit] = {}
        self.strategy = named(QComboBox(), "labStrategy")
        self.strategy.addItems(sorted(self.registry))
        self.param_box = QGroupBox("Parameters")
        box = QVBoxLayout(self.param_box)
        hint = QLabel("One value: fixed. Swept: a list 2, 3, 5 or a range 2..20 step 2. Empty: the default.")
        hint.setWordWrap(True)
        hint.setStyleSheet(f"color: {theme.MUTED};")
        box.addWidget(hint)
        self.param_grid = QGridLayout()
        box.addLayout(self.param_grid)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        top.addRow("Strategy", self.strategy)
        lay.addLayout(top)
        lay.addWidget(self.param_box)
        lay.addWidget(self._data_box())
        lay.addWidget(self._costs_box())
        lay.addWidget(self._walk_forward_box())
        lay.addWidget(self._engine_box(engine))
        lay.addStretch(1)
        for combo in self.findChildren(QComboBox):  # as wide as the form, not as their longest choice
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        for w in [*self.findChildren(QComboBox), *self.findChildren(QAbstractSpinBox)]:
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a click or Tab focuses them, not the wheel
            w.installEventFilter(self)
        self.strategy.currentTextChanged.connect(lambda _: self.set_strategy())
        if "sma_crossover" in self.registry:
            self.strategy.setCurrentText("sma_crossover")
        self.set_strategy()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The mouse wheel over a choice or a number not focused scrolls the form, not the value (a
        trader scrolling down the form would change the timeframe or the folds unseen)."""
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            parent = watched.parentWidget()
            if parent is not None:
                QCoreApplication.sendEvent(parent, event)  # on to the scroll area
            return True
        return super().eventFilter(watched, event)

    # -- building -------------------------------------------------------------------------------------
    def _data_box(self) -> QGroupBox:
        box = QGroupBox("Data and search")
        form = QFormLayout(box)
        self.symbols = named(QLineEdit("AAPL"), "labSymbols", placeholderText="AAPL, MSFT")
        self.days = named(QSpinBox(), "labDays", suffix=" days", toolTip="History to run over, up to now")
        self.days.setRange(1, 3650)
        self.days.setValue(20)
        self.timeframe = named(QComboBox(), "labTimeframe")
        for tf in Timeframe:
            self.timeframe.addItem(tf.value, tf.value)
        self.search = named(QComboBox(), "labSearch")
        for kind, text in SEARCH_TEXT.items():
            self.search.addItem(text, kind.value)
        self.budget = named(QSpinBox(), "labBudget", suffix=" points")
        self.budget.setRange(1, 100_000)
        self.budget.setValue(50)
        self.metric_box = named(QComboBox(), "labMetric")
        for m in RANKED:
            self.metric_box.addItem(
                f"{METRIC_TITLES[m]} ({'lowest' if m in MINIMISED else 'highest'} best)", m
            )
        self.metric_box.setCurrentIndex(self.metric_box.findData("sharpe"))
        form.addRow("Symbols", self.symbols)
        form.addRow("History", self.days)
        form.addRow("Timeframe", self.timeframe)
        form.addRow("Search", self.search)
        form.addRow("Budget", self.budget)
        form.addRow("Rank by", self.metric_box)
        self.search.currentIndexChanged.connect(lambda _: self._search_changed())
        for w in (self.symbols,):
            w.textChanged.connect(lambda _: self.changed.emit())
        for s in (self.days, self.budget):
            s.valueChanged.connect(lambda _: self.changed.emit())
        for c in (self.timeframe, self.metric_box):
            c.currentIndexChanged.connect(lambda _: self.changed.emit())
        self._search_changed()
        return box

    def _costs_box(self) -> QGroupBox:
        """What every point starts with and pays: the sweep's cash, commission and slippage."""
        box = QGroupBox("Costs")
        form = QFormLayout(box)
        self.cash = named(QLineEdit("100000"), "labCash", toolTip="Each point's starting cash, in USD")
        self.commission = named(QLineEdit("0"), "labCommission",
                                toolTip="Charged on every fill, per share, in USD")  # fmt: skip
        self.slippage = named(QLineEdit("0"), "labSlippage", toolTip=(
            "Market and stop fills are made worse by this many basis points of the price "
            "(1 bp = 0.01 %); limit fills are not"))  # fmt: skip
        form.addRow("Initial cash ($)", self.cash)
        form.addRow("Commission ($/share)", self.commission)
        form.addRow("Slippage (bp)", self.slippage)
        for w in (self.cash, self.commission, self.slippage):
            w.textChanged.connect(lambda _: self.changed.emit())
        return box

    def costs(self) -> dict[str, str]:
        """The cost fields as the SPEC's decimal texts; ValueError naming the field when one is wrong."""
        out: dict[str, str] = {}
        for name, field, positive in ((COST_CASH, self.cash, True), (COST_COMMISSION, self.commission, False),
                                      (COST_SLIPPAGE, self.slippage, False)):  # fmt: skip
            text = field.text().strip().replace(",", "").replace("_", "") or ("0" if not positive else "")
            try:
                value = Decimal(text)
            except ArithmeticError:
                raise CostError(name, f"{text or 'nothing'!r} is not a number") from None
            if not value.is_finite() or value < 0 or (positive and value == 0):
                raise CostError(name, "must be more than 0" if positive else "cannot be negative")
            out[name] = str(value)
        return out

    def _walk_forward_box(self) -> QGroupBox:
        box = named(QGroupBox("Walk-forward"), "labWalkForwardBox", checkable=True, checked=False)
        form = QFormLayout(box)
        self.fold_kind = named(QComboBox(), "labFoldKind")
        self.fold_kind.addItem("Rolling (in-sample window moves)", FoldKind.ROLLING.value)
        self.fold_kind.addItem("Anchored (in-sample grows from the start)", FoldKind.ANCHORED.value)
        self.folds = named(QSpinBox(), "labFolds")
        self.folds.setRange(1, 100)
        self.folds.setValue(4)
        self.in_sample = named(QSpinBox(), "labInSample", suffix=" days")
        self.in_sample.setRange(1, 3650)
        self.in_sample.setValue(10)
        self.out_of_sample = named(QSpinBox(), "labOutOfSample", suffix=" days")
        self.out_of_sample.setRange(1, 3650)
        self.out_of_sample.setValue(5)
        form.addRow("Folds", self.folds)
        form.addRow("Kind", self.fold_kind)
        form.addRow("In-sample", self.in_sample)
        form.addRow("Out-of-sample", self.out_of_sample)
        self.walk_forward = box
        box.toggled.connect(lambda _: self.changed.emit())
        for s in (self.folds, self.in_sample, self.out_of_sample):
            s.valueChanged.connect(lambda _: self.changed.emit())
        self.fold_kind.currentIndexChanged.connect(lambda _: self.changed.emit())
        return box

    def _engine_box(self, engine: Engine) -> QGroupBox:
        box = QGroupBox("Run on")
        form = QFormLayout(box)
        self.engine_kind = named(QComboBox(), "labEngine")
        self.engine_kind.addItem("This computer (local cluster)", "local")
        self.engine_kind.addItem("A Dask cluster (scheduler address)", "cluster")
        self.scheduler = named(QLineEdit(engine.scheduler or ""), "labScheduler",
                               placeholderText="tls://scheduler.example:8786")  # fmt: skip
        self.workers = named(QSpinBox(), "labWorkers", specialValueText="automatic (cores − 1)",
                             toolTip="Local cluster: worker processes, one thread each")  # fmt: skip
        self.workers.setRange(0, max(1, os.cpu_count() or 1))  # one local worker per CPU at most
        self.workers.setValue(engine.workers or 0)
        form.addRow("Engine", self.engine_kind)
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Workers", self.workers)
        self.engine_kind.setCurrentIndex(0 if engine.scheduler is None else 1)
        self.engine_kind.currentIndexChanged.connect(lambda _: self._engine_changed())
        self._engine_changed()
        return box

    def _search_changed(self) -> None:
        self.budget.setEnabled(self.search.currentData() != SearchKind.GRID.value)
        self.changed.emit()

    def _engine_changed(self) -> None:
        cluster = self.engine_kind.currentData() == "cluster"
        self.scheduler.setEnabled(cluster)
        self.workers.setEnabled(not cluster)

    def set_strategy(self, texts: Mapping[str, str] | None = None) -> None:
        """One field per parameter of the chosen strategy (``texts``: what to put in them)."""
        while self.param_grid.count():
            item = self.param_grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        key = self.strategy.currentText()
        params = self.registry[key].param_specs() if key in self.registry else ()
        self.specs = {p.name: p for p in params if p.name != "symbols"}
        self.fields = {}
        for row, spec in enumerate(self.specs.values()):
            label = QLabel(spec.name.replace("_", " "))
            label.setToolTip(spec.description)
            field = named(QLineEdit((texts or {}).get(spec.name, "")), f"labParam_{spec.name}")
            field.setPlaceholderText(f"{spec.to_text(spec.default)} (default)")
            bounds = ""
            if spec.minimum is not None or spec.maximum is not None:
                bounds = f"; from {spec.minimum if spec.minimum is not None else '…'} to "
                bounds += f"{spec.maximum if spec.maximum is not None else '…'}"
            field.setToolTip(f"{spec.description} ({spec.type.__name__}{bounds})")
            field.textChanged.connect(lambda _: self.changed.emit())
            self.param_grid.addWidget(label, row, 0)
            self.param_grid.addWidget(field, row, 1)
            self.fields[spec.name] = field
        # the keyboard goes down the form: strategy, its parameters, then the data (new fields come
        # last in Qt's focus chain otherwise)
        chain = [self.strategy, *self.fields.values(), self.symbols]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)
        self.changed.emit()

    # -- reading --------------------------------------------------------------------------------------
    def mark(self, name: str | None) -> None:
        """Outline the field ``name`` as wrong (None: none): a parameter or a cost."""
        costs = {COST_CASH: self.cash, COST_COMMISSION: self.commission, COST_SLIPPAGE: self.slippage}
        for key, field in {**self.fields, **costs}.items():
            field.setStyleSheet(f"border: 1px solid {theme.DOWN};" if key == name else "")

    def values(self) -> list[FieldValues]:
        """Every parameter field read; raises :class:`SpaceError` naming the first bad one."""
        return [parse_field(spec, self.fields[name].text()) for name, spec in self.specs.items()]

    def swept(self) -> list[str]:
        """The parameters swept (names), or [] while a field cannot be read."""
        try:
            return [f.name for f in self.values() if f.swept]
        except SpaceError:
            return []

    def engine(self) -> Engine:
        if self.engine_kind.currentData() == "cluster":
            return Engine(self.scheduler.text().strip() or None, None)
        return Engine(None, self.workers.value() or None)

    def spec_data(self) -> dict[str, Any]:
        """The sweep as the headless SPEC JSON form. Raises :class:`SpaceError` (a parameter
        field) or ValueError (anything else in the form)."""
        fields = self.values()
        symbols: list[str] = []
        for text in self.symbols.text().replace(";", ",").split(","):
            if text.strip():
                try:
                    symbol = normalize_symbol(text)
                except ValueError as exc:
                    raise ValueError(f"symbols: {exc}") from None
                symbols += [symbol] if symbol not in symbols else []
        if not symbols:
            raise ValueError("symbols: name at least one symbol")
        if self.engine_kind.currentData() == "cluster" and not self.scheduler.text().strip():
            raise ValueError("scheduler: give the Dask scheduler's address, or run on this computer")
        search = SearchKind(self.search.currentData())
        data: dict[str, Any] = {
            "strategy": self.strategy.currentText(),
            "symbols": symbols,
            "days": self.days.value(),
            "timeframe": self.timeframe.currentData(),
            "search": search.value,
            "space": {f.name: [json_value(v) for v in f.values] for f in fields if f.swept},
            "fixed": {f.name: json_value(f.values[0]) for f in fields if not f.swept},
            "metric": self.metric_box.currentData(),
            **self.costs(),
        }
        if search is not SearchKind.GRID:
            data["points"] = self.budget.value()
        if self.walk_forward.isChecked():
            data["walk_forward"] = {
                "kind": self.fold_kind.currentData(),
                "folds": self.folds.value(),
                "in_sample_days": self.in_sample.value(),
                "out_of_sample_days": self.out_of_sample.value(),
            }
        return data

    # -- filling --------------------------------------------------------------------------------------
    def load_spec(self, spec: SweepSpec) -> None:
        """Fill the form from a stored sweep (to look at it again or resume it)."""
        if spec.strategy in self.registry:
            self.strategy.blockSignals(True)
            self.strategy.setCurrentText(spec.strategy)
            self.strategy.blockSignals(False)
        texts = {name: compact(tuple(values)) for name, values in spec.space.items()}
        texts.update({name: value_text(v) for name, v in spec.fixed.items() if name != "symbols"})
        self.set_strategy(texts)
        self.symbols.setText(", ".join(spec.symbols))
        self.days.setValue(max(1, round((spec.end - spec.start).total_seconds() / 86_400)))
        self.timeframe.setCurrentIndex(max(0, self.timeframe.findData(spec.timeframe.value)))
        self.search.setCurrentIndex(max(0, self.search.findData(spec.search.value)))
        if spec.max_points:
            self.budget.setValue(spec.max_points)
        self.metric_box.setCurrentIndex(max(0, self.metric_box.findData(spec.metric)))
        self.cash.setText(spec.initial_cash)
        self.commission.setText(spec.commission_per_share)
        self.slippage.setText(spec.slippage_bps)
        wf = spec.walk_forward
        self.walk_forward.setChecked(wf is not None)
        if wf is not None:
            self.fold_kind.setCurrentIndex(max(0, self.fold_kind.findData(wf.kind.value)))
            self.folds.setValue(wf.folds)
            self.in_sample.setValue(wf.in_sample_days)
            self.out_of_sample.setValue(wf.out_of_sample_days)
