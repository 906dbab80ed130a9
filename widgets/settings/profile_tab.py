"""The settings dialog's first tab: profiles (list, create, use another at the next start) and the
mode, where switching to ``alpaca-live`` needs ``LIVE`` typed in a confirmation dialog."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import Mode
from widgets.message_label import MessageLabel
from widgets.models.common import named
from widgets.settings.backend import ERROR_COLOR, SettingsBackend

MODE_TEXT = {
    Mode.LOCAL: "Local paper exchange (offline, built in)",
    Mode.PAPER: "Alpaca paper trading",
    Mode.LIVE: "Alpaca LIVE trading — real money",
}

_PROFILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class LiveConfirmDialog(QDialog):
    """Asks the person to type LIVE. ``accept`` is possible only when the text is exactly LIVE."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveConfirmDialog")
        self.setWindowTitle("Switch to LIVE trading")
        text = QLabel(
            "<b>LIVE mode sends real orders with real money.</b><br>"
            "Heron will use your Alpaca <i>live</i> keys after a restart and show a red LIVE badge.<br><br>"
            "Type <b>LIVE</b> to confirm."
        )
        text.setWordWrap(True)
        self.field = named(QLineEdit(), "liveConfirmField", placeholderText="LIVE")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Switch to LIVE")
        self.ok.setEnabled(False)
        self.field.textChanged.connect(lambda t: self.ok.setEnabled(t == "LIVE"))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(text)
        lay.addWidget(self.field)
        lay.addWidget(self.buttons)

    def accept(self) -> None:
        if self.field.text() == "LIVE":
            super().accept()

    @classmethod
    def confirm(cls, parent: QWidget | None) -> bool:
        """Open modally; tests monkeypatch ``LiveConfirmDialog.exec``."""
        dialog = cls(parent)
        return dialog.exec() == QDialog.DialogCode.Accepted and dialog.field.text() == "LIVE"


def _list_profiles(root: Path | None) -> list[str]:
    if root is None or not (root / "profiles").is_dir():
        return []
    return sorted(p.name for p in (root / "profiles").iterdir() if p.is_dir() and _PROFILE_RE.match(p.name))


class ProfileTab(QDialog):
    """The settings dialog's profile and mode part (a base of :class:`SettingsDialog`)."""

    profileSwitchRequested = Signal(str)
    profile: str
    data_root: Path | None
    backend: SettingsBackend
    _mode: Mode

    def _general_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        prof = QGroupBox("Profiles")
        pl = QVBoxLayout(prof)
        self.profiles = named(QListWidget(), "profileList")
        self._reload_profiles()
        row = QHBoxLayout()
        self.new_profile = named(QLineEdit(), "newProfileName", placeholderText="new profile name")
        create = named(QPushButton("Create"), "createProfile")
        create.clicked.connect(self.create_profile)
        switch = named(QPushButton("Use selected at next start"), "switchProfile")
        switch.clicked.connect(self.switch_profile)
        row.addWidget(self.new_profile, 1)
        row.addWidget(create)
        row.addWidget(switch)
        self.profile_note = named(
            MessageLabel(
                f"Current profile: <b>{self.profile}</b>. Switching profile takes effect when Heron restarts."
            ),
            "profileNote",
        )
        self.profile_note.setWordWrap(True)
        pl.addWidget(self.profiles)
        pl.addLayout(row)
        pl.addWidget(self.profile_note)
        modes = QGroupBox("Mode (takes effect on restart)")
        ml = QVBoxLayout(modes)
        self.mode_group = QButtonGroup(self)
        self.mode_buttons: dict[Mode, QRadioButton] = {}
        for i, mode in enumerate(Mode):
            b = named(QRadioButton(MODE_TEXT[mode]), f"mode_{mode.value.replace('-', '_')}")
            if mode is Mode.LIVE:
                b.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: 600;")
            self.mode_group.addButton(b, i)
            self.mode_buttons[mode] = b
            ml.addWidget(b)
        self.mode_buttons[self._mode].setChecked(True)
        self.mode_group.buttonClicked.connect(lambda b: self._mode_clicked(b))
        lay.addWidget(prof, 1)
        lay.addWidget(modes)
        return page

    # -- profiles and mode ------------------------------------------------------------------------
    def _reload_profiles(self) -> None:
        names = _list_profiles(self.data_root)
        if self.profile not in names:
            names = sorted([*names, self.profile])
        self.profiles.clear()
        self.profiles.addItems(names)
        matches = self.profiles.findItems(self.profile, Qt.MatchFlag.MatchExactly)
        if matches:
            self.profiles.setCurrentItem(matches[0])

    def create_profile(self) -> bool:
        name = self.new_profile.text().strip()
        if not _PROFILE_RE.match(name):
            self.profile_note.setText(
                f"<span style='color:{ERROR_COLOR}'>A profile name is 1-40 of A-Z a-z 0-9 _ . - "
                f"(got {name!r})</span>"
            )
            return False
        if self.data_root is None:
            note = "No data directory is known here"
            self.profile_note.setText(f"<span style='color:{ERROR_COLOR}'>{note}</span>")
            return False
        problem = self.backend.create_profile(name, self.data_root)
        if problem is not None:
            self.profile_note.setText(f"<span style='color:{ERROR_COLOR}'>{problem}</span>")
            return False
        self.new_profile.clear()
        self._reload_profiles()
        self.profile_note.setText(
            f"Profile <b>{name}</b> created. Start Heron with --profile {name} to use it."
        )
        return True

    def switch_profile(self) -> None:
        item = self.profiles.currentItem()
        if item is None or item.text() == self.profile:
            return
        self.profile_note.setText(
            f"Heron will use profile <b>{item.text()}</b> after a restart "
            f"(or start it with --profile {item.text()}). This session keeps <b>{self.profile}</b>."
        )
        self.profileSwitchRequested.emit(item.text())

    def _mode_clicked(self, button: Any) -> None:
        mode = next(m for m, b in self.mode_buttons.items() if b is button)
        if mode is Mode.LIVE and self._mode is not Mode.LIVE and not LiveConfirmDialog.confirm(self):
            self.mode_buttons[self._mode].setChecked(True)
            return
        self._mode = mode

    @property
    def selected_mode(self) -> Mode:
        return self._mode
