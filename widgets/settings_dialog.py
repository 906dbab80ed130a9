"""The settings dialog: profiles, mode, Alpaca keys (keyring only), risk limits, UI preferences
and the local exchange.

- Keys go to the OS keyring through :class:`app.secrets.SecretStore` and nowhere else: the key
  fields are masked, never pre-filled, and the dialog only says *whether* keys are stored.
- "Test connection" runs the injected credential validator on a worker thread and shows
  paper / live / local with the account number, or the validator's clear error.
- Switching to ``alpaca-live`` requires typing ``LIVE`` in a confirmation dialog.
- Every risk limit has its unit and is validated as typed; one invalid field shows an inline error
  and nothing at all is saved. Saving goes through :func:`app.settings.save` (atomic write) after
  :func:`app.settings.from_dict` validated the whole document.
- Mode, profile and local-exchange changes take effect when Heron restarts; the dialog says so.

GUI thread only; keyring and network work runs through :class:`TaskBridge`.

Signals:
    saved(object): the new :class:`app.settings.Settings` after a successful save.
    profileSwitchRequested(str): the person chose another profile (effective on restart).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.secrets import ApiKeys, SecretStore
from app.settings import (
    INT_RISK_KEYS,
    LIST_RISK_KEYS,
    THEMES,
    Settings,
    SettingsError,
    from_dict,
    save,
)
from services.domain.enums import Mode
from widgets.models.common import named
from widgets.tasks import TaskBridge

log = logging.getLogger("heron.widgets.settings")

#: Label, unit and help for every risk limit the risk engine reads.
RISK_FIELDS: dict[str, tuple[str, str, str]] = {
    "max_order_qty": ("Max order quantity", "shares/coins", "Largest quantity of one order"),
    "max_order_notional": ("Max order notional", "USD", "Largest quantity × price of one order"),
    "price_band_pct": ("Price band", "%", "Limit price at most this far from the market"),
    "max_position_qty": ("Max position", "shares/coins", "Largest absolute position per symbol"),
    "max_gross_exposure": ("Max gross exposure", "USD", "Sum of |position value| over all symbols"),
    "max_net_exposure": ("Max net exposure", "USD", "|Sum of signed position values|"),
    "daily_loss_limit": ("Daily loss limit", "USD", "Stop opening risk after losing this much today"),
    "max_drawdown_pct": ("Max drawdown", "%", "From the session's equity peak"),
    "max_open_orders": ("Max open orders", "orders", "Open orders at once"),
    "max_orders_per_minute": ("Max orders per minute", "orders/min", "Order submissions per minute"),
    "symbol_allow": ("Allowed symbols", "list", "Only these may be traded (empty: all)"),
    "symbol_deny": ("Denied symbols", "list", "Never trade these"),
}

MODE_TEXT = {
    Mode.LOCAL: "Local paper exchange (offline, built in)",
    Mode.PAPER: "Alpaca paper trading",
    Mode.LIVE: "Alpaca LIVE trading — real money",
}

Validator = Callable[[str, str, str], Awaitable[Any]]
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


class SettingsDialog(QDialog):
    """objectName ``settingsDialog``. See the module docstring."""

    saved = Signal(object)
    profileSwitchRequested = Signal(str)

    def __init__(
        self,
        settings: Settings,
        settings_path: Path,
        *,
        profile: str = "default",
        data_root: Path | None = None,
        secret_store: SecretStore | None = None,
        validator: Validator | None = None,
        local_base_url: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle(f"Settings — profile {profile}")
        self.resize(720, 560)
        self.settings = settings
        self.path = settings_path
        self.profile = profile
        self.data_root = data_root
        self.secret_store = secret_store
        self.validator = validator
        self.local_base_url = local_base_url
        self.bridge = TaskBridge(self)
        self._mode = settings.mode
        self.tabs = named(QTabWidget(), "settingsTabs")
        self.tabs.addTab(self._general_tab(), "Profile && mode")
        self.tabs.addTab(self._keys_tab(), "Alpaca keys")
        self.tabs.addTab(self._risk_tab(), "Risk limits")
        self.tabs.addTab(self._ui_tab(), "Interface")
        self.tabs.addTab(self._exchange_tab(), "Local exchange")
        self.error = named(QLabel(), "settingsError")
        self.error.setStyleSheet("color: #ef5350;")
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

    # -- tabs -------------------------------------------------------------------------------------
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
            QLabel(
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
                b.setStyleSheet("color: #ef5350; font-weight: 600;")
            self.mode_group.addButton(b, i)
            self.mode_buttons[mode] = b
            ml.addWidget(b)
        self.mode_buttons[self._mode].setChecked(True)
        self.mode_group.buttonClicked.connect(lambda b: self._mode_clicked(b))
        lay.addWidget(prof, 1)
        lay.addWidget(modes)
        return page

    def _keys_tab(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        note = QLabel(
            "Keys are stored only in the operating system's keyring (one entry per profile and mode), "
            "never in settings files, logs or the database. Stored keys are never shown again."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: #8a93a0;")
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
            status = named(QLabel(), f"{tag}KeyStatus")
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
        self.test_result = named(QLabel(), "connectionResult")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.test_result)
        lay.addStretch(1)
        return page

    def _risk_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.risk_fields: dict[str, tuple[QLineEdit, QLabel]] = {}
        for key, (label, unit, tip) in RISK_FIELDS.items():
            value = self.settings.risk.get(key)
            field = named(QLineEdit(), f"risk_{key}")
            if key in LIST_RISK_KEYS:
                field.setText(", ".join(value or []))
                field.setPlaceholderText("e.g. AAPL, MSFT, BTC/USD")
            else:
                field.setText("" if value is None else str(value))
                field.setPlaceholderText("empty: no limit")
            field.setToolTip(tip)
            err = named(QLabel(), f"riskError_{key}")
            err.setStyleSheet("color: #ef5350;")
            err.hide()
            field.textChanged.connect(lambda _t, k=key: self._check_risk_field(k))
            row = QHBoxLayout()
            row.addWidget(field, 1)
            unit_label = QLabel(unit)
            unit_label.setMinimumWidth(80)
            unit_label.setStyleSheet("color: #8a93a0;")
            row.addWidget(unit_label)
            col = QVBoxLayout()
            col.setSpacing(1)
            col.addLayout(row)
            col.addWidget(err)
            form.addRow(label, col)
            self.risk_fields[key] = (field, err)
        return page

    def _ui_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.confirm_orders = named(QCheckBox("Confirm every order in paper and local mode"), "confirmOrders")
        self.confirm_orders.setChecked(self.settings.ui.confirm_orders)
        self.confirm_orders.setToolTip("Live orders are always confirmed")
        self.theme = named(QComboBox(), "themeCombo")
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(self.settings.ui.theme)
        form.addRow(self.confirm_orders)
        form.addRow("Theme", self.theme)
        return page

    def _exchange_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        ex = self.settings.local_exchange
        self.always_open = named(QRadioButton("Always open (trade any time)"), "alwaysOpen")
        self.nyse_hours = named(QRadioButton("Real NYSE hours and holidays"), "nyseHours")
        (self.always_open if ex.always_open else self.nyse_hours).setChecked(True)
        self.seed = named(QSpinBox(), "exchangeSeed")
        self.seed.setRange(0, 2_000_000_000)
        self.seed.setValue(ex.seed)
        self.seed.setToolTip("Same seed, same simulated market")
        self.symbols = named(QLineEdit(", ".join(ex.symbols)), "exchangeSymbols")
        self.symbols_error = named(QLabel(), "exchangeSymbolsError")
        self.symbols_error.setStyleSheet("color: #ef5350;")
        self.symbols_error.hide()
        form.addRow("Session", self.always_open)
        form.addRow("", self.nyse_hours)
        form.addRow("Seed", self.seed)
        form.addRow("Symbols", self.symbols)
        form.addRow("", self.symbols_error)
        note = QLabel("Local exchange changes take effect when Heron restarts its exchange.")
        note.setStyleSheet("color: #8a93a0;")
        form.addRow(note)
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
                "<span style='color:#ef5350'>A profile name is 1-40 of A-Z a-z 0-9 _ . - "
                f"(got {name!r})</span>"
            )
            return False
        if self.data_root is None:
            self.profile_note.setText("<span style='color:#ef5350'>No data directory is known here</span>")
            return False
        from app.paths import DataDirError, prepare, resolve_paths
        from app.settings import load

        try:
            paths = prepare(resolve_paths(name, self.data_root))
            load(paths.settings_file)  # writes the defaults for a new profile
        except (DataDirError, SettingsError) as exc:
            self.profile_note.setText(f"<span style='color:#ef5350'>{exc}</span>")
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
        label.setStyleSheet(f"color: {'#26a69a' if found else '#8a93a0'};")

    @staticmethod
    def _show_stored_error(label: QLabel, exc: BaseException) -> None:
        label.setText(f"keyring unavailable: {exc}")
        label.setStyleSheet("color: #ef5350;")

    def _typed_keys(self, mode: Mode) -> ApiKeys | None:
        key_id, secret, _ = self.key_fields[mode]
        try:
            return ApiKeys(key_id.text().strip(), secret.text().strip())
        except ValueError:
            return None

    def save_keys(self, mode: Mode) -> bool:
        key_id, secret, status = self.key_fields[mode]
        keys = self._typed_keys(mode)
        if keys is None:
            status.setText("enter both the key id and the secret")
            status.setStyleSheet("color: #ef5350;")
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
        color = {True: "#26a69a", False: "#ef5350", None: "#aab2bf"}[ok]
        self.test_result.setStyleSheet(f"color: {color};")

    # -- validation and save ----------------------------------------------------------------------
    def _check_risk_field(self, key: str) -> Any:
        """Parse one risk field; show an inline error and return ``_INVALID`` when it is wrong."""
        field, err = self.risk_fields[key]
        text = field.text().strip()
        problem = None
        value: Any = None
        unit = RISK_FIELDS[key][1]
        if key in LIST_RISK_KEYS:
            value = [s.strip() for s in re.split(r"[,;\s]+", text) if s.strip()]
        elif text == "":
            value = None
        elif key in INT_RISK_KEYS:
            if not text.isdigit():
                problem = f"a whole number of {unit} ≥ 0, or empty for no limit"
            else:
                value = int(text)
        else:
            try:
                dec = Decimal(text.replace(",", ""))
            except InvalidOperation:
                dec = None
            if dec is None or not dec.is_finite():
                problem = f"a number in {unit}, or empty for no limit"
            elif dec < 0:
                problem = "must be zero or positive"
            elif key.endswith("_pct") and dec > 100:
                problem = "a percentage, at most 100"
            else:
                value = text.replace(",", "")
        if problem:
            err.setText(problem)
            err.show()
            field.setProperty("invalid", True)
            field.setStyleSheet("border: 1px solid #ef5350;")
            return _INVALID
        err.hide()
        field.setStyleSheet("")
        return value

    def collect(self) -> dict[str, Any] | None:
        """The settings document from the form, or None when any field is invalid (errors shown)."""
        risk: dict[str, Any] = {}
        bad = False
        for key in RISK_FIELDS:
            value = self._check_risk_field(key)
            if value is _INVALID:
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
        if bad:
            self.error.setText("Some fields are invalid; nothing was saved.")
            return None
        data = self.settings.to_dict()
        data["mode"] = self._mode.value
        data["risk"] = risk
        data["ui"] = {"confirm_orders": self.confirm_orders.isChecked(), "theme": self.theme.currentText()}
        data["local_exchange"] = {
            "always_open": self.always_open.isChecked(),
            "seed": self.seed.value(),
            "symbols": symbols,
        }
        return data

    def apply(self) -> Settings | None:
        """Validate everything and save atomically; returns the saved settings or None."""
        data = self.collect()
        if data is None:
            return None
        try:
            new = from_dict(data)
            save(new, self.path)
        except SettingsError as exc:
            self.error.setText(f"Not saved: {exc}")
            return None
        restart = new.mode is not self.settings.mode
        self.settings = new
        self.error.setText("Saved. Mode changes take effect when Heron restarts." if restart else "")
        log.info(
            "settings saved to %s (mode %s%s)",
            self.path,
            new.mode.value,
            ", restart needed" if restart else "",
        )
        self.saved.emit(new)
        return new

    def save_and_close(self) -> None:
        if self.apply() is not None:
            self.accept()


_INVALID = object()


if __name__ == "__main__":  # preview: uv run python -m widgets.settings_dialog [--screenshot FILE]
    import sys
    import tempfile

    from app.settings import load
    from widgets.standalone import make_app, preview_args, show_preview

    args = preview_args("Heron settings dialog preview (a temporary profile, no keyring)")
    app = make_app()
    root = Path(tempfile.mkdtemp(prefix="heron-settings-preview-"))
    (root / "profiles" / "default").mkdir(parents=True)
    (root / "profiles" / "swing").mkdir(parents=True)
    path = root / "profiles" / "default" / "settings.json"
    dialog = SettingsDialog(load(path), path, profile="default", data_root=root)
    tab = 2 if args.screenshot and "risk" in str(args.screenshot) else 0
    dialog.tabs.setCurrentIndex(tab)
    dialog.risk_fields["price_band_pct"][0].setText("150")
    sys.exit(show_preview(app, dialog, args))
