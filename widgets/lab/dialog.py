"""The Strategy lab: define a parameter space, run the sweep (on this computer's local cluster or a
Dask cluster), watch it fill a heatmap and a table of points, compare walk-forward folds, and open
any point in the backtest dialog. Past sweeps can be opened again and an unfinished one resumed.

Before a start the window shows how many points the space holds and how many combinations the
strategy refuses (fast ≥ slow...). A sweep runs on the engine's coordinator thread; its reports
reach this window through a :class:`~widgets.lab.bridge.LabBridge` in batches at most ten a second,
so the window stays responsive whatever the rate of points. Every problem is said in words in
``labStatus``. GUI thread only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from services.lab.folds import FoldError, make_folds
from services.lab.model import PointResult, SweepOutcome, SweepProgress, SweepSpec, SweepState
from services.strategies.api import Strategy
from widgets import theme
from widgets.lab.backend import Engine, LabBackend, SweepRun
from widgets.lab.bridge import LabBridge
from widgets.lab.expansion import Expansion, Expansions, expansion_key
from widgets.lab.form import SweepForm
from widgets.lab.heatmap import HeatGrid, Heatmap
from widgets.lab.past import PastSweeps
from widgets.lab.points_model import (
    METRIC_TITLES,
    PointsModel,
    PointsProxy,
    value_text,
)
from widgets.lab.space import MAX_GRID, SpaceError, grid_size
from widgets.lab.texts import best_text, costs_text, progress_text
from widgets.lab.walk_forward import WalkForwardView
from widgets.message_label import MessageLabel
from widgets.models.common import fmt_duration, named
from widgets.tasks import TaskBridge

log = logging.getLogger("heron.widgets.lab")

#: room left on each side of the window for the window manager's frame and title bar
FRAME_PX = 30
#: ``open_backtest(strategy, params as text, spec, point)``: the backtest dialog on one point of the
#: sweep ``spec`` (its bars, symbols, window and costs); raises ValueError saying why it cannot
OpenBacktest = Callable[[str, dict[str, str], SweepSpec, PointResult], object]


class StrategyLabDialog(QDialog):
    """objectName ``strategyLabDialog``. Children: the form (:class:`SweepForm`), ``labCount``,
    ``labStart``, ``labCancel``, ``labProgress``, ``labProgressText``, ``labStatus``, ``labHeatmap``
    with ``labHeatX`` / ``labHeatY``, ``labPoints`` (table) and ``labOpenPoint``, ``labWalkForward``,
    ``labPast``."""

    def __init__(
        self,
        registry: Mapping[str, type[Strategy]],
        backend: LabBackend,
        *,
        engine: Engine = Engine(),  # noqa: B008 (frozen)
        open_backtest: OpenBacktest | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("strategyLabDialog")
        self.setWindowTitle("Strategy lab")
        self.resize(1280, 800)
        self.backend = backend
        self.open_backtest = open_backtest
        self.tasks = TaskBridge(self)
        self.run: SweepRun | None = None
        #: the running (or last) sweep was resumed: its elapsed time is this run's only
        self.resumed = False
        self.bridge: LabBridge | None = None
        #: the sweep shown (running, finished or reopened) and its valid points
        self.spec: SweepSpec | None = None
        self.expected: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.expansions = Expansions(backend, self.tasks)
        self._placed = False
        self.form = SweepForm(registry, engine)
        self.points = PointsModel(self)
        self.proxy = PointsProxy(self)
        self.proxy.setSourceModel(self.points)
        self.heatmap = Heatmap()
        self.walk = WalkForwardView()
        self.past = PastSweeps(backend, self.tasks)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(150)
        self._count_timer.timeout.connect(self.update_count)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_setup())
        split.addWidget(self._build_results())
        split.setStretchFactor(1, 3)
        split.setSizes([400, 880])
        QVBoxLayout(self).addWidget(split)
        self.form.changed.connect(self._count_timer.start)
        self.past.opened.connect(self.show_past)
        self.past.resumed.connect(self.resume)
        self.update_count()

    # -- building -------------------------------------------------------------------------------------
    def _build_setup(self) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form)
        scroll.setMinimumWidth(340)
        self.count = named(MessageLabel(), "labCount")
        self.start_button = named(QPushButton("Start sweep"), "labStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = named(QPushButton("Cancel"), "labCancel", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = named(QProgressBar(), "labProgress")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_text = named(QLabel("—"), "labProgressText")
        self.progress_text.setStyleSheet(f"color: {theme.MUTED};")
        # ten new texts a second: the label never asks the dialog for a new layout (one line, the
        # column's width), so each is one small repaint
        self.progress_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.progress_text.setMinimumHeight(self.progress_text.fontMetrics().height())
        self.status = named(MessageLabel(), "labStatus")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        side = QWidget()
        lay = QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.count)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_text)
        lay.addWidget(self.status)
        # last, at the window's bottom edge: the count and the status above them change height as
        # their texts come and go, and a button that moves is clicked where it was
        lay.addLayout(buttons)
        return side

    def _build_results(self) -> QWidget:
        self.heat_x = named(QComboBox(), "labHeatX")
        self.heat_y = named(QComboBox(), "labHeatY")
        for combo in (self.heat_x, self.heat_y):
            combo.currentIndexChanged.connect(lambda _: self._rebuild_heatmap())
        axes = QHBoxLayout()
        axes.addWidget(QLabel("Heatmap: across"))
        axes.addWidget(self.heat_x)
        axes.addWidget(QLabel("up"))
        axes.addWidget(self.heat_y)
        self.heat_caption = named(QLabel(""), "labHeatCaption")
        self.heat_caption.setStyleSheet(f"color: {theme.MUTED};")
        axes.addWidget(self.heat_caption, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addLayout(axes)
        tl.addWidget(self.heatmap, 1)
        self.tabs = named(QTabWidget(), "labTabs")
        self.tabs.addTab(self._build_table(), "Points")
        self.tabs.addTab(self.walk, "Walk-forward")
        self.tabs.addTab(self.past, "Past sweeps")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 400])  # the heatmap first: the tabs' plot would take half otherwise
        return split

    def _build_table(self) -> QWidget:
        self.table = named(QTableView(), "labPoints")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda index: self.open_point(index))
        self.open_button = named(QPushButton("Open in backtest…"), "labOpenPoint", enabled=False)
        self.open_button.clicked.connect(lambda: self.open_point())
        self.table.selectionModel().selectionChanged.connect(
            lambda *_: self.open_button.setEnabled(
                self._selected() is not None and self.open_backtest is not None
            )
        )
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_button)
        lay.addLayout(row)
        return box

    # -- sizing ---------------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        """Never larger than the screen's free area, its frame included (1366×768 screens too)."""
        super().showEvent(event)
        screen = self.screen()
        if screen is None:
            return
        area = screen.availableGeometry()
        self.setMaximumSize(area.size())
        if not self._placed:
            self._placed = True
            self.form.strategy.setFocus()  # the keyboard starts at the top of the form
            self.resize(self.size().boundedTo(QSize(area.width() - FRAME_PX, area.height() - 2 * FRAME_PX)))
            self.move(area.center() - self.rect().center())

    # -- words ----------------------------------------------------------------------------------------
    def say(self, text: str, ok: bool | None) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {theme.ok_color(ok)};")

    # -- the space ------------------------------------------------------------------------------------
    def read_spec(self) -> SweepSpec:
        """The form as a validated spec; raises ValueError (SpaceError, the engine's SpecError)
        naming the field, which is outlined."""
        self.form.mark(None)
        try:
            fields = self.form.values()
            if grid_size([f for f in fields if f.swept]) > MAX_GRID:
                raise ValueError(f"the grid has {grid_size(fields):,} points, more than {MAX_GRID:,}; "
                                 "narrow the ranges or use random or Bayesian search")  # fmt: skip
            return self.backend.parse(self.form.spec_data())
        except SpaceError as exc:
            self.form.mark(exc.name)
            raise
        except ValueError as exc:
            field = str(getattr(exc, "field", "") or "")
            self.form.mark(field.rpartition(".")[2] or None)
            raise

    def expansion(self, spec: SweepSpec) -> Expansion | None:
        return self.expansions.get(spec)

    def _expand_later(self, spec: SweepSpec, then: Callable[[], object]) -> None:
        def failed(exc: BaseException) -> None:
            self.count.setText(f"Not ready: {exc}")
            self.count.setStyleSheet(f"color: {theme.DOWN};")

        self.expansions.later(spec, then, failed)

    def _unreadable(self) -> bool:
        try:
            self.form.values()
        except SpaceError:
            return True
        return False

    def update_count(self) -> bool:
        """How many points the space holds and how many combinations are refused; False (and why,
        in ``labCount``) when the form cannot be read."""
        try:
            if not self.form.swept() and not self._unreadable():
                self.form.mark(None)
                self.count.setText("Give at least one parameter several values to sweep it: "
                                   "a list 2, 3, 5 or a range 2..20 step 2.")  # fmt: skip
                self.count.setStyleSheet(f"color: {theme.MUTED};")
                return False
            spec = self.read_spec()
            expansion = self.expansion(spec)
        except ValueError as exc:
            self.count.setText(f"Not ready: {exc}")
            self.count.setStyleSheet(f"color: {theme.DOWN};")
            return False
        if expansion is None:  # a large grid: counted off the GUI thread, shown when done
            size = math.prod(len(v) for v in spec.space.values())
            self.count.setText(f"Counting the valid points among {size:,} combinations…")
            self.count.setStyleSheet(f"color: {theme.MUTED};")
            self._expand_later(spec, self.update_count)
            return False
        valid, refused = expansion
        # random search: valid is the sample; Bayesian: the candidates it asks among
        total = len(valid) if spec.max_points is None else min(len(valid), spec.max_points)
        candidates = math.prod(len(v) for v in spec.space.values()) - len(refused)
        text = f"{total:,} point{'s' if total != 1 else ''}"
        if total < candidates:
            text += f" drawn from {candidates:,}"
        if spec.walk_forward is not None:
            text += f" per fold × {spec.walk_forward.folds} folds"
        if refused:
            text += (
                f"; {len(refused):,} combination{'s' if len(refused) != 1 else ''} refused ({refused[0][1]})"
            )
        self.count.setText(text)
        self.count.setStyleSheet(f"color: {theme.DOWN if not valid else theme.MUTED};")
        return bool(valid)

    # -- running --------------------------------------------------------------------------------------
    def _show_spec(self, spec: SweepSpec) -> None:
        """Empty views for ``spec``: table columns, heatmap axes, walk-forward. The heatmap tells refused
        cells once the spec's expansion is known (at once for a small grid)."""
        self.spec = spec
        try:
            expansion = self.expansion(spec)
        except ValueError:
            expansion = ([], [])
        if expansion is None:
            expansion = ([], [])
            self._expand_later(spec, lambda: self._expected_for(spec))
        self.expected, self.refused = expansion[0], [params for params, _ in expansion[1]]
        swept = list(spec.space)
        self.points.set_params(swept)
        windows = None
        if spec.walk_forward is not None:
            try:
                windows = make_folds(spec.start, spec.end, spec.walk_forward)
            except FoldError as exc:  # the engine says so when the sweep starts
                log.info("walk-forward windows not laid out: %s", exc)
        self.walk.reset(spec.metric, windows)
        for combo, pick in ((self.heat_x, 0), (self.heat_y, 1)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(swept)
            combo.setCurrentIndex(min(pick, len(swept) - 1))
            combo.setEnabled(len(swept) > 1)  # one parameter: its row is the heatmap
            combo.blockSignals(False)
        self._rebuild_heatmap()

    def _expected_for(self, spec: SweepSpec) -> None:
        """The expansion of the spec shown arrived: mark the heatmap's refused cells."""
        expansion = self.expansions.known.get(expansion_key(spec))
        if self.spec is spec and expansion is not None:
            self.expected, self.refused = expansion[0], [params for params, _ in expansion[1]]
            self.progress.setRange(0, max(1, self.progress.maximum(), len(self.expected)))
            self._rebuild_heatmap()

    def _rebuild_heatmap(self) -> None:
        spec = self.spec
        x, y = self.heat_x.currentText(), self.heat_y.currentText()
        if spec is not None and len(spec.space) == 1:
            x, y = next(iter(spec.space)), ""  # one parameter swept: one row of cells over it
        elif spec is None or not x or not y or x == y:
            self.heatmap.set_grid(None)
            self.heat_caption.setText("" if spec is None else "choose two different parameters")
            return
        grid = HeatGrid.build(x, y, spec.space, spec.metric)
        grid.expect(self.expected, self.refused)
        grid.add(self.points.points())
        others = [p for p in spec.space if p not in (x, y)]
        self.heatmap.set_grid(grid, others)
        title = METRIC_TITLES.get(spec.metric, spec.metric)
        over = ["the other parameters"] if others else []
        if spec.walk_forward is not None:  # a walk-forward's heatmap holds its in-sample points
            over.append("the folds (in-sample)")
        self.heat_caption.setText(f"colour: {title}" + (f", best over {' and '.join(over)}" if over else ""))

    def start(self) -> bool:
        return self._start(None)

    def resume(self, sweep_id: str, spec: SweepSpec, stored: Sequence[PointResult] = ()) -> bool:
        """Continue a stored sweep: its done points are shown and not run again."""
        if self.run is not None:
            self.say("A sweep is already running in this window.", ok=False)
            return False
        self.show_past(sweep_id, spec, stored)
        return self._start(sweep_id, spec)

    def _start(self, resume: str | None, spec: SweepSpec | None = None) -> bool:
        if self.run is not None:
            return False
        if spec is None:
            try:
                spec = self.read_spec()
                expansion = self.expansion(spec)
            except ValueError as exc:
                self.say(f"Cannot start: {exc}", ok=False)
                return False
            if expansion is None:  # a large grid: counted first, off the GUI thread, then started
                self.say("Counting the valid points before the start…", ok=None)
                self._expand_later(spec, lambda: self._start(None))
                return True
            if not self.update_count():
                self.say("Cannot start: no valid point in this space.", ok=False)
                return False
            self._show_spec(spec)
        engine = self.form.engine()
        bridge = LabBridge(self)
        bridge.batch.connect(self._on_batch)
        bridge.finished.connect(self._on_finished)
        try:
            run = self.backend.start(spec, bridge, engine=engine, resume=resume)
        except Exception as exc:  # the engine refused: a bad address, a version mismatch... in words
            log.info("sweep not started: %s", exc)
            bridge.deleteLater()
            self.say(f"Cannot start: {exc}", ok=False)
            return False
        self.run, self.bridge = run, bridge
        self.progress.setRange(0, max(1, len(self.expected)))
        self.progress.setValue(0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.past.set_running(run.sweep_id)
        self.past.refresh()  # the list shows it running
        self.resumed = resume is not None
        verb = "Resuming" if resume else "Running"
        self.say(f"{verb} {spec.strategy} on {', '.join(spec.symbols)}, {costs_text(spec)}, "
                 f"{engine.describe()}…", ok=None)  # fmt: skip
        return True

    def cancel(self) -> None:
        if self.run is None:
            return
        self.run.cancel()
        self.cancel_button.setEnabled(False)
        self.say("Cancelling: queued points are dropped, running ones stop within a second…", ok=None)

    def _on_batch(self, points: list[PointResult], progress: SweepProgress | None) -> None:
        if self.sender() is not self.bridge:
            return  # a late report of a sweep this window no longer shows
        if points:
            first = self.points.rowCount() == 0
            self.points.add(points)
            if first:
                self.table.resizeColumnsToContents()
            self.heatmap.add(points)
            self.walk.add(points)
        if progress is not None:
            self.progress.setRange(0, max(1, progress.total))
            self.progress.setValue(min(progress.completed, progress.total))
            self.progress_text.setText(progress_text(progress))

    def _on_finished(self, outcome: SweepOutcome) -> None:
        if self.sender() is not self.bridge:
            return
        self.run, self.bridge = None, None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.past.set_running(None)
        self.past.refresh()
        self._draw_stitched()
        log.info("sweep %s %s: %d of %d points, %d failed, %.1f s%s", outcome.sweep_id, outcome.state.value,
                 outcome.completed, outcome.total, outcome.errors, outcome.elapsed_s,
                 f" ({outcome.message})" if outcome.message else "")  # fmt: skip
        workers = f"{outcome.workers} worker{'s' if outcome.workers != 1 else ''}"
        # a resumed sweep's time is this run's (the earlier runs' is not known here)
        took = fmt_duration(outcome.elapsed_s) + (" this run" if self.resumed else "")
        self.progress_text.setText(f"{outcome.completed:,} / {outcome.total:,} points in {took} · {workers}")
        done = f"{outcome.completed:,} of {outcome.total:,} points"
        failed = f", {outcome.errors:,} failed" if outcome.errors else ""
        if outcome.state is SweepState.COMPLETED:
            self.progress.setValue(self.progress.maximum())
            self.say(f"Done: {done} in {took}{failed}. {best_text(self.spec, outcome, self.points.points())}",
                     ok=outcome.errors < outcome.total)  # fmt: skip
        elif outcome.state is SweepState.CANCELLED:
            self.say(f"Cancelled: {done} done{failed}; resume it from Past sweeps.", ok=False)
        else:
            why = outcome.message or "the engine stopped"
            self.say(f"The sweep stopped: {why}. {done} are saved; resume it from Past sweeps.", ok=False)

    def _draw_stitched(self) -> None:
        """A walk-forward's stitched out-of-sample equity, recomputed on a worker thread."""
        spec, points = self.spec, self.points.points()
        if spec is None or spec.walk_forward is None or not any(p.phase == "out_of_sample" for p in points):
            return
        self.walk.show_equity([], "Stitched out-of-sample equity: recomputing the out-of-sample runs…")

        def drawn(curve: Sequence[tuple[datetime, Decimal]]) -> None:
            if self.spec is spec:
                self.walk.show_equity(curve, None if curve else "No out-of-sample run to stitch.")

        def failed(exc: BaseException) -> None:
            if self.spec is spec:
                self.walk.show_equity([], f"The stitched equity could not be drawn: {exc}")

        self.tasks.run_blocking(lambda: list(self.backend.stitched_equity(spec, points)), drawn, failed,
                                name="heron-lab-stitch")  # fmt: skip

    # -- past sweeps ----------------------------------------------------------------------------------
    def show_past(self, sweep_id: str, spec: SweepSpec, results: Sequence[PointResult]) -> None:
        """Show a stored sweep's points (the form takes its spec, ready to run again)."""
        if self.run is not None:
            self.say("Cancel the running sweep before opening another.", ok=False)
            return
        self.form.load_spec(spec)
        self._show_spec(spec)
        # this sweep's own progress: its stored points of its planned ones (a completed sweep: 100 %)
        total = max(len(results), len(self.expected), 1)
        self.progress.setRange(0, total)
        self.progress.setValue(len(results))
        self.progress_text.setText(f"{len(results):,} / {total:,} points stored")
        self.points.add(results)
        self.heatmap.add(results)
        self.walk.add(results)
        self.say(f"Sweep {sweep_id}: {len(results):,} stored points shown ({costs_text(spec)}).", ok=None)
        self._draw_stitched()

    # -- points ---------------------------------------------------------------------------------------
    def _selected(self) -> PointResult | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.points.point_at(self.proxy.mapToSource(rows[0]).row())

    def open_point(self, index: QModelIndex | None = None) -> bool:
        """The backtest dialog on the chosen point: its parameters over the sweep's own bars and costs
        (a walk-forward point over its fold's window); False, and why in words, when it cannot."""
        point = (
            self._selected() if index is None else self.points.point_at(self.proxy.mapToSource(index).row())
        )
        spec = self.spec
        if point is None or spec is None or self.open_backtest is None:
            return False
        strategy = self.form.registry.get(spec.strategy)
        specs = {p.name: p for p in strategy.param_specs()} if strategy is not None else {}
        texts: dict[str, str] = {}
        for name, value in {**spec.fixed, **point.params}.items():
            texts[name] = specs[name].to_text(value) if name in specs else value_text(value)
        texts["symbols"] = ";".join(spec.symbols)
        try:
            self.open_backtest(spec.strategy, texts, spec, point)
        except ValueError as exc:  # never other data in its place: the dialog would show other figures
            self.say(f"Cannot open this point in the backtest dialog: {exc}", ok=False)
            return False
        return True

    # -- closing --------------------------------------------------------------------------------------
    def ask_stop(self) -> bool:
        """Whether the trader wants the running sweep cancelled to close the window (a question, so
        Esc pressed while typing in a field or a stray click on the close button loses no sweep)."""
        answer = QMessageBox.question(
            self,
            "Strategy lab",
            "A sweep is running. Cancel it and close the lab?\n\n"
            "Its finished points are kept; Resume in Past sweeps continues it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _stop_on_close(self) -> None:
        """A running sweep is cancelled (its done points are saved; Resume continues it) and the window
        is left ready for the next one: a reopened window can start or resume at once."""
        run = self.run
        if run is None:
            return
        log.info("strategy lab closed during sweep %s: cancelled, resumable", run.sweep_id)
        run.cancel()
        self.run, self.bridge = None, None  # its late reports are not this window's any more
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.past.set_running(None)
        self.past.refresh()
        self.progress_text.setText("—")
        self.say(f"Sweep {run.sweep_id} was cancelled when the window closed; resume it from Past sweeps.",
                 ok=False)  # fmt: skip

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc during a sweep asks first (QDialog would close the window at once)."""
        if event.key() == Qt.Key.Key_Escape and self.run is not None and not self.ask_stop():
            event.accept()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if event.spontaneous() and self.run is not None and not self.ask_stop():
            event.ignore()  # the window manager's close button: the trader keeps the sweep
            return
        self._stop_on_close()
        super().closeEvent(event)

    def done(self, result: int) -> None:  # Esc (once asked) and the close button both come here
        self._stop_on_close()
        super().done(result)
