"""Keyboard shortcuts: shown in the menus, listed in Help → Keyboard shortcuts, changeable in the
settings (conflicts refused, saved, applied at once), and none is a surprise: Ctrl+S sends no order
and no key with fewer than two modifiers sends one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication

from app.context import Services
from app.qt.panels.trading import TradingPanels, _link
from app.qt.settings_access import SettingsFiles, apply_live
from app.settings import load
from services.domain.enums import Mode
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, run_until_idle
from widgets.main_window import MainWindow
from widgets.order_ticket import OrderTicket
from widgets.settings_dialog import SettingsDialog
from widgets.shortcuts import COMMANDS, Command, ShortcutsDialog, bindings, modifier_count, problems

qloop = trading_rig.qloop
rig = trading_rig.rig


def _desk(qtbot: Any, rig: Rig) -> tuple[MainWindow, OrderTicket]:
    """The main window with the ticket wired as the terminal wires it (its trade commands)."""
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    ticket = OrderTicket(rig.engine, mode=Mode.LOCAL, confirm_orders=False)
    ticket._assets["AAPL"] = rig.broker._assets["AAPL"]
    win.add_panel(ticket, "orderTicket", "Order ticket", "left")
    _link(win, TradingPanels(ticket=ticket), {"symbol": ""})
    ticket.symbol_edit.setText("AAPL")
    ticket.amount_edit.setText("1")
    ticket.type_combo.setCurrentText("limit")
    ticket.limit_edit.setText("100")
    return win, ticket


def _bound(win: MainWindow) -> list[tuple[str, Any]]:
    """Every key sequence bound in the window, with what fires it (a QAction or a QShortcut)."""
    out: list[tuple[str, Any]] = []
    for action in win.findChildren(QAction):
        out += [(k.toString(), action.trigger) for k in action.shortcuts() if not k.isEmpty()]
    for shortcut in win.findChildren(QShortcut):
        out += [(shortcut.key().toString(), shortcut.activated.emit)]
    return out


def test_no_key_with_fewer_than_two_modifiers_sends_an_order(qtbot: Any, rig: Rig, qloop: Any) -> None:
    """Ctrl+S is save everywhere else: it, F1 (help) and every other key on one modifier or none
    must not send an order, even with order confirmation off."""
    win, _ticket = _desk(qtbot, rig)
    bound = _bound(win)
    assert bound and "Ctrl+S" not in [k for k, _ in bound]
    quit_keys = QKeySequence(QKeySequence.StandardKey.Quit).toString()
    for keys, fire in bound:
        if modifier_count(keys) < 2 and keys != quit_keys:
            fire()
    QApplication.processEvents()
    run_until_idle(qloop)
    assert rig.broker.submits_received == []
    for dialog in QApplication.topLevelWidgets():  # F1 opened the shortcuts list
        if isinstance(dialog, ShortcutsDialog):
            dialog.close()
    # the order keys that exist take two modifiers, and the menus show them
    for command, spec in COMMANDS.items():
        if spec.sends_order:
            assert modifier_count(win.commands[command].shortcut().toString()) >= 2
    assert win.commands[Command.SELL].shortcut().toString() == "Ctrl+Shift+S"
    assert win.commands[Command.SHORTCUTS].shortcut().toString() == "F1"  # F1 is help


def test_help_lists_every_shortcut_in_a_table(qtbot: Any) -> None:
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions()}
    assert win.commands[Command.SHORTCUTS] in menus["Help"].actions()  # type: ignore[union-attr]
    assert win.commands[Command.BUY] in menus["Trade"].actions()  # type: ignore[union-attr]
    dialog = win.show_shortcuts()
    qtbot.addWidget(dialog)
    assert isinstance(dialog, ShortcutsDialog) and dialog.table.rowCount() == len(COMMANDS)
    rows = {dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text() for r in range(len(COMMANDS))}
    native = QKeySequence("Ctrl+Shift+B").toString(QKeySequence.SequenceFormat.NativeText)
    assert rows["Buy (submit the ticket)"] == native and rows["Keyboard shortcuts"] == "F1"


def test_bindings_that_would_surprise_are_refused() -> None:
    keys = bindings()
    assert problems(keys) == {}
    keys[Command.SELL] = "Ctrl+S"
    keys[Command.BUY] = "F2"
    keys[Command.CANCEL_ALL] = "Ctrl+Q"  # already Quit
    found = problems(keys)
    assert "two modifier keys" in found[Command.SELL] and "two modifier keys" in found[Command.BUY]
    assert "already Quit" in found[Command.CANCEL_ALL] or "already Cancel all" in found[Command.QUIT]
    assert bindings({"sell": "Ctrl+Alt+S", "no_such_command": "X"})[Command.SELL] == "Ctrl+Alt+S"


def test_changed_shortcuts_are_saved_and_apply_at_once(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    ctx = SimpleNamespace(settings=load(path))
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    services = Services(mode=Mode.LOCAL)
    d = SettingsDialog(ctx.settings, path, backend=SettingsFiles(),
                       apply_live=lambda new: apply_live(win, ctx, services, new))  # fmt: skip
    qtbot.addWidget(d)
    tab = d.shortcuts_tab
    tab.edits[Command.SELL].setKeySequence(QKeySequence("Ctrl+Q"))  # Quit's keys: refused
    before = path.read_text() if path.exists() else ""
    assert d.apply() is None and "already" in tab.error.text()
    assert (path.read_text() if path.exists() else "") == before
    tab.edits[Command.SELL].setKeySequence(QKeySequence("Shift+S"))  # one modifier: refused
    assert d.apply() is None and "two modifier keys" in tab.error.text()
    tab.edits[Command.SELL].setKeySequence(QKeySequence("Ctrl+Alt+S"))
    assert d.apply() is not None
    assert win.commands[Command.SELL].shortcut().toString() == "Ctrl+Alt+S"
    assert load(path).ui.shortcuts == {"sell": "Ctrl+Alt+S"}
    tab.restore_defaults()
    assert d.apply() is not None and load(path).ui.shortcuts == {}
    assert win.commands[Command.SELL].shortcut().toString() == "Ctrl+Shift+S"
