"""The panel a paper or live window shows without usable API keys (widgets/keys_needed.py)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMainWindow

from app.keys_needed import KeysNeeded
from services.domain.enums import Mode
from widgets.keys_needed import KeysNeededPanel


def _panel(needed: KeysNeeded) -> KeysNeededPanel:
    return KeysNeededPanel(needed.title, needed.reason, needed.steps(), can_store_keys=needed.keyring_usable)


def test_no_keyring_says_to_install_one_or_use_local_mode_and_offers_no_key_form(qtbot: Any) -> None:
    needed = KeysNeeded(Mode.PAPER, "default", "no OS keyring is available", keyring_usable=False)
    panel = _panel(needed)
    qtbot.addWidget(panel)
    text = panel.text()
    assert text.startswith("Paper trading needs the OS keyring, and none is available\n")
    assert "Why: no OS keyring is available." in text
    assert "1. Install and unlock an OS keyring" in text and "gnome-keyring" in text
    assert "3. Or trade on Heron's own paper exchange" in text and "--mode local" in text
    assert panel.settings_button is None


def test_missing_keys_offer_the_settings_keys_tab(qtbot: Any) -> None:
    needed = KeysNeeded(Mode.LIVE, "desk", "no API keys are stored for profile 'desk'", keyring_usable=True)
    panel = _panel(needed)
    qtbot.addWidget(panel)
    assert panel.title.text() == "Live trading needs your Alpaca API keys"
    assert "Store your live key id and secret" in panel.text()
    assert panel.settings_button is not None
    with qtbot.waitSignal(panel.settingsRequested, timeout=1000):
        panel.settings_button.click()
    assert "heron-terminal / desk:alpaca-live" in needed.line()


def test_a_long_reason_wraps_instead_of_widening_the_window(qtbot: Any) -> None:
    reason = "the keyring said " + "something very long " * 300
    panel = KeysNeededPanel("title", reason, ["one step"], can_store_keys=False)
    window = QMainWindow()
    window.setCentralWidget(panel)
    window.resize(900, 600)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.width() == 900 and window.minimumSizeHint().width() < 900
    assert panel.reason.width() <= 760 and panel.reason.height() > 3 * panel.title.fontMetrics().height()
