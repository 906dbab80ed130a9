"""CSV values are data (empty for absent, ISO-8601 UTC with offset, exact decimals), and every
export's save dialog starts in the user's documents folder (the home folder when there is none)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QMessageBox

from services.domain.enums import OrderSide
from widgets.blotter import BlotterPanel
from widgets.csv_export import cell, default_path, write_csv
from widgets.preview_rig import reconciliation_rig
from widgets.reconciliation import ReconciliationPanel


def test_cells_are_values_not_display_text(tmp_path: Path) -> None:
    eastern = timezone(timedelta(hours=-5))
    assert cell(None) == ""
    assert cell(Decimal("0.1") + Decimal("0.2")) == "0.3"
    assert cell(Decimal("12345678.000000001")) == "12345678.000000001"  # no float, no separators
    assert cell(Decimal("1E+3")) == "1000"
    assert cell(datetime(2026, 3, 2, 10, 0, tzinfo=eastern)) == "2026-03-02T15:00:00+00:00"
    assert cell(OrderSide.SELL) == "sell"
    assert cell(True) == "true"
    with pytest.raises(ValueError, match="naive"):
        cell(datetime(2026, 3, 2, 10, 0))
    with pytest.raises(TypeError, match="float"):
        cell(0.1)
    assert write_csv(tmp_path / "x.csv", ["a", "b"], [[None, Decimal("2.50")]]) == 1
    assert (tmp_path / "x.csv").read_bytes() == b"a,b\r\n,2.5\r\n"


def _documents() -> str:
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)


@pytest.fixture
def home(monkeypatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A home folder of the test's own, without a Documents folder (a fresh or minimal account)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user-dirs.dirs
    return home


def test_without_a_documents_folder_dialogs_start_at_home(home: Path, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # never the directory Heron was started from
    assert not Path(_documents()).exists()
    assert default_path("a.csv") == str(home / "a.csv")
    (home / "Documents").mkdir()
    assert default_path("a.csv") == str(home / "Documents" / "a.csv")


def test_save_dialogs_start_in_documents(qtbot, monkeypatch, tmp_path: Path, home: Path) -> None:  # type: ignore[no-untyped-def]
    (home / "Documents").mkdir()
    starts: list[str] = []

    def fake_dialog(parent: Any, title: str, start: str, filters: str) -> tuple[str, str]:
        starts.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    assert default_path("a.csv") == str(Path(_documents()) / "a.csv")

    blotter = BlotterPanel(_NoStore())
    qtbot.addWidget(blotter)
    blotter.export_button.click()
    blotter.tabs.setCurrentIndex(1)
    blotter.export_button.click()
    recon = ReconciliationPanel(reconciliation_rig(tmp_path).reconciler, operator="t", refresh_ms=60_000)
    qtbot.addWidget(recon)
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a: None))
    recon._export()
    assert starts == [default_path("heron-orders.csv"), default_path("heron-fills.csv"),
                      default_path("heron-trades.csv")]  # fmt: skip
    assert all(Path(s).parent == Path(_documents()) for s in starts)


class _NoStore:
    def orders(self) -> list[object]:
        return []

    def view(self, rec: object) -> Any:
        raise AssertionError("no records")

    def find(self, **_: object) -> None:
        return None
