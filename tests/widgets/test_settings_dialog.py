"""Settings dialog: keyring-only keys, typed LIVE confirmation, validated risk limits, atomic save."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from PySide6.QtWidgets import QDialog, QLineEdit

from app.qt.settings_access import SettingsFiles
from app.secrets import SERVICE_NAME, SecretStore
from app.settings import load
from services.domain.enums import Mode
from widgets.settings.profile_tab import LiveConfirmDialog
from widgets.settings_dialog import SettingsDialog

KEY_ID = "PKTESTKEYID0001"
SECRET = "s3cr3t-value-that-must-never-hit-disk"


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@dataclass(frozen=True)
class Identity:
    account_id: str
    account_number: str
    status: str
    environment: str


class Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@pytest.fixture
def ring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def dialog(qtbot: Any, tmp_path: Path, ring: MemoryKeyring) -> SettingsDialog:
    path = tmp_path / "profiles" / "default" / "settings.json"
    path.parent.mkdir(parents=True)
    calls: list[tuple[str, str, str]] = []

    async def validator(key_id: str, secret: str, environment: str) -> Identity:
        calls.append((key_id, secret, environment))
        if secret != SECRET:
            raise Refused("the keys were refused by https://paper-api.alpaca.markets (forbidden.)")
        return Identity("acc-1", "PA3X7Y9Z", "ACTIVE", environment)

    d = SettingsDialog(load(path), path, profile="default", data_root=tmp_path, backend=SettingsFiles(),
                       secret_store=SecretStore(backend=ring), validator=validator)  # fmt: skip
    d.validator_calls = calls  # type: ignore[attr-defined]
    qtbot.addWidget(d)
    qtbot.waitUntil(lambda: d.bridge.running == 0, timeout=3000)
    return d


def _type_keys(d: SettingsDialog, mode: Mode, key_id: str = KEY_ID, secret: str = SECRET) -> None:
    kid, sec, _ = d.key_fields[mode]
    kid.setText(key_id)
    sec.setText(secret)


def test_key_fields_are_masked_and_keys_go_only_to_the_keyring(
    qtbot: Any, dialog: SettingsDialog, ring: MemoryKeyring, tmp_path: Path
) -> None:
    kid, sec, status = dialog.key_fields[Mode.PAPER]
    assert kid.echoMode() == QLineEdit.EchoMode.Password and sec.echoMode() == QLineEdit.EchoMode.Password
    assert kid.text() == "" and status.text() == "no keys stored"
    _type_keys(dialog, Mode.PAPER)
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        assert dialog.save_keys(Mode.PAPER)
    assert json.loads(ring.items[(SERVICE_NAME, "default:alpaca-paper")]) == {
        "key_id": KEY_ID,
        "secret": SECRET,
    }
    assert (SERVICE_NAME, "default:alpaca-live") not in ring.items  # paper keys never land in live
    assert kid.text() == "" and sec.text() == ""  # not kept in the form
    assert "stored" in status.text() and KEY_ID not in status.text()
    assert dialog.apply() is not None
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert SECRET.encode() not in data and KEY_ID.encode() not in data, f


def test_stored_state_is_shown_without_revealing_keys(
    qtbot: Any, tmp_path: Path, ring: MemoryKeyring
) -> None:
    store = SecretStore(backend=ring)
    from app.secrets import ApiKeys

    store.save("default", Mode.LIVE, ApiKeys(KEY_ID, SECRET))
    path = tmp_path / "settings.json"
    d = SettingsDialog(load(path), path, backend=SettingsFiles(), secret_store=store)
    qtbot.addWidget(d)
    qtbot.waitUntil(lambda: d.bridge.running == 0, timeout=3000)
    live_status = d.key_fields[Mode.LIVE][2].text()
    assert "stored" in live_status and KEY_ID not in live_status and SECRET not in live_status
    assert d.key_fields[Mode.PAPER][2].text() == "no keys stored"
    assert all(f.text() == "" for m in (Mode.PAPER, Mode.LIVE) for f in d.key_fields[m][:2])


def test_test_connection_shows_account_or_clear_error(qtbot: Any, dialog: SettingsDialog) -> None:
    _type_keys(dialog, Mode.PAPER)
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        assert dialog.test_connection(Mode.PAPER)
    assert dialog.test_result.text() == "✓ PAPER account PA3X7Y9Z (status ACTIVE)"
    _type_keys(dialog, Mode.PAPER, secret="wrong")
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        dialog.test_connection(Mode.PAPER)
    assert dialog.test_result.text().startswith("✗ the keys were refused by")
    assert SECRET not in dialog.test_result.text()


def test_test_connection_uses_stored_keys_when_none_are_typed(
    qtbot: Any, dialog: SettingsDialog, ring: MemoryKeyring
) -> None:
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        dialog.test_connection(Mode.LIVE)
    assert "no live keys are typed or stored" in dialog.test_result.text()
    _type_keys(dialog, Mode.LIVE)
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        dialog.save_keys(Mode.LIVE)
    with qtbot.waitSignal(dialog.bridge.finished, timeout=3000):
        dialog.test_connection(Mode.LIVE)
    assert dialog.test_result.text() == "✓ LIVE account PA3X7Y9Z (status ACTIVE)"
    assert dialog.validator_calls[-1] == (KEY_ID, SECRET, "live")  # type: ignore[attr-defined]


def test_live_needs_the_typed_word(qtbot: Any) -> None:
    d = LiveConfirmDialog()
    qtbot.addWidget(d)
    assert not d.ok.isEnabled()
    d.field.setText("live")
    assert not d.ok.isEnabled()
    d.accept()
    assert d.result() != QDialog.DialogCode.Accepted
    d.field.setText("LIVE")
    assert d.ok.isEnabled()


def test_switching_to_live_without_confirmation_keeps_the_mode(
    monkeypatch: Any, dialog: SettingsDialog, tmp_path: Path
) -> None:
    monkeypatch.setattr(LiveConfirmDialog, "exec", lambda self: int(QDialog.DialogCode.Rejected.value))
    dialog.mode_buttons[Mode.LIVE].click()
    assert dialog.selected_mode is Mode.LOCAL and dialog.mode_buttons[Mode.LOCAL].isChecked()

    def typed(self: LiveConfirmDialog) -> int:
        self.field.setText("LIVE")
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(LiveConfirmDialog, "exec", typed)
    dialog.mode_buttons[Mode.LIVE].click()
    assert dialog.selected_mode is Mode.LIVE
    saved = dialog.apply()
    assert saved is not None and saved.mode is Mode.LIVE
    assert load(dialog.path).mode is Mode.LIVE
    assert "restart" in dialog.error.text()


def test_invalid_risk_limit_shows_inline_error_and_saves_nothing(dialog: SettingsDialog) -> None:
    before = dialog.path.read_text()
    field, err = dialog.risk_fields["price_band_pct"]
    field.setText("150")
    assert not err.isHidden() and "at most 100" in err.text()
    dialog.risk_fields["max_order_qty"][0].setText("25")  # a valid change alongside
    dialog.risk_fields["max_open_orders"][0].setText("2.5")
    assert "whole number" in dialog.risk_fields["max_open_orders"][1].text()
    assert dialog.apply() is None
    assert dialog.path.read_text() == before
    assert "nothing was saved" in dialog.error.text()


def test_valid_changes_are_saved_atomically_with_types(dialog: SettingsDialog) -> None:
    dialog.risk_fields["max_order_qty"][0].setText("250")
    dialog.risk_fields["daily_loss_limit"][0].setText("")  # switched off
    dialog.risk_fields["max_open_orders"][0].setText("12")
    dialog.risk_fields["symbol_deny"][0].setText("gme, amc")
    dialog.confirm_orders.setChecked(False)
    dialog.theme.setCurrentText("light")
    dialog.nyse_hours.setChecked(True)
    dialog.seed.setValue(42)
    saved = dialog.apply()
    assert saved is not None
    s = load(dialog.path)
    assert s.risk["max_order_qty"] == "250" and s.risk["daily_loss_limit"] is None
    assert s.risk["max_open_orders"] == 12 and s.risk["symbol_deny"] == ["GME", "AMC"]
    assert (s.ui.confirm_orders, s.ui.theme) == (False, "light")
    assert (s.local_exchange.always_open, s.local_exchange.seed) == (False, 42)
    assert not list(dialog.path.parent.glob(".settings.json.tmp-*"))


def test_profiles_create_and_switch_on_restart(qtbot: Any, dialog: SettingsDialog, tmp_path: Path) -> None:
    dialog.new_profile.setText("bad name!")
    assert not dialog.create_profile()
    dialog.new_profile.setText("swing")
    assert dialog.create_profile()
    assert (tmp_path / "profiles" / "swing" / "settings.json").exists()
    items = [dialog.profiles.item(i).text() for i in range(dialog.profiles.count())]
    assert items == ["default", "swing"]
    dialog.profiles.setCurrentRow(1)
    with qtbot.waitSignal(dialog.profileSwitchRequested) as sig:
        dialog.switch_profile()
    assert sig.args == ["swing"] and "after a restart" in dialog.profile_note.text()
