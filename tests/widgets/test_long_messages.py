"""A message of any length (a broker's refusal, a keyring error) never makes a window wider than the
screen: the panels, the status bar, the settings dialog and the replace dialog wrap or cut it, with
the whole text in the tooltip and the log."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget

from app.qt.settings_access import SettingsFiles
from app.settings import load
from services.domain.enums import Mode, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Order
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig
from widgets.blotter import BlotterPanel, ReplaceDialog
from widgets.main_window import MainWindow
from widgets.message_label import MessageLabel
from widgets.order_ticket import OrderTicket
from widgets.positions import PositionsPanel
from widgets.settings_dialog import SettingsDialog
from widgets.watchlist import WatchlistPanel

qloop = trading_rig.qloop
rig = trading_rig.rig

_RUN = "replace-refused:" + "0123456789abcdef" * 8  # one unbreakable 144-character run (an id, a URL)
LONG = (f"order replace refused by the broker ({_RUN}): insufficient qty available for order " * 50)[:5000]


def _screen_width() -> int:
    screen = QGuiApplication.primaryScreen()
    assert screen is not None
    return screen.availableGeometry().width()


def _too_wide() -> list[str]:
    """Every visible top-level widget wider than the screen's available width."""
    QApplication.processEvents()
    limit = _screen_width()
    return [
        f"{w.objectName() or type(w).__name__}: {w.frameGeometry().width()} px"
        for w in QApplication.topLevelWidgets()
        if w.isVisible() and w.frameGeometry().width() > limit
    ]


def test_a_long_message_in_any_panel_leaves_the_main_window_within_the_screen(qtbot: Any, rig: Rig) -> None:
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    ticket = OrderTicket(rig.engine, mode=Mode.LOCAL)
    blotter = BlotterPanel(rig.store, rig.engine, rig.bus)
    positions = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus)
    watchlist = WatchlistPanel(rig.book, rig.bus, ["AAPL", "MSFT"])
    win.add_panel(ticket, "orderTicket", "Order ticket", "left")
    win.add_panel(watchlist, "watchlistPanel", "Watchlist", "right")
    win.add_panel(blotter, "blotterPanel", "Blotter", "bottom")
    win.add_panel(positions, "positionsPanel", "Positions", "bottom", tab_with="blotterPanel")
    win.showMaximized()  # the window on a screen smaller than its usual size
    qtbot.waitExposed(win)
    assert _too_wide() == []
    ticket._show_result(LONG, error=True)
    ticket.reason_label.setText(LONG)
    blotter.status_label.setText(LONG)
    positions.status_label.setText(LONG)
    watchlist.error_label.setText(LONG)
    watchlist.error_label.setVisible(True)
    win.heron_status.set_exchange(LONG, False, LONG)
    assert _too_wide() == []
    assert win.minimumSizeHint().width() <= _screen_width()
    # the whole message is still there for the trader: as the label's text and in its tooltip
    assert ticket.result_label.text() == LONG
    assert _RUN in ticket.result_label.toolTip().replace("\u200b", "")


@pytest.fixture
def settings_dialog(qtbot: Any, tmp_path: Path) -> SettingsDialog:
    path = tmp_path / "profiles" / "default" / "settings.json"
    path.parent.mkdir(parents=True)
    d = SettingsDialog(load(path), path, profile="default", data_root=tmp_path, backend=SettingsFiles(),
                       secret_store=None)  # fmt: skip
    qtbot.addWidget(d)
    return d


def test_a_long_keyring_error_keeps_the_settings_dialog_and_its_save_button_on_the_screen(
    qtbot: Any, settings_dialog: SettingsDialog, caplog: pytest.LogCaptureFixture
) -> None:
    d = settings_dialog
    d.show()
    qtbot.waitExposed(d)
    d.tabs.setCurrentIndex(1)  # the keys tab
    with caplog.at_level(logging.DEBUG, logger="heron.widgets"):
        for _kid, _sec, status in d.key_fields.values():
            status.setText(f"keyring unavailable: {LONG}")
        d.test_result.setText(LONG)
        d.error.setText(f"Not saved: {LONG}")
    assert _too_wide() == []
    save = d.save_button.mapToGlobal(QPoint(d.save_button.width(), 0))
    assert save.x() <= _screen_width()
    assert LONG in caplog.text  # the whole message is in the log


def test_a_long_refusal_keeps_the_replace_dialog_on_the_screen(qtbot: Any, rig: Rig) -> None:
    order = Order(
        id="o-1", client_order_id="c-1", symbol="AAPL", side=OrderSide.BUY, type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY, status=OrderStatus.NEW, qty=Decimal(10), filled_qty=Decimal(0),
        limit_price=Decimal(100), created_at=rig.clock(), updated_at=rig.clock(), submitted_at=rig.clock(),
    )  # fmt: skip
    dialog = ReplaceDialog(order)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.error.setText(LONG)
    dialog.outcome.setText(LONG)
    assert _too_wide() == []


def test_a_message_label_shows_short_text_whole_and_cuts_long_text(qtbot: Any) -> None:
    label = MessageLabel()
    qtbot.addWidget(label)
    label.setToolTip("what this label says")
    label.setText("order accepted")
    assert not label.cut and label.toolTip() == "what this label says"
    label.setText(LONG)
    assert label.cut and label.text() == LONG and _RUN in label.toolTip().replace("\u200b", "")
    assert "what this label says" in label.toolTip()
    assert label.sizeHint().width() <= 480 and label.minimumSizeHint().width() <= 60
    label.setText("order accepted")
    assert not label.cut and label.toolTip() == "what this label says"
    short: QWidget = MessageLabel("x" * 20, elide=True)
    qtbot.addWidget(short)
    assert not short.cut  # type: ignore[attr-defined]
