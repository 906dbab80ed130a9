"""The shadow panel (``shadowPanel``): what the ML models would have done, never sent.

Shows the registry's models (name, version, hash prefix, trained at, held-out accuracy), the
newest live predictions (bounded), each model's hit rate over time (sampled from the tracker's own
metrics), the calibration of a chosen model (predicted vs realised per bin, from the tracker's
calibration table), the comparison table (predictions, scored, hit rate, precision, recall, Brier,
P&L had it traded), and Train with progress and Cancel (on a worker thread). Every number comes
from :class:`~services.shadow.tracker.ShadowTracker` or the
:class:`~services.shadow.registry.ModelRegistry`. GUI thread only.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from services.domain.models import Bar
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.columns import BoundedTableModel, Column, KeyedTableModel
from widgets.models.common import fmt_minute, fmt_timestamp, named, zoned
from widgets.models.table import SORT_ROLE
from widgets.tasks import TaskBridge

PALETTE = theme.SERIES


def _f(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _iso_text(stamp: str) -> str:
    """A stored ISO-8601 instant in the display zone (as stored when it cannot be read)."""
    try:
        return fmt_timestamp(datetime.fromisoformat(stamp))
    except ValueError:
        return stamp[:19].replace("T", " ")


def _p(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f} %"


@dataclass(frozen=True, slots=True)
class ModelRow:
    name: str
    version: str
    sha256: str
    created_at: str
    accuracy: float | None
    brier: float | None


MODEL_COLUMNS: list[Column[ModelRow]] = [
    Column("Model", lambda r: r.name),
    Column(
        "Version", lambda r: r.version, sort=lambda r: int(r.version[1:]) if r.version[1:].isdigit() else 0
    ),
    Column("Hash", lambda r: r.sha256[:12], tooltip=lambda r: f"SHA-256 {r.sha256}"),
    Column(zoned("Trained at"), lambda r: _iso_text(r.created_at)),
    Column("Test accuracy", lambda r: _p(r.accuracy), sort=lambda r: r.accuracy or -1, numeric=True),
    Column("Test Brier", lambda r: _f(r.brier), sort=lambda r: r.brier or 9, numeric=True),
]


@dataclass(frozen=True, slots=True)
class MetricsRow:
    name: str
    version: str
    predictions: int
    scored: int
    hit_rate: float | None
    precision: float | None
    recall: float | None
    brier: float | None
    pnl: Decimal


def _pnl_fg(r: MetricsRow) -> str | None:
    return theme.sign_hex(r.pnl)


METRICS_COLUMNS: list[Column[MetricsRow]] = [
    Column("Model", lambda r: f"{r.name} {r.version}"),
    Column("Predictions", lambda r: f"{r.predictions:,}", sort=lambda r: r.predictions, numeric=True),
    Column("Scored", lambda r: f"{r.scored:,}", sort=lambda r: r.scored, numeric=True),
    Column("Hit rate", lambda r: _p(r.hit_rate), sort=lambda r: r.hit_rate or -1, numeric=True),
    Column("Precision", lambda r: _p(r.precision), sort=lambda r: r.precision or -1, numeric=True),
    Column("Recall", lambda r: _p(r.recall), sort=lambda r: r.recall or -1, numeric=True),
    Column("Brier", lambda r: _f(r.brier), sort=lambda r: r.brier or 9, numeric=True,
           header_tip="Mean squared error of the up-probability (lower is better; 0.25 = coin flip)"),
    Column("P&L had it traded", lambda r: f"{r.pnl:,.2f}", sort=lambda r: r.pnl, numeric=True,
           foreground=_pnl_fg, header_tip="direction × (exit − entry) × qty, no costs"),
]  # fmt: skip


def _outcome(r: Any) -> str:
    if r.actual_up is None:
        return "pending"
    return "hit" if r.hit else "miss"


PREDICTION_COLUMNS: list[Column[Any]] = [
    Column(zoned("Time"), lambda r: fmt_minute(r.ts)[5:], sort=lambda r: r.ts),
    Column("Symbol", lambda r: r.symbol),
    Column("Model", lambda r: f"{r.model} {r.version}",
           tooltip=lambda r: f"fallback for {r.fallback_for}" if r.fallback_for else None),
    Column("P(up)", lambda r: f"{r.prob_up:.3f}", sort=lambda r: r.prob_up, numeric=True),
    Column("Call", lambda r: "up" if r.direction > 0 else ("down" if r.direction < 0 else "flat"),
           foreground=lambda r: theme.sign_hex(r.direction)),
    Column("Entry", lambda r: f"{r.entry:,.2f}", sort=lambda r: r.entry, numeric=True),
    Column("Exit", lambda r: "—" if r.exit is None else f"{r.exit:,.2f}", numeric=True),
    Column("Outcome", _outcome,
           foreground=lambda r: {"hit": theme.UP, "miss": theme.DOWN}.get(_outcome(r), theme.MUTED)),
]  # fmt: skip


def metrics_rows(tracker: Any) -> list[MetricsRow]:
    return [
        MetricsRow(
            m.name, m.version, m.predictions, m.scored, m.hit_rate, m.precision, m.recall, m.brier, m.pnl
        )
        for m in tracker.comparison()
    ]


def model_rows(registry: Any) -> list[ModelRow]:
    rows = []
    for name in registry.names():
        for v in registry.versions(name):
            meta = v.metadata or {}
            rows.append(ModelRow(v.name, v.version, v.sha256, v.created_at,
                                 meta.get("test_accuracy"), meta.get("test_brier")))  # fmt: skip
    return rows


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and p <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(p, runs[-1][1]))
        else:
            runs.append((p, p))
    return runs


def _view(name: str, model: Any, parent: QWidget, *, sort: bool = True) -> QTableView:
    view = named(QTableView(), name)
    if sort:
        proxy = QSortFilterProxyModel(parent)
        proxy.setSourceModel(model)
        proxy.setSortRole(SORT_ROLE)
        view.setModel(proxy)
        view.setSortingEnabled(True)
    else:
        view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(20)
    view.setAlternatingRowColors(True)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return view


class ShadowPanel(QWidget):
    """objectName ``shadowPanel``. Children: ``shadowModels``, ``shadowPredictions``,
    ``shadowComparison``, ``hitRatePlot``, ``calibrationPlot``, ``calibrationModel``,
    ``trainButton``, ``trainCancel``, ``trainProgress``, ``shadowStatus``, ``shadowTotals``."""

    def __init__(
        self,
        tracker: Any | None,
        registry: Any | None,
        *,
        training_bars: Callable[[], Sequence[Bar]] | None = None,
        train: Callable[..., Any] | None = None,
        refresh_ms: int = 1000,
        prediction_rows: int = 2000,
        history_points: int = 2000,
        clock: Callable[[], datetime] | None = None,
        on_first_shown: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("shadowPanel")
        self.tracker = tracker
        self.registry = registry
        self.training_bars = training_bars
        self._train = train
        self._clock = clock or (lambda: datetime.now(UTC))
        self.bridge = TaskBridge(self)
        self._cancel: threading.Event | None = None
        self._last_id = 0
        self.models = KeyedTableModel(MODEL_COLUMNS, key=lambda r: (r.name, r.version), parent=self)
        self.comparison = KeyedTableModel(METRICS_COLUMNS, key=lambda r: (r.name, r.version), parent=self)
        self.predictions = BoundedTableModel(PREDICTION_COLUMNS, prediction_rows, parent=self)
        self.history: dict[str, deque[tuple[float, float]]] = {}
        self._history_points = history_points
        self._curves: dict[str, Any] = {}

        self.comparison_view = _view("shadowComparison", self.comparison, self)
        self.models_view = _view("shadowModels", self.models, self)
        self.predictions_view = _view("shadowPredictions", self.predictions, self, sort=False)
        top = self._build_top_bar()
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self._build_hit_plot())
        plots.addWidget(self._build_calibration())
        plots.setSizes([600, 400])
        cmp_box = QGroupBox("Comparison")
        QVBoxLayout(cmp_box).addWidget(self.comparison_view)
        tabs = QTabWidget()
        tabs.addTab(self.predictions_view, "Live predictions")
        tabs.addTab(self.models_view, "Models")
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(cmp_box)
        lower.addWidget(tabs)
        lower.setSizes([550, 550])
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(plots)
        main.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(main, 1)

        self._stale = False
        self._on_first_shown = on_first_shown
        self._engines_seen = 0
        self._unscored: list[Any] = []  # shown predictions not scored yet, in id order
        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self._tick)
        self.set_services(tracker, registry)

    def _build_top_bar(self) -> QHBoxLayout:
        """The "never sent" badge, the totals, the status line and the training controls."""
        self.totals = named(QLabel(), "shadowTotals")
        self.totals.setStyleSheet(f"color: {theme.MUTED};")
        self.train_button = named(QPushButton("Train models"), "trainButton")
        self.train_button.setToolTip(
            "Fit the shadow models on history (off the GUI thread) and store new versions"
        )
        self.train_button.clicked.connect(self.start_training)
        self.train_cancel = named(QPushButton("Cancel"), "trainCancel")
        self.train_cancel.setEnabled(False)
        self.train_cancel.clicked.connect(self.cancel_training)
        self.progress = named(QProgressBar(), "trainProgress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.status = named(MessageLabel(elide=True), "shadowStatus")
        badge = QLabel("SHADOW · never sent")
        badge.setStyleSheet(
            f"background: {theme.BADGE_BG}; color: {theme.PENDING}; padding: 1px 8px; border-radius: 3px;"
        )
        top = QHBoxLayout()
        top.setContentsMargins(8, 6, 8, 2)
        top.addWidget(badge)
        top.addWidget(self.totals)
        top.addStretch(1)
        top.addWidget(self.status)
        top.addWidget(self.progress)
        top.addWidget(self.train_button)
        top.addWidget(self.train_cancel)
        return top

    def _build_hit_plot(self) -> pg.PlotWidget:
        """Each model's hit rate over time, around the 50 % line."""
        self.hit_plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.hit_plot.setObjectName("hitRatePlot")
        self.hit_plot.setBackground(theme.PLOT_BG)
        self.hit_plot.setLabel("left", "Hit rate")
        self.hit_plot.getAxis("left").enableAutoSIPrefix(False)
        self.hit_plot.setYRange(0.3, 0.7)
        self.hit_plot.addLine(y=0.5, pen=pg.mkPen(theme.GUIDE, style=Qt.PenStyle.DashLine))
        self.hit_plot.addLegend(offset=(10, 5))
        self.hit_plot.setMenuEnabled(False)
        return self.hit_plot

    def _build_calibration(self) -> QWidget:
        """The chosen model's calibration (predicted against realised, per bin) under its picker."""
        self.cal_plot = pg.PlotWidget()
        self.cal_plot.setObjectName("calibrationPlot")
        self.cal_plot.setBackground(theme.PLOT_BG)
        self.cal_plot.setLabel("bottom", "Predicted P(up)")
        self.cal_plot.setLabel("left", "Realised up rate")
        self.cal_plot.setXRange(0, 1)
        self.cal_plot.setYRange(0, 1)
        self.cal_plot.setMenuEnabled(False)
        self.cal_plot.plot([0, 1], [0, 1], pen=pg.mkPen(theme.GUIDE, style=Qt.PenStyle.DashLine))
        self.cal_curve = self.cal_plot.plot([], [], pen=pg.mkPen(theme.INFO, width=2), symbol="o",
                                            symbolSize=7, symbolBrush=theme.INFO)  # fmt: skip
        self.cal_model = named(QComboBox(), "calibrationModel")
        self.cal_model.currentIndexChanged.connect(lambda _: self._update_calibration())
        cal_box = QWidget()
        cl = QVBoxLayout(cal_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.cal_model)
        cl.addWidget(self.cal_plot, 1)
        return cal_box

    def set_services(self, tracker: Any | None, registry: Any | None) -> None:
        self.tracker, self.registry = tracker, registry
        self.train_button.setEnabled(registry is not None and self._cancel is None)
        if tracker is None:
            self._timer.stop()
            self.totals.setText("The shadow tracker is not running in this session")
        else:
            self._timer.start()
        self.refresh_models()
        self.refresh()

    # -- refresh ----------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        if self.registry is None:
            self.models.set_rows([])
            return
        try:
            self.models.set_rows(model_rows(self.registry))
        except Exception as exc:  # a broken index is reported, never fatal to the panel
            self._say(f"Model registry: {exc}", ok=False)

    def _tick(self) -> None:
        """The refresh timer. Off screen (a tab behind another, the dock closed), the panel only samples
        the hit-rate history, so its curve has no gap; tables and plots catch up when it is shown."""
        if self.isVisible() and not self.visibleRegion().isEmpty():
            self.refresh()
        elif self.tracker is not None:
            self._sample_history(metrics_rows(self.tracker))
            self._stale = True

    def paintEvent(self, event: QPaintEvent) -> None:
        """Painted while stale: the panel has just come on screen (its tab chosen, its dock
        opened; a dock behind another's tab is still "visible" to Qt, only its region is empty)."""
        super().paintEvent(event)
        first, self._on_first_shown = self._on_first_shown, None
        if first is not None:
            first()
        if self._stale:
            self._stale = False
            QTimer.singleShot(0, self, self.refresh)

    def _sample_history(self, rows: list[MetricsRow]) -> None:
        now = self._clock().timestamp()
        for r in rows:
            if r.hit_rate is None:
                continue
            series = self.history.setdefault(f"{r.name} {r.version}", deque(maxlen=self._history_points))
            if not series or series[-1] != (now, r.hit_rate):
                series.append((now, r.hit_rate))

    def refresh(self) -> None:
        t = self.tracker
        if t is None:
            return
        self._stale = False
        if len(t.engines) != self._engines_seen:  # trained models were loaded (or trained) meanwhile
            self._engines_seen = len(t.engines)
            self.refresh_models()
        records = t.records
        # records are in id order: only the newest few are new (no copy of the whole log)
        n_fresh = 0
        while n_fresh < len(records) and records[-1 - n_fresh].id > self._last_id:
            n_fresh += 1
        fresh = [records[i] for i in range(len(records) - n_fresh, len(records))]
        self._touch_scored()
        if fresh:
            self._last_id = fresh[-1].id
            self.predictions.extend(fresh)
            self._unscored.extend(r for r in fresh[-self.predictions.capacity :] if r.actual_up is None)
            self.predictions_view.scrollToBottom()
        rows = metrics_rows(t)
        self.comparison.set_rows(rows)
        self.totals.setText(f"{t.predictions:,} predictions, {t.scored:,} scored, horizon {t.horizon} bars")
        self._sample_history(rows)
        for r in rows:
            if r.hit_rate is None:
                continue
            key = f"{r.name} {r.version}"
            series = self.history[key]
            curve = self._curves.get(key)
            if curve is None:
                color = PALETTE[len(self._curves) % len(PALETTE)]
                curve = self._curves[key] = self.hit_plot.plot(
                    [], [], pen=pg.mkPen(color, width=1.5), name=key
                )
            curve.setData([p[0] for p in series], [p[1] for p in series])
        keys = [f"{r.name} {r.version}" for r in rows]
        if keys != [self.cal_model.itemText(i) for i in range(self.cal_model.count())]:
            current = self.cal_model.currentText()
            self.cal_model.blockSignals(True)
            self.cal_model.clear()
            for r in rows:
                self.cal_model.addItem(f"{r.name} {r.version}", (r.name, r.version))
            if current in keys:
                self.cal_model.setCurrentText(current)
            self.cal_model.blockSignals(False)
        self._update_calibration()

    def _touch_scored(self) -> None:
        """Repaint the shown predictions scored since the last refresh, and only those: a
        ``dataChanged`` over every row made the view (whose columns fit their contents) measure
        every cell of the table each second, shown or not."""
        if not self._unscored:
            return
        oldest = self.predictions.row_at(0).id if self.predictions.rowCount() else None
        scored = [r for r in self._unscored if r.actual_up is not None]
        self._unscored = [
            r for r in self._unscored if r.actual_up is None and oldest is not None and r.id >= oldest
        ]
        by_id: Callable[[Any], int] = lambda r: r.id  # noqa: E731
        where = sorted(
            self.predictions.bisect(r.id, key=by_id) for r in scored if oldest is not None and r.id >= oldest
        )
        for first, last in _runs(where):
            self.predictions.touch(first, last)

    def calibration_points(self) -> list[tuple[float, float, int]]:
        """(mean predicted, realised up rate, count) per non-empty bin of the chosen model."""
        key = self.cal_model.currentData()
        if self.tracker is None or key is None:
            return []
        m = self.tracker.metrics(*key)
        return [(b.mean_prob, b.observed_up, b.count) for b in m.calibration if b.count]

    def _update_calibration(self) -> None:
        pts = self.calibration_points()
        self.cal_curve.setData([p[0] for p in pts], [p[1] for p in pts])

    # -- training ---------------------------------------------------------------------------------
    def _say(self, text: str, ok: bool | None) -> None:
        self.status.setText(text)
        color = theme.ok_color(ok)
        self.status.setStyleSheet(f"color: {color};")

    def start_training(self) -> bool:
        if self.registry is None or self._cancel is not None:
            return False
        from services.shadow.training import train_models

        train = self._train or train_models
        source = self.training_bars or _generated_training_bars
        registry = self.registry
        cancel = threading.Event()
        self._cancel = cancel
        self.train_button.setEnabled(False)
        self.train_cancel.setEnabled(True)
        self.progress.setValue(0)
        self._say("Loading history…", ok=None)
        bridge = self.bridge

        def progress(stage: str, fraction: float) -> None:
            bridge.post(lambda: self._progress(stage, fraction))

        def work() -> Any:
            bars = source()
            return train(bars, registry, progress=progress, cancel=cancel)

        self.bridge.run_blocking(work, self._trained, self._train_failed, name="heron-shadow-training")
        return True

    def cancel_training(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.train_cancel.setEnabled(False)
            self._say("Cancelling after the current step…", ok=None)

    def _progress(self, stage: str, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))
        self._say(f"Training: {stage}", ok=None)

    def _done(self) -> None:
        self._cancel = None
        self.train_button.setEnabled(self.registry is not None)
        self.train_cancel.setEnabled(False)

    def _trained(self, reports: Any) -> None:
        self._done()
        self.progress.setValue(1000)
        self.refresh_models()
        parts = [
            f"{r.model.name} {r.model.version} (accuracy {r.test_accuracy:.1%}, Brier {r.test_brier:.3f})"
            for r in reports
        ]
        self._say(
            "Trained " + ", ".join(parts) + "; the tracker uses new versions from the next start.", ok=True
        )

    def _train_failed(self, exc: BaseException) -> None:
        self._done()
        self.progress.setValue(0)
        name = type(exc).__name__
        if name == "TrainingCancelled":
            self._say(f"Training cancelled ({exc}); nothing new was stored", ok=False)
        else:
            self._say(f"Training failed: {exc}", ok=False)


def _generated_training_bars() -> list[Bar]:
    """Seeded generated history (not market data) when no stored history source was given."""
    from services.strategies.synthetic import synthetic_bars

    bars: list[Bar] = []
    for i, symbol in enumerate(("AAPL", "MSFT", "NVDA")):
        bars.extend(synthetic_bars(symbol, 3000, seed=100 + i))
    return sorted(bars, key=lambda b: b.ts)


if __name__ == "__main__":  # preview: uv run python -m widgets.shadow [--screenshot FILE]
    import sys
    import tempfile
    from pathlib import Path

    from services.shadow.inference import InferenceEngine, MomentumRule, SklearnPredictor
    from services.shadow.registry import ModelRegistry
    from services.shadow.tracker import ShadowTracker
    from services.shadow.training import train_models
    from services.strategies.synthetic import synthetic_bars
    from widgets.standalone import make_app, preview_args, show_preview

    args = preview_args("Heron shadow panel preview (real tracker and models over generated bars)")
    app = make_app()
    registry = ModelRegistry(Path(tempfile.mkdtemp(prefix="heron-shadow-preview-")))
    train_models(_generated_training_bars(), registry)
    engines = [InferenceEngine(SklearnPredictor(registry.load(n))) for n in registry.names()]
    engines.append(InferenceEngine(None, MomentumRule()))
    tracker = ShadowTracker(engines, horizon=5)
    feeds = [iter(synthetic_bars(s, 100_000, seed=7 + i)) for i, s in enumerate(("AAPL", "MSFT", "NVDA"))]
    clock_state = {"t": datetime(2025, 3, 3, 14, 30, tzinfo=UTC).timestamp()}

    def step(n: int = 20) -> None:
        for _ in range(n):
            tracker.on_bars([b for b in (next(f, None) for f in feeds) if b is not None])

    panel = ShadowPanel(tracker, registry, refresh_ms=250,
                        clock=lambda: datetime.fromtimestamp(clock_state["t"], UTC))  # fmt: skip
    panel.resize(1200, 720)
    for _ in range(60):  # a history of the hit rate, sampled as the panel would over time
        step()
        clock_state["t"] += 60
        panel.refresh()

    def tick() -> None:
        step(5)
        clock_state["t"] += 15

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(100)
    sys.exit(show_preview(app, panel, args))
