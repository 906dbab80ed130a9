"""The window of a paper or live session without usable API keys: instead of trading panels around
services that never started, the middle of the window says what is wrong and what to do
(:class:`widgets.keys_needed.KeysNeededPanel`), with a button to File → Settings → Alpaca keys
when keys can be stored here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.context import AppContext, Services
    from app.keys_needed import KeysNeeded
    from widgets.keys_needed import KeysNeededPanel
    from widgets.main_window import MainWindow

log = logging.getLogger("heron.app")


def show_keys_needed(
    window: MainWindow, ctx: AppContext, services: Services, needed: KeysNeeded
) -> KeysNeededPanel:
    """Put the explanation in the middle of ``window``; File → Settings… is added to the menu (the
    panel's own button only when a keyring can store keys)."""
    from app.qt.settings_access import open_settings
    from widgets.keys_needed import KeysNeededPanel

    panel = KeysNeededPanel(needed.title, needed.reason, needed.steps(), can_store_keys=needed.keyring_usable)

    def open_keys() -> None:
        dialog = open_settings(window, ctx, services)
        tabs = getattr(dialog, "tabs", None)
        if tabs is not None:
            for index in range(tabs.count()):
                if tabs.tabText(index) == "Alpaca keys":
                    tabs.setCurrentIndex(index)

    panel.settingsRequested.connect(open_keys)
    _settings_action(window, open_keys)
    window.set_central_panel(panel)
    log.info(
        "no usable API keys for %s: the window explains what to do (%s)", needed.mode.value, needed.title
    )
    return panel


def _settings_action(window: MainWindow, open_keys: Callable[[], None]) -> None:
    """File → Settings… (Ctrl+,), first in the File menu, opening the Alpaca keys."""
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu

    action = QAction("&Settings…", window)
    action.setObjectName("settingsAction")
    action.setShortcut("Ctrl+,")
    action.triggered.connect(open_keys)
    menus = [a.menu() for a in window.menuBar().actions()]
    file_menu = next((m for m in menus if isinstance(m, QMenu)), None)
    if file_menu is None:
        window.menuBar().addAction(action)
        return
    first = file_menu.actions()[0] if file_menu.actions() else None
    file_menu.insertAction(first, action)  # type: ignore[arg-type]
