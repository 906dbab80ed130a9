from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QLabel, QStatusBar, QTextEdit

from services.domain.enums import ConnectionState, Mode, TradingState
from widgets.main_window import MainWindow, first_launch_geometry
from widgets.status_bar import BADGE_COLORS, UNKNOWN


def make(qtbot, mode: Mode = Mode.LOCAL, layout: Path | None = None, **kw) -> MainWindow:  # type: ignore[no-untyped-def]
    win = MainWindow(mode, layout_file=layout, **kw)
    qtbot.addWidget(win)
    return win


@pytest.mark.parametrize(
    ("mode", "title", "badge"),
    [
        (Mode.LOCAL, "Heron — LOCAL", "LOCAL"),
        (Mode.PAPER, "Heron — PAPER", "PAPER"),
        (Mode.LIVE, "Heron — LIVE", "LIVE"),
    ],
)
def test_title_and_badge_name_the_mode(qtbot, mode: Mode, title: str, badge: str) -> None:  # type: ignore[no-untyped-def]
    win = make(qtbot, mode)
    assert win.windowTitle() == title
    label = win.findChild(QLabel, "modeBadge")
    assert label is not None and label.text() == badge
    assert BADGE_COLORS[badge][0] in label.styleSheet()


def test_live_badge_is_red(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QColor

    win = make(qtbot, Mode.LIVE)
    color = QColor(BADGE_COLORS["LIVE"][0])
    assert color.red() > 180 and color.green() < 80 and color.blue() < 80
    assert win.findChild(QLabel, "modeBadge").property("mode") == "live"


def test_profile_appears_in_the_title_when_not_default(qtbot) -> None:  # type: ignore[no-untyped-def]
    assert make(qtbot, Mode.PAPER, profile="work").windowTitle() == "Heron — PAPER — work"


def test_status_bar_shows_dashes_until_a_service_reports(qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make(qtbot)
    bar = win.findChild(QStatusBar, "statusBar")
    assert bar is win.statusBar()
    names = [
        "connectionLabel",
        "tradingStateLabel",
        "latencyLabel",
        "messageRateLabel",
        "stalenessLabel",
        "exchangeLabel",
    ]
    for name in names:
        label = bar.findChild(QLabel, name)
        assert label is not None and label.text().endswith(UNKNOWN), name
    win.heron_status.set_connection("rest", ConnectionState.LIVE)
    win.heron_status.set_connection("stock", ConnectionState.RECONNECTING)
    win.heron_status.set_trading_state(TradingState.HALTED, "drift")
    win.heron_status.set_latency_ms(12.4)
    assert bar.findChild(QLabel, "connectionLabel").text() == "Connection: reconnecting"
    assert bar.findChild(QLabel, "tradingStateLabel").text() == "Trading: HALTED"
    assert bar.findChild(QLabel, "latencyLabel").text() == "Latency: 12 ms"


def test_status_bar_shows_which_symbols_are_stale(qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make(qtbot)
    label = win.findChild(QLabel, "stalenessLabel")
    win.heron_status.set_staleness({}, 3)
    assert label.text() == "Data: fresh"
    win.heron_status.set_staleness({"TSLA": "no quote for 95 s (limit 90 s)"}, 3)
    assert label.text() == "Data: 1/3 stale"
    assert "TSLA: no quote for 95 s" in label.toolTip()
    win.heron_status.set_staleness({}, 0)
    assert label.text().endswith(UNKNOWN)


def test_badge_survives_a_temporary_message(qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make(qtbot)
    win.show()
    win.heron_status.notify("error", "something failed")
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == "Error: something failed")
    assert win.findChild(QLabel, "modeBadge").isVisible()


def test_add_panel_registers_dock_and_view_toggle(qtbot) -> None:  # type: ignore[no-untyped-def]
    win = make(qtbot)
    editor = QTextEdit()
    dock = win.add_panel(editor, "blotterPanel", "Blotter", "bottom")
    win.add_panel(QTextEdit(), "positionsPanel", "Positions", "bottom", tab_with="blotterPanel")
    assert editor.objectName() == "blotterPanel" and dock.objectName() == "blotterPanelDock"
    assert win.panel_names() == ["blotterPanel", "positionsPanel"]
    toggles = [a.objectName() for a in win.view_menu.actions()]
    assert "blotterPanelToggleAction" in toggles and "positionsPanelToggleAction" in toggles
    assert win.tabifiedDockWidgets(dock) == [win.panel("positionsPanel")]
    with pytest.raises(ValueError, match="already exists"):
        win.add_panel(QTextEdit(), "blotterPanel", "Again")
    with pytest.raises(ValueError, match="area must be"):
        win.add_panel(QTextEdit(), "x", "X", "middle")


def _window_with_panels(qtbot, layout: Path, names: list[str]) -> MainWindow:  # type: ignore[no-untyped-def]
    win = make(qtbot, layout=layout)
    for name in names:
        win.add_panel(QTextEdit(), name, name, "right")
    win.capture_default_layout()
    win.show()
    qtbot.waitExposed(win)
    return win


def test_layout_round_trip(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    win = _window_with_panels(qtbot, layout, ["blotterPanel", "positionsPanel"])
    win.panel("positionsPanel").hide()
    win.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, win.panel("blotterPanel"))
    assert win.save_layout()
    win.close()

    again = _window_with_panels(qtbot, layout, ["blotterPanel", "positionsPanel"])
    assert again.panel("positionsPanel").isVisible()
    assert again.restore_layout() is True
    assert not again.panel("positionsPanel").isVisible()
    assert again.dockWidgetArea(again.panel("blotterPanel")) == Qt.DockWidgetArea.LeftDockWidgetArea
    again.reset_layout()
    assert again.panel("positionsPanel").isVisible()


def test_layout_of_a_different_dock_set_is_not_restored(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    win = _window_with_panels(qtbot, layout, ["blotterPanel"])
    win.save_layout()
    other = _window_with_panels(qtbot, layout, ["blotterPanel", "chartPanel"])
    assert other.restore_layout() is False


def test_closing_saves_the_layout(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout = tmp_path / "layout.ini"
    win = _window_with_panels(qtbot, layout, ["blotterPanel"])
    with qtbot.waitSignal(win.closing, timeout=1000):
        win.close()
    assert "signature" in layout.read_text()


def test_first_launch_fills_most_of_the_screen_and_never_opens_below_the_default_size() -> None:
    big = first_launch_geometry(QRect(0, 0, 1920, 1080))
    assert (big.width(), big.height()) == (1728, 972)
    assert (big.x(), big.y()) == (96, 54)  # centred
    offset = first_launch_geometry(QRect(1920, 30, 2560, 1410))  # a second monitor, below a top panel
    assert offset.center().x() == QRect(1920, 30, 2560, 1410).center().x() and offset.y() > 30
    small = first_launch_geometry(QRect(0, 0, 800, 600))  # e.g. the offscreen platform's screen
    assert (small.x(), small.y(), small.width(), small.height()) == (0, 0, 1280, 800)


def test_a_new_window_takes_its_first_launch_geometry_from_the_primary_screen(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QGuiApplication

    win = make(qtbot)
    screen = QGuiApplication.primaryScreen()
    assert screen is not None
    assert win.geometry() == first_launch_geometry(screen.availableGeometry())


def test_a_small_real_screen_gets_the_whole_available_area() -> None:
    laptop = first_launch_geometry(QRect(0, 0, 1366, 768))  # 90 % would be below 1280x800
    assert (laptop.x(), laptop.y(), laptop.width(), laptop.height()) == (0, 0, 1366, 768)
    panel = first_launch_geometry(QRect(0, 32, 1366, 736))  # below a top panel
    assert panel == QRect(0, 32, 1366, 736)


def test_panels_larger_than_a_laptop_screen_scroll_in_their_docks(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Panels whose own minimum sizes add up to more than a 1366x768 screen: the window's minimum
    still fits it, each panel scrolls inside its dock, and the dock still hands out the panel."""
    from PySide6.QtWidgets import QWidget

    win = make(qtbot)
    panels = {}
    for name, area, tab in (("ticket", "left", None), ("watch", "right", None), ("blotter", "bottom", None),
                            ("log", "bottom", None), ("recon", "bottom", "log")):  # fmt: skip
        panel = QWidget()
        panel.setMinimumSize(700, 900)
        panels[name] = panel
        win.add_panel(panel, name, name, area, tab_with=tab)
    hint = win.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768 - 30  # room for a title bar
    assert win.panel("ticket").widget() is panels["ticket"]  # type: ignore[union-attr]
    replacement = QWidget()
    win.panel("log").setWidget(replacement)  # type: ignore[union-attr]
    assert win.panel("log").widget() is replacement  # type: ignore[union-attr]
