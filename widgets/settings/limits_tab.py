"""The settings dialog's risk-limit, interface and local-exchange tabs. Every risk limit has its
unit and is checked as typed; an invalid one shows an inline error."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from widgets.message_label import MessageLabel
from widgets.models.common import TIME_DISPLAY_TEXT, named
from widgets.settings.backend import ERROR_COLOR, MUTED_COLOR, SettingsBackend

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

#: What :meth:`LimitsTab._check_risk_field` returns for a field that is wrong.
INVALID = object()


class LimitsTab(QDialog):
    """The settings dialog's risk, interface and exchange parts (a base of :class:`SettingsDialog`)."""

    #: The settings being edited (``app.settings.Settings``).
    settings: Any
    backend: SettingsBackend

    def _risk_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.risk_fields: dict[str, tuple[QLineEdit, QLabel]] = {}
        for key, (label, unit, tip) in RISK_FIELDS.items():
            value = self.settings.risk.get(key)
            field = named(QLineEdit(), f"risk_{key}")
            if key in self.backend.list_risk_keys:
                field.setText(", ".join(value or []))
                field.setPlaceholderText("e.g. AAPL, MSFT, BTC/USD")
            else:
                field.setText("" if value is None else str(value))
                field.setPlaceholderText("empty: no limit")
            field.setToolTip(tip)
            err = named(MessageLabel(), f"riskError_{key}")
            err.setStyleSheet(f"color: {ERROR_COLOR};")
            err.hide()
            field.textChanged.connect(lambda _t, k=key: self._check_risk_field(k))
            row = QHBoxLayout()
            row.addWidget(field, 1)
            unit_label = QLabel(unit)
            unit_label.setMinimumWidth(80)
            unit_label.setStyleSheet(f"color: {MUTED_COLOR};")
            row.addWidget(unit_label)
            col = QVBoxLayout()
            col.setSpacing(1)
            col.addLayout(row)
            col.addWidget(err)
            form.addRow(label, col)
            self.risk_fields[key] = (field, err)
        note = named(
            QLabel("Limits apply to the next pre-check and order as soon as you save."), "riskLiveNote"
        )
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {MUTED_COLOR};")
        form.addRow(note)
        return page

    def _ui_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.confirm_orders = named(QCheckBox("Confirm every order in paper and local mode"), "confirmOrders")
        self.confirm_orders.setChecked(self.settings.ui.confirm_orders)
        self.confirm_orders.setToolTip("Live orders are always confirmed")
        self.theme = named(QComboBox(), "themeCombo")
        self.theme.addItems(list(self.backend.themes))
        self.theme.setCurrentText(self.settings.ui.theme)
        self.time_zone = named(QComboBox(), "timeZoneCombo")
        for display, text in TIME_DISPLAY_TEXT.items():
            self.time_zone.addItem(text, display.value)
        self.time_zone.setCurrentIndex(max(0, self.time_zone.findData(self.settings.ui.time_zone)))
        self.time_zone.setToolTip(
            "Every time in the window and its column headers; applied as soon as you save"
        )
        form.addRow(self.confirm_orders)
        form.addRow("Times shown in", self.time_zone)
        form.addRow("Theme", self.theme)
        restart = named(QLabel("Takes effect after restart"), "themeRestartNote")
        restart.setStyleSheet(f"color: {MUTED_COLOR};")
        form.addRow("", restart)
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
        self.symbols_error = named(MessageLabel(), "exchangeSymbolsError")
        self.symbols_error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.symbols_error.hide()
        form.addRow("Session", self.always_open)
        form.addRow("", self.nyse_hours)
        form.addRow("Seed", self.seed)
        form.addRow("Symbols", self.symbols)
        form.addRow("", self.symbols_error)
        note = QLabel("Local exchange changes take effect when Heron restarts its exchange.")
        note.setStyleSheet(f"color: {MUTED_COLOR};")
        form.addRow(note)
        return page

    def _check_risk_field(self, key: str) -> Any:
        """Parse one risk field; show an inline error and return ``INVALID`` when it is wrong."""
        field, err = self.risk_fields[key]
        text = field.text().strip()
        problem = None
        value: Any = None
        unit = RISK_FIELDS[key][1]
        if key in self.backend.list_risk_keys:
            value = [s.strip() for s in re.split(r"[,;\s]+", text) if s.strip()]
        elif text == "":
            value = None
        elif key in self.backend.int_risk_keys:
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
            field.setStyleSheet(f"border: 1px solid {ERROR_COLOR};")
            return INVALID
        err.hide()
        field.setStyleSheet("")
        return value
