"""The settings dialog's Strategy lab tab: where sweeps run by default (a local cluster on this computer
and its size, or a Dask scheduler's address with the TLS files a remote one needs). The lab window
starts from these and can change them for one sweep; a saved change applies to the next sweep."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget

from widgets.models.common import named
from widgets.settings.backend import MUTED_COLOR


class LabTab(QWidget):
    """objectName ``labSettingsTab``: ``labSettingsScheduler``, ``labSettingsWorkers``,
    ``labSettingsInsecure``, ``labSettingsTlsCa``, ``labSettingsTlsCert``, ``labSettingsTlsKey``."""

    def __init__(self, lab: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labSettingsTab")
        form = QFormLayout(self)
        self.scheduler = named(QLineEdit(lab.scheduler), "labSettingsScheduler",
                               placeholderText="empty: a local cluster on this computer")  # fmt: skip
        self.scheduler.setToolTip("A Dask scheduler such as tls://scheduler.example:8786")
        self.workers = named(QSpinBox(), "labSettingsWorkers", specialValueText="automatic (cores − 1)")
        self.workers.setRange(0, max(1, os.cpu_count() or 1))  # one local worker per CPU at most
        self.workers.setValue(lab.workers)
        self.insecure = named(
            QCheckBox("Allow a plain tcp:// scheduler on another computer"), "labSettingsInsecure"
        )
        self.insecure.setChecked(lab.allow_insecure_tcp)
        self.insecure.setToolTip(
            "A plain Dask scheduler has no authentication: anyone who reaches it runs code"
        )
        self.tls = {
            key: named(QLineEdit(getattr(lab, key)), f"labSettings{name}", placeholderText=hint)
            for key, name, hint in (
                ("tls_ca", "TlsCa", "the cluster's CA certificate (PEM)"),
                ("tls_cert", "TlsCert", "this computer's client certificate (PEM)"),
                ("tls_key", "TlsKey", "its private key (PEM)"),
            )
        }
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Local workers", self.workers)
        form.addRow("", self.insecure)
        form.addRow("TLS CA file", self.tls["tls_ca"])
        form.addRow("TLS certificate", self.tls["tls_cert"])
        form.addRow("TLS key", self.tls["tls_key"])
        note = QLabel("Applies to the next sweep; the Strategy lab can change it for one sweep.")
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {MUTED_COLOR};")
        form.addRow(note)

    def collect(self) -> dict[str, Any]:
        """The lab section of the settings document (checked when saved)."""
        return {
            "scheduler": self.scheduler.text().strip(),
            "workers": self.workers.value(),
            "allow_insecure_tcp": self.insecure.isChecked(),
            **{key: edit.text().strip() for key, edit in self.tls.items()},
        }
