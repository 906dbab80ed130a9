"""The declarative panel lists: one installer puts each spec's panel in its dock, leaves out a panel
whose service is missing (saying why), and tabs a panel with another only when that one exists."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.context import Services
from app.qt.panels.ops import OPS_PANELS
from app.qt.panels.spec import PanelEnv, PanelSpec, install_panels, need
from app.qt.panels.trading import PANEL_NAMES, TRADING_PANELS
from services.domain.enums import Mode


def test_need_names_the_missing_service_and_why() -> None:
    services = Services(mode=Mode.LOCAL, failures={"engine": "no exchange"})
    assert need(3, "engine", services) == 3
    with pytest.raises(LookupError, match=r"engine is not available \(no exchange\)"):
        need(None, "engine", services)
    with pytest.raises(LookupError, match=r"book is not available \(not running\)"):
        need(None, "book", services)


def test_the_lists_declare_every_dock_once() -> None:
    names = [spec.object_name for spec in (*TRADING_PANELS, *OPS_PANELS)]
    assert len(names) == len(set(names))
    assert PANEL_NAMES == ("watchlist", "order_ticket", "blotter", "positions", "account")
    assert [spec.key for spec in TRADING_PANELS if spec.deferred] == ["account"]
    assert [spec.key for spec in OPS_PANELS if spec.deferred] == ["shadow"]


def test_install_panels_leaves_out_a_missing_panel_and_tabs_only_with_an_existing_dock(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QLabel

    from widgets.main_window import MainWindow

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    services = Services(mode=Mode.LOCAL)

    def broken(env: PanelEnv) -> Any:
        raise LookupError("engine is not available (not running)")

    specs = [
        PanelSpec("a", "aPanel", "A", "bottom", lambda env: QLabel("a"), tab_with="missingPanel"),
        PanelSpec("b", "bPanel", "B", "bottom", broken),
        PanelSpec("c", "cPanel", "C", "bottom", lambda env: QLabel("c"), tab_with="aPanel"),
        PanelSpec("d", "dPanel", "D", "left", lambda env: QLabel("d"), deferred=True, loading="D: loading…"),
    ]
    missing: list[tuple[str, str]] = []
    env = PanelEnv(SimpleNamespace(), services, window)  # type: ignore[arg-type]
    out = install_panels(
        window, specs, env, defer_plots=True, on_missing=lambda s, e: missing.append((s.key, str(e)))
    )
    assert set(out.built) == {"a", "c", "d"} and [s.key for s in out.deferred] == ["d"]
    assert missing == [("b", "engine is not available (not running)")]
    assert window.panel("bPanel") is None
    assert {"aPanel", "cPanel", "dPanel"} <= set(window.panel_names())
    note = window.panel("dPanel").widget()  # type: ignore[union-attr]
    assert isinstance(note, QLabel) and note.text() == "D: loading…"
