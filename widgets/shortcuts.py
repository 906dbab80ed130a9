"""Heron's keyboard shortcuts: the commands, their default keys, the rules a binding must keep, the
Help → Keyboard shortcuts dialog and the settings' Shortcuts tab.

Every command is a menu action of the main window (so its shortcut is shown in the menu); the
person can rebind any of them in Settings → Shortcuts, and the new keys apply as soon as Save
succeeds. Rules (:func:`problems`):

- no two commands share a key sequence;
- a command that sends an order at once (Buy, Sell: the ticket's order) needs two modifier keys
  (Ctrl+Shift+B), so no ordinary keystroke or common editor shortcut sends an order: Ctrl+S is save
  everywhere else, and F1 is help;
- Cancel all and Flatten all ask before they act, whatever key starts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from widgets.message_label import MessageLabel
from widgets.models.common import named


class Command(StrEnum):
    """A window command that can have a keyboard shortcut (the ``ui.shortcuts`` setting's keys)."""

    SETTINGS = "settings"
    QUIT = "quit"
    BUY = "buy"
    SELL = "sell"
    CANCEL_LAST = "cancel_last"
    CANCEL_ALL = "cancel_all"
    FLATTEN_ALL = "flatten_all"
    KILL_SWITCH = "kill_switch"
    STRATEGY_LAB = "strategy_lab"
    SHORTCUTS = "shortcuts"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    title: str  # the menu text
    default: str  # portable key sequence text, "" for none
    sends_order: bool = False  # sends an order without asking first (in paper/local, unconfirmed)
    note: str = ""


COMMANDS: dict[Command, CommandSpec] = {
    Command.SETTINGS: CommandSpec("&Settings…", "Ctrl+,"),
    Command.QUIT: CommandSpec("&Quit", "Ctrl+Q"),
    Command.BUY: CommandSpec("&Buy (submit the ticket)", "Ctrl+Shift+B", sends_order=True,
                             note="Confirmed when order confirmation is on (always in live mode)"),
    Command.SELL: CommandSpec("&Sell (submit the ticket)", "Ctrl+Shift+S", sends_order=True,
                              note="Confirmed when order confirmation is on (always in live mode)"),
    Command.CANCEL_LAST: CommandSpec("Cancel &last manual order", "Ctrl+Shift+X"),
    Command.CANCEL_ALL: CommandSpec("Cancel &all open orders…", "Ctrl+Shift+K", note="Asks first"),
    Command.FLATTEN_ALL: CommandSpec("&Flatten all positions…", "Ctrl+Shift+F", note="Asks first"),
    Command.KILL_SWITCH: CommandSpec("&Kill switch… (halt trading, cancel orders)", "Ctrl+Shift+H",
                                     note="Asks first; Resume trading… undoes the halt"),
    Command.STRATEGY_LAB: CommandSpec("Strategy &lab… (parameter sweeps)", "Ctrl+Shift+L"),
    Command.SHORTCUTS: CommandSpec("&Keyboard shortcuts", "F1"),
}  # fmt: skip

_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier,
    Qt.KeyboardModifier.ShiftModifier,
    Qt.KeyboardModifier.AltModifier,
    Qt.KeyboardModifier.MetaModifier,
)


def plain_title(command: Command) -> str:
    """The command's menu text without its mnemonic ampersand."""
    return COMMANDS[command].title.replace("&&", "\0").replace("&", "").replace("\0", "&")


def portable(keys: str | QKeySequence) -> str:
    """A key sequence as settings store it ("Ctrl+Shift+B"); "" for none."""
    seq = keys if isinstance(keys, QKeySequence) else QKeySequence(keys)
    return seq.toString(QKeySequence.SequenceFormat.PortableText)


def modifier_count(keys: str) -> int:
    """Modifier keys held in the first chord of ``keys`` (0 for F1 or a plain letter)."""
    seq = QKeySequence(keys)
    if seq.isEmpty():
        return 0
    mods = seq[0].keyboardModifiers()  # type: ignore[index]
    return sum(1 for m in _MODIFIERS if mods & m)


def bindings(saved: Mapping[str, str] | None = None) -> dict[Command, str]:
    """The default keys with the saved ones over them (unknown commands in ``saved`` are ignored)."""
    out = {c: spec.default for c, spec in COMMANDS.items()}
    for name, keys in (saved or {}).items():
        if name in Command.__members__.values():
            out[Command(name)] = portable(keys)
    return out


def problems(keys: Mapping[Command, str]) -> dict[Command, str]:
    """Why each binding cannot be used (empty when all can): unreadable keys, two commands on one
    sequence, an order-sending command on fewer than two modifier keys."""
    out: dict[Command, str] = {}
    seen: dict[str, Command] = {}
    for command, text in keys.items():
        if not text:
            continue
        seq = QKeySequence(text)
        if seq.isEmpty() or portable(seq) != portable(text):
            out[command] = f"{text!r} is not a key sequence"
            continue
        other = seen.get(portable(seq))
        if other is not None:
            out[command] = f"{text} is already {plain_title(other)}"
            continue
        seen[portable(seq)] = command
        if COMMANDS[command].sends_order and modifier_count(text) < 2:
            out[command] = "sends an order: needs two modifier keys (e.g. Ctrl+Shift+B)"
    return out


def changed_only(keys: Mapping[Command, str]) -> dict[str, str]:
    """What differs from the defaults, as the ``ui.shortcuts`` setting stores it."""
    return {c.value: k for c, k in keys.items() if k != COMMANDS[c].default}


def _table(rows: int, headers: list[str], name: str) -> QTableWidget:
    table = named(QTableWidget(rows, len(headers)), name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: every command and its keys, in a table (``shortcutsTable``)."""

    def __init__(self, keys: Mapping[Command, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.table = _table(len(COMMANDS), ["Command", "Shortcut", "Note"], "shortcutsTable")
        for row, (command, spec) in enumerate(COMMANDS.items()):
            text = QKeySequence(keys.get(command, "")).toString(QKeySequence.SequenceFormat.NativeText)
            for col, value in enumerate((plain_title(command), text or "—", spec.note)):
                self.table.setItem(row, col, QTableWidgetItem(value))
        note = QLabel("Change them in Settings → Shortcuts.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.resize(560, 360)


class ShortcutsTab(QWidget):
    """The settings' Shortcuts tab: one key field per command; a conflict or an order-sending
    command on a single modifier is refused inline and nothing is saved."""

    def __init__(self, keys: Mapping[Command, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = _table(len(COMMANDS), ["Command", "Shortcut", ""], "shortcutEditTable")
        self.edits: dict[Command, QKeySequenceEdit] = {}
        for row, command in enumerate(COMMANDS):
            self.table.setItem(row, 0, QTableWidgetItem(plain_title(command)))
            edit = named(QKeySequenceEdit(QKeySequence(keys.get(command, ""))), f"shortcut_{command.value}")
            edit.setMaximumSequenceLength(1)
            edit.setClearButtonEnabled(True)
            edit.keySequenceChanged.connect(lambda _s: self.check())
            self.table.setCellWidget(row, 1, edit)
            self.table.setItem(row, 2, QTableWidgetItem(""))
            self.edits[command] = edit
        reset = named(QPushButton("Restore defaults"), "shortcutsDefaults")
        reset.clicked.connect(self.restore_defaults)
        self.error = named(MessageLabel(), "shortcutsError")
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(reset, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.error)
        lay.addWidget(QLabel("Shortcuts apply as soon as you save."))

    def keys(self) -> dict[Command, str]:
        return {c: portable(e.keySequence()) for c, e in self.edits.items()}

    def restore_defaults(self) -> None:
        for command, edit in self.edits.items():
            edit.setKeySequence(QKeySequence(COMMANDS[command].default))
        self.check()

    def check(self) -> dict[Command, str] | None:
        """The bindings, or None when one is refused (each refusal shown on its row)."""
        keys = self.keys()
        bad = problems(keys)
        for row, command in enumerate(COMMANDS):
            item = self.table.item(row, 2)
            if item is not None:
                item.setText(bad.get(command, ""))
        self.error.setText("; ".join(f"{plain_title(c)}: {why}" for c, why in bad.items()))
        return None if bad else keys
