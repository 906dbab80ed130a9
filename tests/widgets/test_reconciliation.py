"""Reconciliation panel and drift banner over a real Reconciler (generated broker state)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from widgets.drift_banner import DriftBanner
from widgets.preview_rig import ReconciliationRig, reconciliation_rig
from widgets.reconciliation import ReconciliationPanel


@pytest.fixture
def rig(tmp_path: Path) -> ReconciliationRig:
    return reconciliation_rig(tmp_path)


@pytest.fixture
def panel(qtbot: Any, rig: ReconciliationRig) -> ReconciliationPanel:
    p = ReconciliationPanel(rig.reconciler, operator="tester", refresh_ms=60_000)
    qtbot.addWidget(p)
    return p


class Answers:
    """Replaces QMessageBox.exec: records each question and answers from a script."""

    def __init__(self, answer: QMessageBox.StandardButton) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def install(self, monkeypatch: Any) -> Answers:
        def exec_(box: QMessageBox) -> int:
            self.asked.append(box.text() + "\n" + box.informativeText())
            return int(self.answer.value)

        monkeypatch.setattr(QMessageBox, "exec", exec_)
        return self


def _select(panel: ReconciliationPanel, kind: str) -> Any:
    inc = next(i for i in panel.reconciler.incidents.values() if i.kind == kind)
    panel.select_incident(inc.id)
    assert panel.selected_incident() == inc
    return inc


def test_models_pass_qtmodeltester(qtmodeltester: Any, panel: ReconciliationPanel) -> None:
    for model in (panel.incidents, panel.positions, panel.orders):
        assert model.rowCount() > 0
        qtmodeltester.check(model, force_py=True)
    panel.incident_proxy.set_show_resolved(False)
    qtmodeltester.check(panel.incident_proxy, force_py=True)
    panel.incident_proxy.set_show_resolved(True)
    assert panel.incident_proxy.rowCount() == panel.incidents.rowCount()
    qtmodeltester.check(panel.incident_proxy, force_py=True)


def test_incident_history_and_differing_cells(panel: ReconciliationPanel) -> None:
    statuses = sorted(
        panel.incidents.data(panel.incidents.index(r, 0)) for r in range(panel.incidents.rowCount())
    )
    assert statuses == ["acknowledged", "open", "open"]
    rows = {r.symbol: i for i, r in enumerate(panel.positions.rows())}
    bg = Qt.ItemDataRole.BackgroundRole
    assert panel.positions.data(panel.positions.index(rows["MSFT"], 1), bg) is not None  # 0 vs 7
    assert panel.positions.data(panel.positions.index(rows["AAPL"], 1), bg) is None
    assert panel.positions.data(panel.positions.index(rows["NVDA"], 4), bg) is not None  # avg differs
    msft = panel.positions.rows()[rows["MSFT"]]
    assert (msft.local_qty, msft.broker_qty, msft.broker_avg) == (Decimal(0), Decimal(7), Decimal("412.30"))
    [order] = panel.orders.rows()
    assert order.symbol == "TSLA" and order.local_status == "—" and order.broker_status == "new"


def test_reconciler_keeps_broker_side_of_last_comparison(rig: ReconciliationRig) -> None:
    rc = rig.reconciler
    assert set(rc.broker_position_details) == {"AAPL", "NVDA", "SPY", "MSFT"}
    assert rc.broker_position_details["NVDA"].avg_entry_price == Decimal("118.95")
    assert [o.client_order_id for o in rc.broker_open_orders] == ["manual-web-0042"]


def test_banner_follows_open_incidents_and_asks_for_review(qtbot: Any, panel: ReconciliationPanel) -> None:
    banner = DriftBanner()
    qtbot.addWidget(banner)
    banner.show_incidents(panel.reconciler.incidents_event())
    assert banner.count == 2 and banner.severity == "critical"
    assert "MSFT quantity differs" in banner.text.text()
    with qtbot.waitSignal(banner.reviewRequested):
        qtbot.mouseClick(banner, Qt.MouseButton.LeftButton)
    banner.set_incidents(0, None, "")
    assert banner.isHidden()


def test_banner_and_panel_follow_the_reconcilers_event(
    qtbot: Any, panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    """The reconciler publishes IncidentsChangedEvent when its open incidents change; the banner shows
    the worst severity it carries and hides when none is open, and the panel refreshes at once (no
    timer tick: its refresh interval here is a minute)."""
    banner = DriftBanner()
    qtbot.addWidget(banner)
    banner.show()
    banner.follow(rig.bus)
    panel.follow(rig.bus)
    shown: list[int] = []
    banner.incidentsShown.connect(shown.append)
    rc = rig.reconciler
    critical = next(i for i in rc.open_incidents() if i.severity == "critical")
    rc.acknowledge(critical.id, "tester")
    assert shown == [1] and banner.isVisible()
    assert banner.severity == "warning" and "unknown to Heron" in banner.text.text()
    assert panel.status.text() == "● 1 open incident"
    [last] = rc.open_incidents()
    rc.acknowledge(last.id, "tester")
    assert shown == [1, 0] and banner.isHidden() and banner.count == 0 and banner.severity is None
    assert "open incident" not in panel.status.text()


def test_a_destroyed_banner_and_panel_leave_the_bus(qtbot: Any, rig: ReconciliationRig) -> None:
    from PySide6.QtCore import QCoreApplication, QEvent

    banner = DriftBanner()
    panel = ReconciliationPanel(rig.reconciler, operator="tester", refresh_ms=60_000)
    subs = [banner.follow(rig.bus), panel.follow(rig.bus)]
    assert all(s.active for s in subs)
    banner.deleteLater()
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not any(s.active for s in subs)
    for inc in rig.reconciler.open_incidents():
        rig.reconciler.acknowledge(inc.id, "tester")  # publishes IncidentsChangedEvent
    assert rig.bus.handler_errors == 0


def test_acknowledge_needs_confirmation(monkeypatch: Any, panel: ReconciliationPanel) -> None:
    inc = _select(panel, "position_qty")
    no = Answers(QMessageBox.StandardButton.Cancel).install(monkeypatch)
    assert not panel.acknowledge_selected()
    assert panel.reconciler.incidents[inc.id].is_open
    assert "MSFT quantity differs" in no.asked[0] and "Nothing changes at the broker" in no.asked[0]
    Answers(QMessageBox.StandardButton.Yes).install(monkeypatch)
    assert panel.acknowledge_selected()
    after = panel.reconciler.incidents[inc.id]
    assert after.resolution == "acknowledged" and after.acknowledged_by == "tester"
    assert not panel.ack.isEnabled()  # the selected incident is no longer open


def test_adopt_names_the_change_and_rewrites_the_position(
    qtbot: Any, monkeypatch: Any, panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    _select(panel, "unknown_broker_order")
    assert not panel.adopt.isEnabled()  # only position incidents can be adopted
    inc = _select(panel, "position_qty")
    assert panel.adopt.isEnabled()
    answers = Answers(QMessageBox.StandardButton.Yes).install(monkeypatch)
    with qtbot.waitSignal(panel.bridge.finished, timeout=5000):
        assert panel.adopt_selected()
    assert "MSFT" in answers.asked[0] and "Heron now: 0 (flat)" in answers.asked[0]
    assert "Broker (last run): 7" in answers.asked[0] and "No order is sent" in answers.asked[0]
    assert rig.store.position_qty("MSFT") == 7
    assert rig.reconciler.incidents[inc.id].resolution == "adopted"
    assert panel.status.text() == "● 1 open incident"


def test_adopt_cancelled_changes_nothing(
    monkeypatch: Any, panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    _select(panel, "position_qty")
    Answers(QMessageBox.StandardButton.Cancel).install(monkeypatch)
    assert not panel.adopt_selected()
    assert rig.store.position_qty("MSFT") == 0


@pytest.mark.expected_log(
    r"^services\.reconciliation\.reconciler: incident \S+ closed itself: MSFT matches the",
)
def test_run_now_runs_a_cycle_off_the_gui_thread(
    qtbot: Any, panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    rig.broker.positions.pop("MSFT")  # the outside trade was undone at the broker
    with qtbot.waitSignal(panel.bridge.finished, timeout=5000):
        qtbot.mouseClick(panel.run_now, Qt.MouseButton.LeftButton)
    assert panel.run_now.text() == "Run now" and panel.run_now.isEnabled()
    assert "MSFT" not in rig.reconciler.broker_positions
    assert "Last run:" in panel.last_run.text()


def test_without_a_reconciler_the_panel_says_so(qtbot: Any) -> None:
    p = ReconciliationPanel(None)
    qtbot.addWidget(p)
    assert "not running" in p.status.text()
    assert not p.run_now.isEnabled() and not p.ack.isEnabled()


def test_install_adds_every_ops_panel_the_banner_and_toasts(
    qtbot: Any, rig: ReconciliationRig, tmp_path: Path
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from app.context import Services
    from app.logging_setup import LogHub, SecretRedactor
    from app.paths import prepare, resolve_paths
    from app.qt.panels.ops import install, open_settings
    from app.settings import load
    from services.domain.enums import Mode
    from services.domain.events import NotificationEvent
    from widgets.main_window import MainWindow

    paths = prepare(resolve_paths("default", tmp_path / "data"))
    ctx = SimpleNamespace(log_hub=LogHub(), bus=rig.bus, settings=load(paths.settings_file), paths=paths,
                          redactor=SecretRedactor())  # fmt: skip
    services = Services(mode=Mode.LOCAL, reconciler=rig.reconciler, runner=None, strategy_registry={},
                        shadow=None, models=None, candles=None, secret_store=None, exchange=None)  # fmt: skip
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    panels = install(win, ctx, services)
    assert {"logPanel", "reconciliationPanel", "strategiesPanel", "shadowPanel"} <= set(win.panel_names())
    bar = win.findChild(type(win.addToolBar("probe")), "driftBannerBar")
    assert bar is not None and not bar.isHidden() and panels.banner.count == 2
    win.panel("logPanel").raise_()  # type: ignore[union-attr]
    panels.banner.reviewRequested.emit()
    assert not win.panel("reconciliationPanel").isHidden()  # type: ignore[union-attr]
    rig.bus.publish(NotificationEvent(datetime.now(UTC), "warning", "risk", "order refused: max_order_qty"))
    assert (
        panels.toasts.toasts
        and "max_order_qty"
        in panels.toasts.toasts[-1].findChild(type(panels.banner.text), "toastMessage").text()
    )
    assert panels.settings_action.objectName() == "settingsAction"
    dialog = open_settings(win, ctx, services, show=False)
    qtbot.addWidget(dialog)
    assert dialog.objectName() == "settingsDialog" and dialog.profile == "default"


def _acknowledge_all(panel: ReconciliationPanel) -> None:
    for inc in panel.reconciler.open_incidents():
        panel.reconciler.acknowledge(inc.id, "tester", "known")
    panel.refresh()


def test_clean_is_shown_only_when_every_quantity_matches(panel: ReconciliationPanel) -> None:
    """Alpaca's positions are the truth ("Treat Alpaca as the source of truth", alpacahq/alpaca-skills
    reconciliation-idempotency SKILL.md; docs/alpaca-rules.md "Positions, shorting, buying power"): with
    MSFT at 0 in Heron and 7 at the broker, acknowledging every incident
    leaves nothing open, yet the panel must not say "Clean". MSFT stays reduce-only, visible even when
    resolved incidents are hidden."""
    _acknowledge_all(panel)
    assert not panel.reconciler.open_incidents()
    assert "Clean" not in panel.status.text()
    assert "MSFT" in panel.status.text() and "reduce-only" in panel.status.text()
    panel.incident_proxy.set_show_resolved(False)
    shown = [panel.incident_proxy.index(r, 4).data() for r in range(panel.incident_proxy.rowCount())]
    assert shown == ["MSFT"]
    assert panel.incident_proxy.index(0, 0).data() == "acknowledged (reduce-only)"


def test_adopt_stays_available_for_an_acknowledged_quantity_drift(
    qtbot: Any, monkeypatch: Any, panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    """Adopting the broker's position (Alpaca is the source of truth: alpacahq/alpaca-skills
    reconciliation-idempotency SKILL.md) is what ends the
    reduce-only state of an acknowledged quantity drift, so Adopt stays enabled for it; once adopted
    every quantity matches and the panel says "Clean"."""
    _acknowledge_all(panel)
    inc = _select(panel, "position_qty")
    assert not panel.ack.isEnabled() and panel.adopt.isEnabled()
    answers = Answers(QMessageBox.StandardButton.Yes).install(monkeypatch)
    with qtbot.waitSignal(panel.bridge.finished, timeout=5000):
        assert panel.adopt_selected()
    assert "Open and acknowledged position incidents on MSFT" in answers.asked[0]
    assert rig.store.position_qty("MSFT") == 7
    assert rig.reconciler.incidents[inc.id].resolution == "adopted"
    assert rig.reconciler.reduce_only_qty("MSFT") is None
    panel.refresh()
    assert panel.status.text() == "● Clean: Heron and the broker agree"
    _select(panel, "position_price")  # an acknowledged price drift restricts nothing: not adoptable
    assert not panel.adopt.isEnabled()


def test_acknowledging_a_quantity_drift_says_the_symbol_stays_reduce_only(
    monkeypatch: Any, panel: ReconciliationPanel
) -> None:
    """The confirmation names the consequence: MSFT trades reduce-only at the broker's 7."""
    _select(panel, "position_qty")
    answers = Answers(QMessageBox.StandardButton.Cancel).install(monkeypatch)
    assert not panel.acknowledge_selected()
    assert "MSFT stays reduce-only at the broker's quantity (7" in answers.asked[0]


def test_quantities_not_compared_yet_are_not_called_reduce_only(
    panel: ReconciliationPanel, rig: ReconciliationRig
) -> None:
    """A fill Heron books after the broker's last position report (the reconciler defers the
    position comparison while executions are in transit) leaves the two columns apart with no
    incident and nothing restricted. The panel must not say "Clean", and it must not claim the
    symbol is reduce-only until adopted either: nothing restricts it."""
    import asyncio

    _acknowledge_all(panel)
    qty = next(i for i in rig.reconciler.incidents.values() if i.kind == "position_qty")
    asyncio.run(rig.reconciler.adopt_broker_state(qty.id, "tester"))
    panel.refresh()
    assert panel.status.text() == "● Clean: Heron and the broker agree"
    rig.store.book_adjustment("NVDA", Decimal(22), Decimal("118.20"), "fill-after-last-report")
    panel.refresh()
    text = panel.status.text()
    assert "Clean" not in text and "NVDA" in text
    assert "reduce-only" not in text and "until adopted" not in text
    assert "not compared" in text
