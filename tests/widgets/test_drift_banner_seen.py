"""The drift banner as a person sees it: in the main window's top toolbar, painted in the worst
incident's colour, with its text and Review button, and gone when the incidents close.

A widget placed in a QToolBar is shown and hidden through the QAction ``addWidget`` returns; its own
``setVisible`` is ignored there (Qt's QToolBar.addWidget documentation), which once left an empty
17-pixel strip. So this test reads the pixels of the grabbed window, not a widget flag."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QMainWindow

from app.qt.panels.ops import _drift_banner
from services.domain.enums import IncidentSeverity
from tests.support.polling import qt_pump, wait_for
from widgets import theme


def _pixel(window: QMainWindow, widget: Any, x: int, y: int) -> QColor:
    image = window.grab().toImage()
    at = widget.mapTo(window, QPoint(x, y))
    ratio = image.devicePixelRatio()
    return QColor(image.pixel(int(at.x() * ratio), int(at.y() * ratio)))


def test_an_open_incident_paints_the_banner_and_closing_it_removes_it(qtbot: Any) -> None:
    window = QMainWindow()
    window.setCentralWidget(QLabel("chart"))
    window.resize(1200, 600)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    banner = _drift_banner(window, None)  # type: ignore[arg-type]  # Review is not clicked here
    content = window.centralWidget()
    pump = qt_pump(qtbot)
    top_without_banner = content.mapTo(window, QPoint(0, 0)).y()

    banner.set_incidents(1, IncidentSeverity.CRITICAL, "AAPL: Heron holds 0, the broker 3")
    pump = qt_pump(qtbot)
    wait_for(
        "the banner shown at full height", lambda: banner.isVisible() and banner.height() >= 24, 5, pump=pump
    )
    assert banner.text.isVisible()
    assert "1 open incident" in banner.text.text() and "AAPL" in banner.text.text()
    seen = _pixel(window, banner, 3, banner.height() // 2)
    assert seen.name() == QColor(theme.DRIFT_CRITICAL_BG).name(), seen.name()

    banner.set_incidents(0, None, "")
    wait_for("the banner gone", lambda: not banner.isVisible(), 5, pump=pump)
    # no strip left above the window's content: it is back where it was before any incident
    wait_for(
        "the content back at the top",
        lambda: content.mapTo(window, QPoint(0, 0)).y() == top_without_banner,
        5,
        pump=pump,
    )
