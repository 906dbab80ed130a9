"""Heron's main window: a dock framework, a View menu, the status bar and saved layouts.

Panels are created by :mod:`app.qt.panels` and handed over with :meth:`MainWindow.add_panel`;
this window knows no service. Layouts are stored with ``QSettings`` (INI) in the profile folder
and versioned: a state saved with a different dock set or layout version is ignored, so a changed
window never restores garbage.

Signals:
    closing(): emitted from ``closeEvent`` after the layout was saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QScrollArea,
    QStyle,
    QWidget,
)

from services.domain.enums import Mode
from widgets.models.common import TIMES, fmt_clock, fmt_timestamp
from widgets.pinned_line import hold_width
from widgets.shortcuts import COMMANDS, Command, ShortcutsDialog, bindings
from widgets.status_bar import HeronStatusBar

log = logging.getLogger(__name__)
#: A saved layout is a few kilobytes; a larger file (or not a file) is moved aside unread.
MAX_LAYOUT_BYTES = 256 * 1024

#: Bump when the meaning of saved dock states changes (e.g. panels renamed).
LAYOUT_VERSION = 1

AREAS = {
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "top": Qt.DockWidgetArea.TopDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
}


#: The smallest first-launch size (the fixed size the window used to open at; the screenshot test
#: and the offscreen platform's 800x600 screen get exactly this).
DEFAULT_SIZE = QSize(1280, 800)
#: The smallest screen Heron is laid out for (a 1366x768 laptop with a panel); on a screen at least
#: this large the window opens within the screen, below it (a virtual screen) at DEFAULT_SIZE.
SMALLEST_SCREEN = QSize(1024, 700)

#: The most a panel asks of its dock area before it scrolls inside its dock instead: the left column
#: (the ticket) runs the full height, the right one (the watchlist) sits above the bottom row, whose
#: tabs share the window's width. Summed, the window's minimum fits a 1366x768 screen (and the
#: offscreen platform's 800-px one: ticket 320 + bottom 440 + scroll bar and separators).
PANEL_MIN_CAP = {
    "left": QSize(320, 640),
    "right": QSize(320, 400),
    "top": QSize(440, 140),
    "bottom": QSize(440, 140),
}


def first_launch_geometry(available: QRect) -> QRect:
    """Where a window without a saved layout opens: 90 % of the screen's available area, centred,
    never below :data:`DEFAULT_SIZE`; on a real screen smaller than that (a 1366x768 laptop: at
    least :data:`SMALLEST_SCREEN`) the whole available area, and a virtual screen smaller than
    SMALLEST_SCREEN gets DEFAULT_SIZE at its origin."""
    w = _first_launch_extent(available.width(), DEFAULT_SIZE.width(), SMALLEST_SCREEN.width())
    h = _first_launch_extent(available.height(), DEFAULT_SIZE.height(), SMALLEST_SCREEN.height())
    x = available.x() + max(0, (available.width() - w) // 2)
    y = available.y() + max(0, (available.height() - h) // 2)
    return QRect(x, y, w, h)


def _first_launch_extent(available: int, default: int, smallest: int) -> int:
    if available < smallest:
        return default
    share = round(available * 0.9)
    return share if share >= default else available  # a small screen: every pixel of it


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def window_title(mode: Mode, profile: str = "default") -> str:
    title = f"Heron — {mode.badge}"
    return title if profile == "default" else f"{title} — {profile}"


class PanelScroll(QScrollArea):
    """A panel's frame inside its dock: the minimum it asks of the window is the panel's, capped;
    below the panel's own minimum the dock scrolls instead of widening the window."""

    def __init__(self, cap: QSize, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cap = cap
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)

    def setWidget(self, widget: QWidget) -> None:
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # the panel's minimum changed (a row appeared, a longer text): the dock asks again
        if event.type() == QEvent.Type.LayoutRequest and watched is self.widget():
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QSize:
        inner = self.widget()
        if inner is None:
            return super().minimumSizeHint()
        need = inner.minimumSizeHint().expandedTo(inner.minimumSize())
        if inner.hasHeightForWidth():  # wrapped text: the height it needs at the width it has
            width = max(self.viewport().width(), need.width())
            need.setHeight(max(need.height(), inner.heightForWidth(width)))
        out = need.boundedTo(self.cap)
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        # a capped side scrolls: room for that scroll bar on the other side, so it needs no second one
        if need.height() > out.height():
            out.setWidth(out.width() + bar)
        if need.width() > out.width():
            out.setHeight(out.height() + bar)
        return out

    def sizeHint(self) -> QSize:
        inner = self.widget()
        return super().sizeHint() if inner is None else inner.sizeHint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            inner = self.widget()
            if inner is not None and inner.hasHeightForWidth():
                self.updateGeometry()


class PanelDock(QDockWidget):
    """A dock whose panel sits in a :class:`PanelScroll`; :meth:`widget` and :meth:`setWidget`
    speak of the panel itself, so callers never see the frame."""

    def __init__(self, title: str, cap: QSize, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.frame = PanelScroll(cap, self)
        super().setWidget(self.frame)

    def widget(self) -> QWidget:
        return self.frame.widget()  # type: ignore[return-value]  # None before setWidget, as Qt's

    def setWidget(self, widget: QWidget) -> None:
        old = self.frame.takeWidget()
        if old is not None and old is not widget:
            old.setParent(None)  # the caller owns the old panel (it deletes it)
        self.frame.setWidget(widget)
        self.frame.updateGeometry()


class MainWindow(QMainWindow):
    """The top-level window. GUI thread only.

    ``log_hub`` (an :class:`app.logging_setup.LogHub`) is kept for the log panel; the window
    itself does not read it.
    """

    closing = Signal()

    def __init__(
        self,
        mode: Mode,
        *,
        layout_file: Path | None = None,
        profile: str = "default",
        log_hub: object | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.mode = mode
        self.profile = profile
        self.log_hub = log_hub
        self.layout_file = layout_file
        self._docks: dict[str, QDockWidget] = {}
        #: asked before the trader's close goes ahead (False keeps the window open): the quit guard
        self.close_guard: Callable[[], bool] | None = None
        self._default_state: QByteArray | None = None
        #: whether :meth:`restore_layout` put back a saved layout (then first-launch sizes stay off)
        self.layout_restored = False
        self.setWindowTitle(window_title(mode, profile))
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.setDockNestingEnabled(True)
        # the order ticket's column runs the full height on the left (its fields and Submit need it
        # on a 768-pixel screen); the bottom row of tables sits beside it, under the chart
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(DEFAULT_SIZE)
        else:
            available = screen.availableGeometry()
            self.setGeometry(first_launch_geometry(available))
            if self.geometry().size() == available.size():
                # a small real screen: maximized, so the window manager's frame fits on it too
                self.setWindowState(Qt.WindowState.WindowMaximized)
        self.heron_status = HeronStatusBar(mode, self)
        self.setStatusBar(self.heron_status)
        self._build_clock()
        empty = QLabel("No panels are installed in this build yet.")
        empty.setObjectName("emptyState")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty: QLabel | None = empty
        self.setCentralWidget(empty)
        self._build_menus()

    # -- the clock --------------------------------------------------------------------------------
    def _build_clock(self) -> None:
        """The time now in the display zone, at the right of the status bar (``clockLabel``)."""
        self.clock_label = QLabel(self)
        self.clock_label.setObjectName("clockLabel")
        self.heron_status.addPermanentWidget(self.clock_label)
        self._clock_timer = QTimer(self)
        self._clock_timer.setInterval(1000)
        self._clock_timer.timeout.connect(self.show_time)
        self._clock_timer.start()
        TIMES.changed.connect(self.show_time)
        self.show_time()

    def show_time(self) -> None:
        now = datetime.now(UTC)
        zone = TIMES.label()
        self.clock_label.setText(f"{fmt_clock(now)} {zone}")
        hold_width(self.clock_label, f"00:00:00 {zone}")  # the time ticking repaints the clock alone
        self.clock_label.setToolTip(
            f"{fmt_timestamp(now)} {TIMES.label()} (Settings → Interface: times shown in)"
        )

    # -- menus ------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        """File, View, Trade, Strategies and Help. Every command is a menu action showing its shortcut; one
        without a handler yet (the trade commands before the ticket exists) is disabled."""
        bar = self.menuBar()
        self.commands: dict[Command, QAction] = {}
        for command in Command:
            action = QAction(COMMANDS[command].title, self)
            action.setObjectName(f"{_camel(command.value)}Action")
            action.setEnabled(False)
            self.commands[command] = action
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.commands[Command.SETTINGS])
        file_menu.addSeparator()
        file_menu.addAction(self.commands[Command.QUIT])
        self.view_menu: QMenu = bar.addMenu("&View")
        self.view_menu.setObjectName("viewMenu")
        self._panels_separator = self.view_menu.addSeparator()
        reset = QAction("&Reset layout", self)
        reset.setObjectName("resetLayoutAction")
        reset.triggered.connect(self.reset_layout)
        self.view_menu.addAction(reset)
        trade = bar.addMenu("&Trade")
        trade.setObjectName("tradeMenu")
        for group in (
            (Command.BUY, Command.SELL),
            (Command.CANCEL_LAST, Command.CANCEL_ALL, Command.FLATTEN_ALL),
            (Command.KILL_SWITCH,),
        ):
            if trade.actions():
                trade.addSeparator()
            for command in group:
                trade.addAction(self.commands[command])
        strategies = bar.addMenu("&Strategies")
        strategies.setObjectName("strategiesMenu")
        strategies.addAction(self.commands[Command.STRATEGY_LAB])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.commands[Command.SHORTCUTS])
        self.connect_command(Command.QUIT, self.close)
        self.connect_command(Command.SHORTCUTS, self.show_shortcuts)
        self.apply_shortcuts(bindings())

    def connect_command(self, command: Command, handler: Callable[[], object]) -> QAction:
        """Run ``handler`` for ``command`` (menu or shortcut) and enable it."""
        action = self.commands[command]
        action.triggered.connect(lambda _checked=False: handler())
        action.setEnabled(True)
        return action

    def apply_shortcuts(self, keys: Mapping[Command, str]) -> None:
        """Bind each command to its keys (as checked by :func:`widgets.shortcuts.problems`)."""
        self.shortcut_keys = dict(keys)
        for command, action in self.commands.items():
            action.setShortcut(QKeySequence(keys.get(command, "")))

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help → Keyboard shortcuts (non-modal)."""
        dialog = ShortcutsDialog(self.shortcut_keys, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # -- panels -----------------------------------------------------------------------------------
    def add_panel(
        self,
        widget: QWidget,
        object_name: str,
        title: str,
        area: str = "right",
        *,
        tab_with: str | None = None,
    ) -> QDockWidget:
        """Put ``widget`` in a dock named ``object_name`` (stable: tests and layouts use it).

        ``area`` is "left", "right", "top" or "bottom"; ``tab_with`` names an existing panel to
        share a tab group with. Returns the dock.
        """
        if object_name in self._docks:
            raise ValueError(f"a panel named {object_name!r} already exists")
        if area not in AREAS:
            raise ValueError(f"area must be one of {sorted(AREAS)}, got {area!r}")
        if not widget.objectName():
            widget.setObjectName(object_name)
        dock = PanelDock(title, PANEL_MIN_CAP[area], self)
        dock.setObjectName(f"{object_name}Dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(AREAS[area], dock)
        if tab_with is not None:
            self.tabifyDockWidget(self._docks[tab_with], dock)
        toggle = dock.toggleViewAction()
        toggle.setObjectName(f"{object_name}ToggleAction")
        self.view_menu.insertAction(self._panels_separator, toggle)
        self._docks[object_name] = dock
        if self._empty is not None:
            self._empty.setText("")
        return dock

    def set_central_panel(self, widget: QWidget) -> None:
        """Replace the placeholder in the middle (for the chart)."""
        self.setCentralWidget(widget)
        self._empty = None

    def panel(self, object_name: str) -> QDockWidget | None:
        return self._docks.get(object_name)

    def panel_names(self) -> list[str]:
        return list(self._docks)

    # -- layout -----------------------------------------------------------------------------------
    def layout_signature(self) -> str:
        """Changes whenever the set of docks changes; part of the saved layout's identity."""
        names = ",".join(sorted(self._docks))
        return f"v{LAYOUT_VERSION}:" + hashlib.sha1(names.encode()).hexdigest()[:12]

    def _settings(self) -> QSettings | None:
        if self.layout_file is None or not self._layout_file_usable(self.layout_file):
            return None
        return QSettings(str(self.layout_file), QSettings.Format.IniFormat)

    @staticmethod
    def _layout_file_usable(path: Path) -> bool:
        """False when ``path`` cannot be used; QSettings reads a file whole, so one too large or not
        a regular file is moved aside unread (``layout.ini.corrupt-<UTC time>``) and the window
        keeps its built-in layout. An absent file is usable (it is created on save)."""
        try:
            info = path.lstat()
        except FileNotFoundError:
            return True
        except OSError as exc:
            log.warning("the layout file %s cannot be read: %s; the default layout is used", path, exc)
            return False
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_LAYOUT_BYTES:
            return True
        problem = (
            f"it is {info.st_size:,} bytes, more than the {MAX_LAYOUT_BYTES:,}-byte limit"
            if stat.S_ISREG(info.st_mode)
            else "it is not a regular file"
        )
        return MainWindow._move_aside(path, problem, "was not read")

    @staticmethod
    def _move_aside(path: Path, problem: str, what: str) -> bool:
        """Move a layout file that cannot be used to ``layout.ini.corrupt-<UTC time>`` (kept whole for
        the person to see) and say so; returns whether the path is free for a fresh layout."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            log.warning(
                "the layout file %s %s: %s; it could not be moved aside (%s); the default layout is used",
                path,
                what,
                problem,
                exc,
            )
            return False
        log.warning(
            "the layout file %s %s: %s; it was moved to %s and the default layout is used",
            path,
            what,
            problem,
            aside.name,
        )
        return True

    def capture_default_layout(self) -> None:
        """Remember the layout as built, for View → Reset layout. Call after adding panels."""
        self._default_state = self.saveState(LAYOUT_VERSION)

    def reset_layout(self) -> None:
        if self._default_state is not None:
            self.restoreState(self._default_state, LAYOUT_VERSION)
            for dock in self._docks.values():
                dock.show()

    def save_layout(self) -> bool:
        settings = self._settings()
        if settings is None:
            return False
        settings.setValue("layout/signature", self.layout_signature())
        settings.setValue("layout/geometry", self.saveGeometry())
        settings.setValue("layout/state", self.saveState(LAYOUT_VERSION))
        settings.sync()
        if self.layout_file is not None and self.layout_file.exists():
            with contextlib.suppress(OSError):
                os.chmod(self.layout_file, 0o600)  # owner only, whatever Qt and the umask made it
        return settings.status() == QSettings.Status.NoError

    def restore_layout(self) -> bool:
        """Restore a saved layout if it matches this dock set; returns whether it did."""
        settings = self._settings()
        if settings is None:
            return False
        signature = settings.value("layout/signature")
        if settings.status() != QSettings.Status.NoError or signature is None:
            # Not a layout this window saved (random bytes, another file): said, and moved aside.
            path = self.layout_file
            if path is not None and path.is_file() and path.stat().st_size > 0:
                del settings
                self._move_aside(path, "it is not a saved layout (no layout signature in it)", "was ignored")
            return False
        if signature != self.layout_signature():
            log.info("the saved layout %s is of another panel set; the default layout is used",
                     self.layout_file)  # fmt: skip
            return False
        geometry = settings.value("layout/geometry")
        state = settings.value("layout/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.layout_restored = bool(self.restoreState(state, LAYOUT_VERSION))
        if not self.layout_restored:
            log.warning("the saved layout %s could not be restored (its window state is damaged); "
                        "the default layout is used", self.layout_file)  # fmt: skip
        return self.layout_restored

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.close_guard is not None and not self.close_guard():
            event.ignore()
            return
        self.save_layout()
        self.closing.emit()
        super().closeEvent(event)


if __name__ == "__main__":  # preview: QT_QPA_PLATFORM=offscreen uv run python -m widgets.main_window
    import sys

    from PySide6.QtWidgets import QApplication, QTextEdit

    from widgets.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    win = MainWindow(Mode.LOCAL)
    win.add_panel(QTextEdit("preview"), "previewPanel", "Preview", "bottom")
    win.show()
    sys.exit(app.exec())
