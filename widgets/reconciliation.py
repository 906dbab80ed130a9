"""The reconciliation review panel (``reconciliationPanel``).

Shows the :class:`~services.reconciliation.reconciler.Reconciler`'s incidents with their history
(open / acknowledged / adopted / resolved), Heron's positions and open orders beside the broker's
(differing cells highlighted), the last run time, and the two operator actions — Acknowledge and Adopt
broker state — each behind a confirmation that names exactly what will change. "Clean" is shown only
when every quantity matches: an acknowledged quantity drift keeps its symbol reduce-only at the
broker's quantity and stays adoptable (and visible when resolved incidents are hidden). "Run now" runs one
reconciliation cycle on the service loop. The panel decides nothing: it reads the reconciler and
calls its methods; the worst severity comes from :mod:`services.reconciliation.drift`.

It refreshes when the reconciler publishes :class:`~services.domain.events.IncidentsChangedEvent`
(:meth:`ReconciliationPanel.follow`), after each of its own actions, and on a timer for what moves
without an incident changing (the side-by-side tables after each cycle and fill, the last run's age).
The drift banner follows the same event on its own (:class:`~widgets.drift_banner.DriftBanner`).
"""

from __future__ import annotations

import getpass
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.domain.bus import EventBus, Subscription
from services.domain.enums import IncidentSeverity
from services.domain.events import IncidentsChangedEvent
from services.domain.incidents import IncidentKind
from services.reconciliation.drift import worst_severity
from widgets import theme
from widgets.csv_export import default_path
from widgets.lifetime import cancel_on_destroy
from widgets.message_label import MessageLabel
from widgets.models.columns import refilter
from widgets.models.common import TIMES, fmt_clock, fmt_duration, named
from widgets.models.recon_models import (
    CRIT_FG,
    OK_FG,
    WARN_FG,
    dec_text,
    in_force,
    incident_model,
    order_model,
    order_rows,
    position_model,
    position_rows,
    restricts,
)
from widgets.models.table import SORT_ROLE
from widgets.pinned_line import PinnedLine
from widgets.tasks import TaskBridge

log = logging.getLogger("heron.widgets.reconciliation")


def ask_confirmation(parent: QWidget, title: str, text: str, detail: str = "") -> bool:
    """A modal Yes/No question; tests monkeypatch ``QMessageBox.exec``."""
    box = QMessageBox(parent)
    box.setObjectName("confirmDialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(text)
    if detail:
        box.setInformativeText(detail)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Yes


def _table(name: str) -> QTableView:
    view = named(QTableView(), name)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setSortingEnabled(True)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(22)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    return view


def _sorted(model: Any, parent: QWidget) -> QSortFilterProxyModel:
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    return proxy


class ReconciliationPanel(QWidget):
    """objectName ``reconciliationPanel``. Children: ``reconStatus``, ``reconLastRun``,
    ``reconRunNow``, ``reconExport``, ``incidentTable``, ``showResolved``, ``acknowledgeButton``,
    ``adoptButton``, ``reconPositionsTable``, ``reconOrdersTable``. GUI thread only."""

    _changed = Signal(object)  # an IncidentsChangedEvent from the bus, delivered on the GUI thread

    def __init__(
        self,
        reconciler: Any | None = None,
        *,
        operator: str | None = None,
        refresh_ms: int = 1000,
        clock: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("reconciliationPanel")
        self.reconciler = reconciler
        self.operator = operator or _default_operator()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.bridge = TaskBridge(self)
        self.incidents = incident_model(self)
        self.positions = position_model(self)
        self.orders = order_model(self)
        self._changed.connect(lambda _event: self.refresh())

        top = self._build_top()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self._build_incidents())
        split.addWidget(self._build_side_by_side())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(split, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self._tick)
        self.set_reconciler(reconciler)

    def _build_top(self) -> QHBoxLayout:
        """Status, last run, Run now and Trade report."""
        self.status = named(MessageLabel(elide=True), "reconStatus")
        self.last_run = named(QLabel(), "reconLastRun")
        self.last_run.setStyleSheet(f"color: {theme.MUTED};")
        self.run_now = named(QPushButton("Run now"), "reconRunNow")
        self.run_now.setToolTip("Run one reconciliation cycle now (read-only broker queries)")
        self.run_now.clicked.connect(self.run_cycle)
        self.export = named(QPushButton("Trade report…"), "reconExport")
        self.export.setToolTip("Export a per-symbol trade report (CSV) from Heron's fills")
        self.export.clicked.connect(self._export)
        top = QHBoxLayout()
        top.setContentsMargins(8, 6, 8, 2)
        # both change while the panel is open (the age every second): pinned, so that is a repaint
        top.addWidget(PinnedLine(self.status, chars=40), 3)
        top.addWidget(PinnedLine(self.last_run, chars=34), 2)
        top.addWidget(self.run_now)
        top.addWidget(self.export)
        return top

    def _build_incidents(self) -> QGroupBox:
        """The incident table with its history switch and the two operator actions."""
        self.incident_view = _table("incidentTable")
        self.incident_proxy = _IncidentFilter(self)
        self.incident_proxy.setSourceModel(self.incidents)
        self.incident_proxy.setSortRole(SORT_ROLE)
        self.incident_view.setModel(self.incident_proxy)
        self.incident_view.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        self.incident_view.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        for col, width in enumerate((100, 70, 140, 150, 110, 70, 90, 300)):
            self.incident_view.horizontalHeader().resizeSection(col, width)
        self.show_resolved = named(QCheckBox("Show history"), "showResolved", checked=True)
        self.show_resolved.toggled.connect(self.incident_proxy.set_show_resolved)
        self.ack = named(QPushButton("Acknowledge…"), "acknowledgeButton")
        self.ack.setToolTip(
            "Record that you reviewed this incident; nothing at the broker or in Heron's books changes"
        )
        self.ack.clicked.connect(self.acknowledge_selected)
        self.adopt = named(QPushButton("Adopt broker state…"), "adoptButton")
        self.adopt.setToolTip(
            "Rewrite Heron's position for this symbol from the broker (journaled; no order is sent)"
        )
        self.adopt.clicked.connect(self.adopt_selected)
        actions = QHBoxLayout()
        actions.addWidget(self.show_resolved)
        actions.addStretch(1)
        actions.addWidget(self.ack)
        actions.addWidget(self.adopt)
        inc_box = QGroupBox("Incidents")
        inc_lay = QVBoxLayout(inc_box)
        inc_lay.setContentsMargins(6, 6, 6, 6)
        inc_lay.addWidget(self.incident_view)
        inc_lay.addLayout(actions)
        return inc_box

    def _build_side_by_side(self) -> QSplitter:
        """Heron's positions and open orders beside the broker's."""
        self.position_view = _table("reconPositionsTable")
        self.position_view.setModel(_sorted(self.positions, self))
        self.order_view = _table("reconOrdersTable")
        self.order_view.setModel(_sorted(self.orders, self))
        pos_box = QGroupBox("Positions — Heron vs broker")
        QVBoxLayout(pos_box).addWidget(self.position_view)
        ord_box = QGroupBox("Open orders — Heron vs broker")
        QVBoxLayout(ord_box).addWidget(self.order_view)
        side = QSplitter(Qt.Orientation.Horizontal)
        side.addWidget(pos_box)
        side.addWidget(ord_box)
        return side

    # -- wiring -----------------------------------------------------------------------------------
    def set_reconciler(self, reconciler: Any | None) -> None:
        self.reconciler = reconciler
        if reconciler is None:
            self._timer.stop()
        else:
            self._timer.start()
        self.refresh()

    def follow(self, bus: EventBus) -> Subscription:
        """Refresh on every :class:`IncidentsChangedEvent` published on ``bus`` (any thread; the
        refresh runs on the GUI thread). The subscription ends when the panel is destroyed."""
        sub = bus.subscribe(IncidentsChangedEvent, self._changed.emit)
        cancel_on_destroy(self, [sub])
        return sub

    # -- refresh ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        """The timer's refresh (the age of the last run) only matters on screen; a change is still
        followed at once (IncidentsChangedEvent), and showing the panel refreshes it."""
        if self.isVisible():
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.reconciler is not None:
            self.refresh()

    def _set_status(self, text: str, style: str) -> None:
        """A style sheet set again re-polishes the label and re-measures it: only on a change."""
        if self.status.text() != text:
            self.status.setText(text)
        if self.status.styleSheet() != style:
            self.status.setStyleSheet(style)

    def refresh(self) -> None:
        """Re-read the reconciler (in memory, cheap). Timer-driven and after every action."""
        rc = self.reconciler
        if rc is None:
            self._set_status("Reconciliation is not running in this session", f"color: {theme.MUTED};")
            self.last_run.setText("")
            for w in (self.run_now, self.export, self.ack, self.adopt):
                w.setEnabled(False)
            return
        self.run_now.setEnabled(self.bridge.running == 0)
        self.export.setEnabled(True)
        self.incidents.set_rows(list(rc.incidents.values()))
        self.positions.set_rows(position_rows(rc))
        self.orders.set_rows(order_rows(rc))
        open_now = rc.open_incidents()
        if rc.last_run is None:
            self.last_run.setText("Last run: never")
        else:
            age = (self._clock() - rc.last_run).total_seconds()
            ago = fmt_duration(age, compact=True)
            self.last_run.setText(f"Last run: {fmt_clock(rc.last_run)} {TIMES.label()} ({ago} ago)")
        if open_now:
            critical = worst_severity(open_now) is IncidentSeverity.CRITICAL
            plural = "s" if len(open_now) != 1 else ""
            colour = CRIT_FG if critical else WARN_FG
            self._set_status(f"● {len(open_now)} open incident{plural}", f"color: {colour}; font-weight: 600")
        elif rc.last_run is None:
            self._set_status("● Not reconciled yet", f"color: {theme.MUTED}; font-weight: 600;")
        elif differing := _differing_quantities(rc):
            # no open incident, but not clean: an acknowledged quantity drift still holds its symbol,
            # or Heron booked fills the broker's last position report does not show yet
            held = sorted({i.subject for i in rc.incidents.values() if restricts(i)})
            pending = [s for s in differing if s not in held]
            parts = []
            if held:
                parts.append(f"{', '.join(held)} reduce-only at the broker's quantity until adopted")
            if pending:
                parts.append(
                    f"{', '.join(pending)} not compared yet (fills newer than the broker's last report)"
                )
            differ = f"● Quantities differ: {'; '.join(parts)}"
            self._set_status(differ, f"color: {WARN_FG}; font-weight: 600;")
        else:
            self._set_status("● Clean: Heron and the broker agree", f"color: {OK_FG}; font-weight: 600;")
        trading = getattr(rc, "trading", None)
        if trading is not None:
            self.status.setToolTip(f"Trading state: {trading.state.value} — {trading.reason}")
        self._update_buttons()

    def selected_incident(self) -> Any | None:
        rows = self.incident_view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.incidents.payload_at(self.incident_proxy.mapToSource(rows[0]).row())

    def select_incident(self, incident_id: str) -> None:
        row = self.incidents.row_for_key(incident_id)
        if row is None:
            return
        index = self.incident_proxy.mapFromSource(self.incidents.index(row, 0))
        self.incident_view.selectRow(index.row())

    def _update_buttons(self) -> None:
        inc = self.selected_incident()
        is_open = inc is not None and inc.acknowledged_at is None
        adoptable = inc is not None and in_force(inc) and inc.kind.is_position
        busy = self.bridge.running > 0
        self.ack.setEnabled(is_open and not busy)
        self.adopt.setEnabled(adoptable and not busy)
        if inc is not None and not inc.kind.is_position:
            self.adopt.setToolTip("Only position incidents can be settled by adopting the broker's position")

    # -- actions ----------------------------------------------------------------------------------
    def acknowledge_selected(self) -> bool:
        inc = self.selected_incident()
        rc = self.reconciler
        if inc is None or rc is None or inc.acknowledged_at is not None:
            return False
        others = [i for i in rc.open_incidents() if i.id != inc.id]
        effect = (
            "This was the last open incident: trading may leave its restricted state."
            if not others
            else f"{len(others)} other incident(s) stay open; trading stays restricted."
        )
        if inc.kind is IncidentKind.POSITION_QTY:
            effect += (
                f" {inc.subject} stays reduce-only at the broker's quantity ({inc.broker_value} as of the "
                "comparison) until you adopt the broker's state."
            )
        if not ask_confirmation(
            self,
            "Acknowledge incident",
            f"Acknowledge {inc.id} — {inc.detail} (local {inc.local_value}, broker {inc.broker_value})?",
            "Nothing changes at the broker or in Heron's positions and orders. The incident is marked "
            f"acknowledged by {self.operator!r} in the journal. {effect}",
        ):
            return False
        try:
            rc.acknowledge(inc.id, self.operator, "acknowledged in the reconciliation panel")
        except Exception as exc:
            log.exception("acknowledge failed")
            QMessageBox.critical(self, "Acknowledge failed", f"{inc.id} could not be acknowledged: {exc}")
            return False
        self.refresh()
        return True

    def adopt_selected(self) -> bool:
        inc = self.selected_incident()
        rc = self.reconciler
        if inc is None or rc is None or not in_force(inc) or not inc.kind.is_position:
            return False
        symbol = inc.subject
        local = rc.store.positions.get(symbol)
        local_txt = f"{dec_text(local.qty)} @ {dec_text(local.avg_price)}" if local else "0 (flat)"
        broker_qty = rc.broker_positions.get(symbol)
        broker_txt = dec_text(broker_qty) if broker_qty is not None else "0 (flat)"
        if not ask_confirmation(
            self,
            "Adopt broker state",
            f"Rewrite Heron's {symbol} position from the broker?\n\n"
            f"Heron now: {local_txt}\nBroker (last run): {broker_txt}",
            f"Heron re-reads {symbol} from the broker and books a journaled internal adjustment so its "
            f"position matches exactly. No order is sent, cancelled or changed. Open and acknowledged "
            f"position incidents on {symbol} are closed as 'adopted' by {self.operator!r}.",
        ):
            return False
        self.adopt.setEnabled(False)
        self.ack.setEnabled(False)
        incident_id = inc.id
        self.bridge.run_coroutine(
            lambda: rc.adopt_broker_state(incident_id, self.operator),
            lambda _: self.refresh(),
            lambda exc: self._failed("Adopt broker state failed", f"{symbol}: {exc}"),
        )
        return True

    def run_cycle(self) -> None:
        rc = self.reconciler
        if rc is None or self.bridge.running:
            return
        self.run_now.setEnabled(False)
        self.run_now.setText("Running…")

        def done(result: Any) -> None:
            self.run_now.setText("Run now")
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.run_now.setText("Run now")
            self._failed("Reconciliation failed", str(exc))

        self.bridge.run_coroutine(rc.run_cycle, done, failed)

    def _failed(self, title: str, message: str) -> None:
        log.error("%s: %s", title, message)
        self.refresh()
        QMessageBox.critical(self, title, message)

    def _export(self) -> None:
        rc = self.reconciler
        if rc is None:
            return
        start = default_path("heron-trades.csv")
        name, _ = QFileDialog.getSaveFileName(self, "Export trade report", start, "CSV (*.csv)")
        if not name:
            return
        try:
            rows = rc.export_trade_report(Path(name))
        except OSError as exc:
            QMessageBox.critical(self, "Export failed", f"Could not write {name}: {exc.strerror or exc}")
            return
        QMessageBox.information(self, "Trade report", f"{rows} symbol row(s) written to {name}")


class _IncidentFilter(QSortFilterProxyModel):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._show_resolved = True

    def set_show_resolved(self, show: bool) -> None:
        refilter(self, lambda: setattr(self, "_show_resolved", show))

    def filterAcceptsRow(self, source_row: int, source_parent: Any) -> bool:
        if self._show_resolved:
            return True
        model = self.sourceModel()
        return in_force(model.payload_at(source_row))  # type: ignore[attr-defined]


def _differing_quantities(rc: Any) -> list[str]:
    """Symbols whose quantities differ from the broker's as of the last run, with acknowledged
    quantity drifts (reduce-only) included even before a run compared them again."""
    syms = {r.symbol for r in position_rows(rc) if r.qty_differs}
    syms |= {i.subject for i in rc.incidents.values() if restricts(i)}
    return sorted(syms)


def _default_operator() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


if __name__ == "__main__":  # preview: uv run python -m widgets.reconciliation [--screenshot FILE]
    import sys

    from widgets.preview_rig import reconciliation_rig
    from widgets.standalone import make_app, preview_args, show_preview

    args = preview_args("Heron reconciliation panel preview (real Reconciler over a generated broker state)")
    app = make_app()
    rig = reconciliation_rig()
    from widgets.drift_banner import DriftBanner

    host = QWidget()
    host.resize(1200, 640)
    lay = QVBoxLayout(host)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(0)
    banner = DriftBanner()
    banner.follow(rig.bus)
    panel = ReconciliationPanel(rig.reconciler, operator="preview")
    panel.follow(rig.bus)
    lay.addWidget(banner)
    lay.addWidget(panel, 1)
    banner.show_incidents(rig.reconciler.incidents_event())
    sys.exit(show_preview(app, host, args))
