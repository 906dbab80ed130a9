"""The settings dialog's keys tab: Alpaca paper and live keys go to the OS keyring and nowhere else
(masked fields, never pre-filled; the tab only says *whether* keys are stored), and "Test
connection" runs the injected credential validator off the GUI thread."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import Mode
from widgets.message_label import MessageLabel
from widgets.models.common import named
from widgets.settings.backend import (
    ERROR_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    PENDING_COLOR,
    Keys,
    KeyStore,
    SettingsBackend,
    Validator,
)
from widgets.tasks import TaskBridge


class KeysTab(QDialog):
    """The settings dialog's keys part (a base of :class:`SettingsDialog`)."""

    profile: str
    backend: SettingsBackend
    secret_store: KeyStore | None
    validator: Validator | None
    local_base_url: str | None
    bridge: TaskBridge

    def _keys_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        note = QLabel(
            "Keys are stored only in the operating system's keyring (one entry per profile and mode), "
            "never in settings files, logs or the database. Stored keys are never shown again."
        )
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {MUTED_COLOR};")
        lay.addWidget(note)
        self.key_fields: dict[Mode, tuple[QLineEdit, QLineEdit, QLabel]] = {}
        for mode in (Mode.PAPER, Mode.LIVE):
            tag = "paper" if mode is Mode.PAPER else "live"
            box = QGroupBox(f"Alpaca {tag} keys")
            form = QFormLayout(box)
            key_id = named(QLineEdit(), f"{tag}KeyId")
            secret = named(QLineEdit(), f"{tag}Secret")
            for f in (key_id, secret):
                f.setEchoMode(QLineEdit.EchoMode.Password)
                f.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)
            key_id.setPlaceholderText("API key id")
            secret.setPlaceholderText("API secret key")
            status = named(MessageLabel(), f"{tag}KeyStatus")
            form.addRow("Key id", key_id)
            form.addRow("Secret", secret)
            form.addRow("Stored", status)
            buttons = QHBoxLayout()
            store = named(QPushButton("Save to keyring"), f"{tag}SaveKeys")
            store.clicked.connect(lambda _=False, m=mode: self.save_keys(m))
            delete = named(QPushButton("Delete stored keys"), f"{tag}DeleteKeys")
            delete.clicked.connect(lambda _=False, m=mode: self.delete_keys(m))
            test = named(QPushButton("Test connection"), f"{tag}TestConnection")
            test.clicked.connect(lambda _=False, m=mode: self.test_connection(m))
            buttons.addWidget(store)
            buttons.addWidget(delete)
            buttons.addStretch(1)
            buttons.addWidget(test)
            form.addRow(buttons)
            self.key_fields[mode] = (key_id, secret, status)
            lay.addWidget(box)
        local = QHBoxLayout()
        test_local = named(QPushButton("Test local exchange"), "localTestConnection")
        test_local.clicked.connect(lambda: self.test_connection(Mode.LOCAL))
        test_local.setEnabled(self.local_base_url is not None)
        local.addWidget(test_local)
        local.addStretch(1)
        lay.addLayout(local)
        self.test_result = named(MessageLabel(), "connectionResult")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.test_result)
        lay.addStretch(1)
        return page

    # -- keys -------------------------------------------------------------------------------------
    def refresh_key_status(self) -> None:
        """Ask the keyring (off the GUI thread) whether keys are stored; never shows them."""
        store = self.secret_store
        for mode, (_kid, _sec, status) in self.key_fields.items():
            if store is None:
                status.setText("No keyring access in this session")
                continue
            status.setText("checking…")

            def probe(m: Mode = mode) -> bool:
                assert store is not None
                return store.load(self.profile, m) is not None

            def shown(found: bool, s: QLabel = status) -> None:
                self._show_stored(s, found)

            def failed(exc: BaseException, s: QLabel = status) -> None:
                self._show_stored_error(s, exc)

            self.bridge.run_blocking(probe, shown, failed)

    @staticmethod
    def _show_stored(label: QLabel, found: bool) -> None:
        label.setText("✓ keys are stored in the keyring" if found else "no keys stored")
        label.setStyleSheet(f"color: {OK_COLOR if found else MUTED_COLOR};")

    @staticmethod
    def _show_stored_error(label: QLabel, exc: BaseException) -> None:
        label.setText(f"keyring unavailable: {exc}")
        label.setStyleSheet(f"color: {ERROR_COLOR};")

    def _typed_keys(self, mode: Mode) -> Keys | None:
        key_id, secret, _ = self.key_fields[mode]
        try:
            return self.backend.keys(key_id.text().strip(), secret.text().strip())
        except ValueError:
            return None

    def save_keys(self, mode: Mode) -> bool:
        key_id, secret, status = self.key_fields[mode]
        keys = self._typed_keys(mode)
        if keys is None:
            status.setText("enter both the key id and the secret")
            status.setStyleSheet(f"color: {ERROR_COLOR};")
            return False
        if self.secret_store is None:
            status.setText("No keyring access in this session")
            return False
        store = self.secret_store
        status.setText("saving…")

        def done(_: object) -> None:
            key_id.clear()
            secret.clear()
            self._show_stored(status, True)

        self.bridge.run_blocking(
            lambda: store.save(self.profile, mode, keys), done, lambda e: self._show_stored_error(status, e)
        )
        return True

    def delete_keys(self, mode: Mode) -> None:
        if self.secret_store is None:
            return
        store = self.secret_store
        status = self.key_fields[mode][2]
        self.bridge.run_blocking(
            lambda: store.delete(self.profile, mode),
            lambda _: self._show_stored(status, False),
            lambda e: self._show_stored_error(status, e),
        )

    def test_connection(self, mode: Mode) -> bool:
        """Validate typed keys (or the stored ones) off the GUI thread; show who they belong to."""
        if self.validator is None:
            self._result("Connection testing is not available in this session", ok=False)
            return False
        validator = self.validator
        environment = {Mode.LOCAL: "local", Mode.PAPER: "paper", Mode.LIVE: "live"}[mode]
        if mode is Mode.LOCAL:
            self._result("Testing the local exchange…", ok=None)
            self.bridge.run_coroutine(
                lambda: validator("", "", environment), self._show_identity, self._show_failure
            )
            return True
        typed = self._typed_keys(mode)
        store = self.secret_store
        if typed is None and store is None:
            self._result("Enter a key id and secret to test", ok=False)
            return False
        self._result(f"Testing {environment} keys…", ok=None)

        async def check() -> Any:
            keys = typed
            if keys is None:
                assert store is not None
                import asyncio

                keys = await asyncio.to_thread(store.load, self.profile, mode)
                if keys is None:
                    raise ValueError(
                        f"no {environment} keys are typed or stored for profile {self.profile!r}"
                    )
            return await validator(keys.key_id, keys.secret, environment)

        self.bridge.run_coroutine(check, self._show_identity, self._show_failure)
        return True

    def _show_identity(self, identity: Any) -> None:
        env = str(getattr(identity, "environment", "?")).upper()
        self._result(
            f"✓ {env} account {identity.account_number} (status {identity.status or 'unknown'})", ok=True
        )

    def _show_failure(self, exc: BaseException) -> None:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self._result(f"✗ {message}", ok=False)

    def _result(self, text: str, ok: bool | None) -> None:
        self.test_result.setText(text)
        color = {True: OK_COLOR, False: ERROR_COLOR, None: PENDING_COLOR}[ok]
        self.test_result.setStyleSheet(f"color: {color};")
