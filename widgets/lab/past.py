"""The lab's list of sweeps stored in Heron's database: when each started, its strategy and search,
points done of total and its state; Open shows its points again, Resume continues an unfinished one
(the points already done are not run again). The database is read on a worker thread. GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.lab.model import PointResult, SweepState
from widgets import theme
from widgets.lab.backend import LabBackend, PastSweep
from widgets.message_label import MessageLabel
from widgets.models.common import fmt_minute, header_text, named, zoned
from widgets.tasks import TaskBridge

log = logging.getLogger("heron.widgets.lab")

HEADERS = (zoned("Started"), "Sweep", "Strategy", "Search", "Points", "State")


class PastSweeps(QWidget):
    """objectName ``labPast``: ``labPastTable``, ``labPastRefresh``, ``labPastOpen``,
    ``labPastResume``, ``labPastStatus``.

    Signals: opened(sweep_id, SweepSpec, list[PointResult]) and resumed(sweep_id, SweepSpec,
    list[PointResult]), with the points stored so far."""

    opened = Signal(str, object, list)
    resumed = Signal(str, object, list)

    def __init__(self, backend: LabBackend, tasks: TaskBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labPast")
        self.backend, self.tasks = backend, tasks
        self.sweeps: list[PastSweep] = []
        self.running: str | None = None
        self.table = named(QTableWidget(0, len(HEADERS)), "labPastTable")
        self.table.setHorizontalHeaderLabels([header_text(h) for h in HEADERS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _: self.open_selected())
        self.refresh_button = named(QPushButton("Refresh"), "labPastRefresh")
        self.open_button = named(QPushButton("Open"), "labPastOpen", enabled=False)
        self.resume_button = named(QPushButton("Resume"), "labPastResume", enabled=False)
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(self.open_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.status = named(MessageLabel(), "labPastStatus")
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        for b in (self.refresh_button, self.open_button, self.resume_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        self._loaded = False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.refresh()

    def selected(self) -> PastSweep | None:
        rows = self.table.selectionModel().selectedRows()
        return self.sweeps[rows[0].row()] if rows and rows[0].row() < len(self.sweeps) else None

    def set_running(self, sweep_id: str | None) -> None:
        self.running = sweep_id
        self._selection_changed()

    def _selection_changed(self) -> None:
        sweep = self.selected()
        self.open_button.setEnabled(sweep is not None and self.running is None)
        resumable = sweep is not None and sweep.state is not SweepState.COMPLETED
        self.resume_button.setEnabled(resumable and self.running is None)

    # -- reading the store ----------------------------------------------------------------------------
    def refresh(self) -> None:
        self._loaded = True
        self.status.setText("Reading the stored sweeps…")
        self.tasks.run_blocking(
            lambda: list(self.backend.past()), self._show, self._failed, name="heron-lab-past"
        )

    def _failed(self, exc: BaseException) -> None:
        log.warning("stored sweeps not read: %s", exc)
        self.status.setText(f"The stored sweeps could not be read: {exc}")
        self.status.setStyleSheet(f"color: {theme.DOWN};")

    def _show(self, sweeps: Sequence[PastSweep]) -> None:
        chosen = self.selected()
        self.sweeps = sorted(sweeps, key=lambda s: (s.started is None, s.started), reverse=True)
        self.table.setHorizontalHeaderLabels([header_text(h) for h in HEADERS])  # the zone may have changed
        self.table.setRowCount(len(self.sweeps))
        for row, s in enumerate(self.sweeps):
            cells = (
                "—" if s.started is None else fmt_minute(s.started),
                s.sweep_id,
                s.spec.strategy,
                s.spec.search.value + (" + walk-forward" if s.spec.walk_forward else ""),
                f"{s.completed:,} / {s.total:,}",
                s.state.value,
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 5 and s.state in (SweepState.FAILED, SweepState.CANCELLED):
                    item.setForeground(QColor(theme.WARN))
                self.table.setItem(row, col, item)
            if chosen is not None and s.sweep_id == chosen.sweep_id:
                self.table.selectRow(row)
        self.status.setText(f"{len(self.sweeps):,} stored sweep{'s' if len(self.sweeps) != 1 else ''}.")
        self.status.setStyleSheet(f"color: {theme.MUTED};")
        self._selection_changed()

    def open_selected(self) -> None:
        self._read(self.opened)

    def resume_selected(self) -> None:
        sweep = self.selected()
        if sweep is not None and sweep.state is not SweepState.COMPLETED:
            self._read(self.resumed)

    def _read(self, then: object) -> None:
        """Read the selected sweep's stored points off the GUI thread, then emit ``then``."""
        sweep = self.selected()
        if sweep is None or self.running is not None:
            return
        self.status.setText(f"Reading sweep {sweep.sweep_id}…")

        def done(results: list[PointResult]) -> None:
            self.status.setText(f"Sweep {sweep.sweep_id}: {len(results):,} stored points.")
            then.emit(sweep.sweep_id, sweep.spec, results)  # type: ignore[attr-defined]

        self.tasks.run_blocking(lambda: list(self.backend.results(sweep.sweep_id)), done, self._failed,
                                name="heron-lab-results")  # fmt: skip
