"""Log panel: bounded, batch-appended model over a real LogHub; filters; toasts."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QModelIndex, QTimer

from app.logging_setup import LogEntry, LogHub, LogHubHandler
from tests.support.polling import qt_pump, wait_for
from widgets.log_panel import LogPanel, ToastArea, wants_toast
from widgets.models.log_model import LogFilterProxy, LogTableModel


def entry(i: int, level: str = "INFO", logger: str = "heron.orders", message: str | None = None) -> LogEntry:
    return LogEntry(datetime(2025, 1, 2, 15, 0, tzinfo=UTC), level, logging.getLevelName(level), logger,
                    message or f"message {i}")  # fmt: skip


def test_model_passes_qtmodeltester(qtmodeltester: Any) -> None:
    model = LogTableModel(capacity=50)
    for i in range(80):
        model.enqueue(entry(i, "ERROR" if i % 7 == 0 else "INFO"))
    model.flush()
    qtmodeltester.check(model, force_py=True)


def test_filter_proxy_passes_qtmodeltester_while_the_model_rolls_over(qtmodeltester: Any) -> None:
    model = LogTableModel(capacity=50)
    for i in range(80):
        model.enqueue(entry(i, "ERROR" if i % 7 == 0 else "INFO"))
    model.flush()
    proxy = LogFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_min_level(logging.ERROR)
    assert 0 < proxy.rowCount() < model.rowCount()
    qtmodeltester.check(proxy, force_py=True)
    for i in range(80, 120):  # the tester stays connected while the bounded model rolls over
        model.enqueue(entry(i, "ERROR" if i % 7 == 0 else "INFO"))
    model.flush()
    assert proxy.rowCount() == sum(model.row_at(r).levelno >= logging.ERROR for r in range(model.rowCount()))


def test_burst_is_coalesced_and_bounded(qtbot: Any) -> None:
    model = LogTableModel(capacity=1000)
    inserts: list[tuple[int, int]] = []
    removes: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, a, b: inserts.append((a, b)))
    model.rowsRemoved.connect(lambda _p, a, b: removes.append((a, b)))
    # 20,000 records from another thread, then one frame
    t = threading.Thread(target=lambda: [model.enqueue(entry(i)) for i in range(20_000)])
    t.start()
    t.join()
    assert model.rowCount() == 0  # nothing touches Qt until the GUI thread flushes
    assert model.flush() == 1000  # only the newest capacity worth are kept
    assert model.rowCount() == 1000 and len(inserts) == 1
    assert model.row_at(999).message == "message 19999" and model.row_at(0).message == "message 19000"
    for i in range(300):
        model.enqueue(entry(20_000 + i))
    model.flush()
    assert model.rowCount() == 1000 and len(inserts) == 2 and removes == [(0, 299)]
    assert model.received == 20_300


def test_panel_follows_a_real_hub_and_filters(qtbot: Any) -> None:
    hub = LogHub(capacity=100)
    logger = logging.getLogger("heron.test.logpanel")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LogHubHandler(hub, logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.info("before the panel")
        panel = LogPanel(capacity=100)
        qtbot.addWidget(panel)
        panel.attach(hub)
        assert panel.model.rowCount() == 1
        logging.getLogger("heron.test.logpanel.risk").warning("order refused: max_order_qty")
        logging.getLogger("heron.test.logpanel.orders").error("broker said no")
        logger.debug("noise")
        qtbot.waitUntil(lambda: panel.model.rowCount() == 4, timeout=2000)
        assert panel.proxy.rowCount() == 3  # Info+ by default hides the debug line
        panel.level.setCurrentIndex(3)  # Warning+
        assert panel.proxy.rowCount() == 2
        panel.source.setText("heron.test.logpanel.risk")
        assert panel.proxy.rowCount() == 1
        panel.source.setText("")
        panel.text.setText("BROKER")
        assert panel.proxy.rowCount() == 1
        msg = panel.proxy.data(panel.proxy.index(0, 3))
        assert msg == "broker said no"
        assert "1 shown / 4 held" in panel.count.text()
        panel.detach()
        logger.info("after detach")
        assert len(hub.entries()) == 5
        assert panel.model.flush() == 0
    finally:
        logger.removeHandler(handler)


def test_toasts_for_risk_and_drift(qtbot: Any) -> None:
    from PySide6.QtWidgets import QWidget

    host = QWidget()
    qtbot.addWidget(host)
    host.resize(800, 600)
    area = ToastArea(host, timeout_ms=50, max_toasts=2)
    assert wants_toast("warning", "risk") and wants_toast("warning", "reconciliation")
    assert wants_toast("error", "exchange") and not wants_toast("info", "exchange")
    for i in range(3):
        area.show_toast("warning", "risk", f"order refused {i}")
    assert len(area.toasts) == 2  # the oldest went
    qtbot.waitUntil(lambda: not area.toasts, timeout=2000)
    assert area.isHidden()


def test_empty_model_index_is_invalid() -> None:
    model = LogTableModel(capacity=5)
    assert model.data(model.index(0, 0)) is None and model.rowCount(QModelIndex()) == 0


def test_a_toast_deleted_with_its_window_leaves_no_timer_behind(qtbot: Any) -> None:
    from PySide6.QtWidgets import QApplication, QWidget

    host = QWidget()
    area = ToastArea(host, timeout_ms=30, max_toasts=2)
    area.show_toast("error", "exchange", "connection lost")
    fired: list[object] = []
    area._remove = fired.append  # type: ignore[method-assign]  # what the toast's timer calls
    control: list[bool] = []
    QTimer.singleShot(30, lambda: control.append(True))  # started after the toast's: fires after it
    host.deleteLater()  # the window goes before the toast times out
    QApplication.sendPostedEvents(None, 0)  # DeferredDelete
    wait_for("a timer started after the toast's to fire", lambda: control, 5, pump=qt_pump(qtbot))
    assert fired == []  # the toast's timer went with the toast: nothing touched the deleted toast


def test_search_boxes_keep_a_readable_width_and_tools_wrap_when_narrow(qtbot: Any) -> None:
    from PySide6.QtCore import QSize

    from widgets.log_panel import SEARCH_MIN_CHARS, LogPanel
    from widgets.main_window import PanelScroll

    frame = PanelScroll(QSize(2000, 2000))
    qtbot.addWidget(frame)
    panel = LogPanel()
    frame.setWidget(panel)
    readable = panel.fontMetrics().averageCharWidth() * SEARCH_MIN_CHARS
    frame.resize(1000, 300)  # the log's half of the bottom row at 1920 px
    frame.show()
    qtbot.waitExposed(frame)
    qtbot.waitUntil(lambda: not panel.two_rows())
    assert panel.source.width() >= readable and panel.text.width() >= readable
    frame.resize(520, 300)  # at 1366 px: the tools go to a second row, the boxes keep their width
    qtbot.waitUntil(lambda: panel.two_rows() and panel.tools.y() > panel.source.y())
    assert panel.source.width() >= readable and panel.text.width() >= readable
    assert panel.width() <= frame.viewport().width() and not frame.horizontalScrollBar().isVisible()
    frame.resize(1000, 300)
    qtbot.waitUntil(lambda: not panel.two_rows() and panel.tools.y() == panel.source.y())


def test_a_quiet_log_runs_no_timer_and_a_record_from_another_thread_is_flushed(qtbot: Any) -> None:
    model = LogTableModel(capacity=100, flush_hz=20)
    model.start()
    assert not model._timer.isActive()  # nothing waits: the GUI thread is not woken 20 times a second
    t = threading.Thread(target=lambda: [model.enqueue(entry(i)) for i in range(3)])
    t.start()
    t.join()
    assert model.rowCount() == 0  # the other thread only buffered
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=2000)
    assert model.flushes == 1  # the three records rode one flush
    assert not model._timer.isActive()
    model.enqueue(entry(3))  # the GUI thread logs too
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=2000)
    model.stop()
    model.enqueue(entry(4))
    qtbot.wait(150)
    assert model.rowCount() == 4  # stopped: records wait
    model.start()  # and are shown as soon as it follows again
    qtbot.waitUntil(lambda: model.rowCount() == 5, timeout=2000)


def test_a_record_after_the_model_is_deleted_is_dropped_quietly(qtbot: Any) -> None:
    from shiboken6 import delete

    model = LogTableModel(capacity=10)
    model.start()
    delete(model)
    model.enqueue(entry(0))  # a logging thread outliving the panel: no exception escapes
