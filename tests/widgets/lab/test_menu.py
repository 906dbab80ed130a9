"""Strategies → Strategy lab…: a window command with its own (configurable) shortcut."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMenu

from services.domain.enums import Mode
from widgets.main_window import MainWindow
from widgets.shortcuts import COMMANDS, Command, bindings, problems


def test_the_strategies_menu_holds_the_lab_with_its_shortcut(qtbot: Any) -> None:
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    menu = win.findChild(QMenu, "strategiesMenu")
    assert menu is not None and menu.title() == "&Strategies"
    action = win.commands[Command.STRATEGY_LAB]
    assert action in menu.actions()
    assert action.text().replace("&", "") == "Strategy lab… (parameter sweeps)"
    assert action.shortcut().toString() == "Ctrl+Shift+L"
    assert not action.isEnabled()  # until the session's lab is wired
    opened: list[int] = []
    win.connect_command(Command.STRATEGY_LAB, lambda: opened.append(1))
    action.trigger()
    assert opened == [1]
    assert problems(bindings()) == {} and COMMANDS[Command.STRATEGY_LAB].sends_order is False


def test_the_readme_names_the_labs_menu_key_and_screenshot() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    text = (repo / "README.md").read_text()
    key = COMMANDS[Command.STRATEGY_LAB].default
    assert f"**Strategies → Strategy lab…** ({key}, rebindable in Settings → Shortcuts)" in text
    assert "![The Strategy lab after a grid sweep of the SMA crossover](resources/strategy-lab.png)" in text
    shot = (repo / "resources" / "strategy-lab.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000
