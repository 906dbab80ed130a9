"""The settings dialog: profiles, mode, Alpaca keys (keyring only), risk limits, UI preferences
and the local exchange; one module per tab in :mod:`widgets.settings`.

- Keys go to the OS keyring (a :class:`widgets.settings.backend.KeyStore`) and nowhere else: the key
  fields are masked, never pre-filled, and the dialog only says *whether* keys are stored.
- "Test connection" runs the injected credential validator on a worker thread and shows
  paper / live / local with the account number, or the validator's clear error.
- Switching to ``alpaca-live`` requires typing ``LIVE`` in a confirmation dialog.
- Every risk limit has its unit and is validated as typed; one invalid field shows an inline error
  and nothing at all is saved. Saving goes through the injected
  :class:`widgets.settings.backend.SettingsBackend`, which checks the whole document and writes it
  atomically.
- Risk limits, order confirmations and display options are put in force the moment Save succeeds
  (the injected ``apply_live`` hands them to the running services); mode, profile, theme and
  local-exchange changes take effect when Heron restarts, and the dialog says which is which.

GUI thread only; keyring and network work runs through :class:`TaskBridge`.

Signals:
    saved(object): the new settings after a successful save.
    profileSwitchRequested(str): the person chose another profile (effective on restart).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialogButtonBox, QTabWidget, QVBoxLayout, QWidget

from widgets.message_label import MessageLabel
from widgets.models.common import named
from widgets.settings.backend import ERROR_COLOR, OK_COLOR, KeyStore, SettingsBackend, Validator
from widgets.settings.keys_tab import KeysTab
from widgets.settings.lab_tab import LabTab
from widgets.settings.limits_tab import INVALID, RISK_FIELDS, LimitsTab
from widgets.settings.profile_tab import ProfileTab
from widgets.shortcuts import ShortcutsTab, bindings, changed_only
from widgets.tasks import TaskBridge

log = logging.getLogger("heron.widgets.settings")


class SettingsDialog(ProfileTab, KeysTab, LimitsTab):
    """objectName ``settingsDialog``. See the module docstring."""

    saved = Signal(object)

    def __init__(
        self,
        settings: Any,
        settings_path: Path,
        *,
        backend: SettingsBackend,
        profile: str = "default",
        data_root: Path | None = None,
        secret_store: KeyStore | None = None,
        validator: Validator | None = None,
        local_base_url: str | None = None,
        apply_live: Callable[[Any], str | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle(f"Settings — profile {profile}")
        self.resize(720, 560)
        self.settings = settings
        self.backend = backend
        self.path = settings_path
        self.profile = profile
        self.data_root = data_root
        self.secret_store = secret_store
        self.validator = validator
        self.local_base_url = local_base_url
        #: puts saved settings in force in the running session; returns why it could not, or None
        self.apply_live = apply_live
        self.bridge = TaskBridge(self)
        self._mode = settings.mode
        self.tabs = named(QTabWidget(), "settingsTabs")
        self.tabs.addTab(self._general_tab(), "Profile && mode")
        self.tabs.addTab(self._keys_tab(), "Alpaca keys")
        self.tabs.addTab(self._risk_tab(), "Risk limits")
        self.tabs.addTab(self._ui_tab(), "Interface")
        self.tabs.addTab(self._exchange_tab(), "Local exchange")
        self.shortcuts_tab = ShortcutsTab(bindings(settings.ui.shortcuts))
        self.tabs.addTab(self.shortcuts_tab, "Shortcuts")
        self.lab_tab = LabTab(settings.lab)
        self.tabs.addTab(self.lab_tab, "Strategy lab")
        self.error = named(MessageLabel(), "settingsError")
        self.error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setObjectName("settingsSave")
        buttons.accepted.connect(self.save_and_close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.refresh_key_status()

    def collect(self) -> dict[str, Any] | None:
        """The settings document from the form, or None when any field is invalid (errors shown)."""
        risk: dict[str, Any] = {}
        bad = False
        for key in RISK_FIELDS:
            value = self._check_risk_field(key)
            if value is INVALID:
                bad = True
            else:
                risk[key] = value
        symbols = [s.strip() for s in re.split(r"[,;\s]+", self.symbols.text()) if s.strip()]
        if not symbols:
            self.symbols_error.setText("name at least one symbol")
            self.symbols_error.show()
            bad = True
        else:
            self.symbols_error.hide()
        keys = self.shortcuts_tab.check()
        if keys is None:
            bad = True
        if bad:
            self.error.setStyleSheet(f"color: {ERROR_COLOR};")
            self.error.setText("Some fields are invalid; nothing was saved.")
            return None
        assert keys is not None
        data = self.settings.to_dict()
        data["mode"] = self._mode.value
        data["risk"] = risk
        data["ui"] = {
            "confirm_orders": self.confirm_orders.isChecked(),
            "theme": self.theme.currentText(),
            "time_zone": self.time_zone.currentData(),
            "shortcuts": changed_only(keys),
        }
        data["local_exchange"] = {
            "always_open": self.always_open.isChecked(),
            "seed": self.seed.value(),
            "symbols": symbols,
        }
        data["lab"] = self.lab_tab.collect()
        return data

    def apply(self) -> Any | None:
        """Validate everything and save atomically; returns the saved settings or None."""
        data = self.collect()
        if data is None:
            return None
        new, problem = self.backend.save(data, self.path)
        if new is None:
            self.error.setText(f"Not saved: {problem}")
            return None
        old, self.settings = self.settings, new
        restart = restart_needed(old, new)
        problem = self.apply_live(new) if self.apply_live is not None else None
        self._say_saved(restart, problem)
        log.info("settings saved to %s (mode %s%s)", self.path, new.mode.value,
                 f"; after a restart: {', '.join(restart)}" if restart else "")  # fmt: skip
        self.saved.emit(new)
        return new

    def _say_saved(self, restart: list[str], problem: str | None) -> None:
        if problem is not None:
            self.error.setStyleSheet(f"color: {ERROR_COLOR};")
            self.error.setText(f"Saved, but not in force: {problem}.")
            return
        self.error.setStyleSheet(f"color: {OK_COLOR};")
        text = "Saved: risk limits, confirmations, display options and shortcuts are in force now."
        if restart:
            text += f" Changes to the {', '.join(restart)} take effect after a restart."
        self.error.setText(text)

    def save_and_close(self) -> None:
        if self.apply() is not None:
            self.accept()


def restart_needed(old: Any, new: Any) -> list[str]:
    """What changed between two saved settings that applies only when Heron restarts."""
    out = []
    if new.mode is not old.mode:
        out.append("mode")
    if new.ui.theme != old.ui.theme:
        out.append("theme")
    if new.local_exchange != old.local_exchange:
        out.append("local exchange")
    return out
