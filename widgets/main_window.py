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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QWidget

from services.domain.enums import Mode
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


def first_launch_geometry(available: QRect) -> QRect:
    """Where a window without a saved layout opens: 90 % of the screen's available area, centred,
    and never below :data:`DEFAULT_SIZE` (a small or virtual screen gets that size at its origin)."""
    w = max(DEFAULT_SIZE.width(), round(available.width() * 0.9))
    h = max(DEFAULT_SIZE.height(), round(available.height() * 0.9))
    x = available.x() + max(0, (available.width() - w) // 2)
    y = available.y() + max(0, (available.height() - h) // 2)
    return QRect(x, y, w, h)


def window_title(mode: Mode, profile: str = "default") -> str:
    title = f"Heron — {mode.badge}"
    return title if profile == "default" else f"{title} — {profile}"


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
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(DEFAULT_SIZE)
        else:
            self.setGeometry(first_launch_geometry(screen.availableGeometry()))
        self.heron_status = HeronStatusBar(mode, self)
        self.setStatusBar(self.heron_status)
        empty = QLabel("No panels are installed in this build yet.")
        empty.setObjectName("emptyState")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty: QLabel | None = empty
        self.setCentralWidget(empty)
        self._build_menus()

    # -- menus ------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setObjectName("quitAction")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self.view_menu: QMenu = bar.addMenu("&View")
        self.view_menu.setObjectName("viewMenu")
        self._panels_separator = self.view_menu.addSeparator()
        reset = QAction("&Reset layout", self)
        reset.setObjectName("resetLayoutAction")
        reset.triggered.connect(self.reset_layout)
        self.view_menu.addAction(reset)

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
        dock = QDockWidget(title, self)
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
