"""The log panel (``logPanel``): the newest log records with level, source and text filters, and
a toast for notifications a person must not miss (risk rejections, reconciliation drift).

The panel adapts a log hub handed in by the composition root (anything with ``entries()`` and
``add_listener(fn) -> unsubscribe``; Heron's is ``app.logging_setup.LogHub``); records are
buffered from any thread and flushed into the model in batches (see
:mod:`widgets.models.log_model`). GUI thread only, except the hub listener, which only buffers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QModelIndex, QSize, Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets import theme
from widgets.message_label import MessageLabel
from widgets.models.common import named
from widgets.models.log_model import LogFilterProxy, LogTableModel

LEVELS = [("All levels", logging.NOTSET), ("Debug+", logging.DEBUG), ("Info+", logging.INFO),
          ("Warning+", logging.WARNING), ("Error+", logging.ERROR)]  # fmt: skip

#: Notification sources that raise a toast (besides every ``error``).
TOAST_SOURCES = ("risk", "reconciliation")


_RESIZE = QEvent.Type.Resize

#: The least a search box shows, in characters: enough to read what is typed ("services.orders").
SEARCH_MIN_CHARS = 16


class LogHubLike(Protocol):
    def entries(self) -> list[Any]: ...
    def add_listener(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...


class LogPanel(QWidget):
    """objectName ``logPanel``; children ``logTable``, ``logLevelFilter``, ``logSourceFilter``,
    ``logTextFilter``, ``logCountLabel``, ``logFollow``, ``logClear``.

    The search boxes never shrink below :data:`SEARCH_MIN_CHARS` characters: when the panel is too
    narrow for filters and tools on one row, Follow, Clear view and the count move to a second row."""

    def __init__(self, capacity: int = 10_000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("logPanel")
        self.model = LogTableModel(capacity, parent=self)
        self.proxy = LogFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._unsubscribe: Callable[[], None] | None = None

        self.level = named(QComboBox(), "logLevelFilter")
        for text, number in LEVELS:
            self.level.addItem(text, number)
        self.level.setCurrentIndex(2)  # Info+
        self.level.currentIndexChanged.connect(
            lambda _: self.proxy.set_min_level(int(self.level.currentData()))
        )
        self.source = named(
            QLineEdit(), "logSourceFilter", placeholderText="source prefix, e.g. services.orders"
        )
        self.source.textChanged.connect(self.proxy.set_source)
        self.text = named(QLineEdit(), "logTextFilter", placeholderText="search text")
        self.text.setClearButtonEnabled(True)
        self.text.textChanged.connect(self.proxy.set_text)
        self.follow = named(QCheckBox("Follow"), "logFollow", checked=True)
        self.follow.setToolTip("Keep the newest record in view")
        clear = named(QPushButton("Clear view"), "logClear")
        clear.setToolTip("Empty this view (the log file keeps everything)")
        clear.clicked.connect(self.model.clear)
        self.count = named(QLabel(), "logCountLabel")
        self.count.setStyleSheet(f"color: {theme.MUTED};")

        search_min = self.fontMetrics().averageCharWidth() * SEARCH_MIN_CHARS
        for box in (self.source, self.text):
            box.setMinimumWidth(search_min)
        self.tools = named(QWidget(), "logTools")
        tools = QHBoxLayout(self.tools)
        tools.setContentsMargins(0, 0, 0, 0)
        tools.addWidget(self.follow)
        tools.addWidget(clear)
        tools.addWidget(self.count)
        bar = self._bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 2)
        bar.addWidget(self.level)
        bar.addWidget(self.source, 1)
        bar.addWidget(self.text, 2)
        bar.addWidget(self.tools)
        self._second = QHBoxLayout()  # the tools' row while the panel is narrow
        self._second.setContentsMargins(6, 0, 6, 2)

        self.table = named(QTableView(), "logTable")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for col, width in enumerate((100, 70, 200)):
            header.resizeSection(col, width)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.proxy.set_min_level(logging.INFO)
        self.model.rowsInserted.connect(self._after_insert)
        self.model.rowsRemoved.connect(lambda *_: self._update_count())
        self.model.modelReset.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)
        self.proxy.rowsInserted.connect(lambda *_: self._update_count())
        self.proxy.rowsRemoved.connect(lambda *_: self._update_count())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.setSizeConstraint(QVBoxLayout.SizeConstraint.SetNoConstraint)  # minimumSizeHint below
        layout.addLayout(bar)
        layout.addLayout(self._second)
        layout.addWidget(self.table)
        self._update_count()

    def one_row_width(self) -> int:
        """The width filters and tools need side by side, each search box at its minimum."""
        spacing = max(self._bar.spacing(), 0) * 3
        margins = self._bar.contentsMargins()
        return (
            self.level.sizeHint().width()
            + self.source.minimumWidth()
            + self.text.minimumWidth()
            + self.tools.sizeHint().width()
            + spacing
            + margins.left()
            + margins.right()
        )

    def minimumSizeHint(self) -> QSize:
        """As narrow as the filters alone: below the one-row width the tools take a second row."""
        hint = super().minimumSizeHint()
        margins = self._bar.contentsMargins()
        filters = (
            self.level.sizeHint().width()
            + self.source.minimumWidth()
            + self.text.minimumWidth()
            + max(self._bar.spacing(), 0) * 2
            + margins.left()
            + margins.right()
        )
        hint.setWidth(max(filters, self.tools.sizeHint().width() + margins.left() + margins.right()))
        return hint

    def two_rows(self) -> bool:
        return self._second.indexOf(self.tools) >= 0

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        narrow = event.size().width() < self.one_row_width()
        if narrow != self.two_rows():
            (self._bar if narrow else self._second).removeWidget(self.tools)
            if narrow:
                self._second.addWidget(self.tools)
                self._second.addStretch(1)
            else:
                stretch = self._second.takeAt(0)  # the stretch left behind
                del stretch
                self._bar.addWidget(self.tools)

    # -- wiring -----------------------------------------------------------------------------------
    def attach(self, hub: LogHubLike) -> None:
        """Show what ``hub`` holds and follow it. GUI thread."""
        self.detach()
        for entry in hub.entries()[-self.model.capacity :]:
            self.model.enqueue(entry)
        self._unsubscribe = hub.add_listener(self.model.enqueue)
        self.model.flush()
        self.model.start()

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.model.stop()

    def closeEvent(self, event: Any) -> None:
        self.detach()
        super().closeEvent(event)

    # -- view -------------------------------------------------------------------------------------
    def _after_insert(self, _parent: QModelIndex, _first: int, _last: int) -> None:
        self._update_count()
        if self.follow.isChecked():
            self.table.scrollToBottom()

    def _update_count(self) -> None:
        shown, held = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{shown:,} shown / {held:,} held (max {self.model.capacity:,})")


class ToastArea(QWidget):
    """Non-modal toasts stacked in the bottom-right corner of ``host`` (objectName ``toastArea``).

    Each toast hides itself after ``timeout_ms``; at most ``max_toasts`` are shown (the oldest goes).
    """

    def __init__(self, host: QWidget, *, timeout_ms: int = 8000, max_toasts: int = 4) -> None:
        super().__init__(host)
        self.setObjectName("toastArea")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self._host = host
        self._timeout = timeout_ms
        self._max = max_toasts
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._layout.addStretch(1)
        self.toasts: list[QFrame] = []
        host.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        # Every event of the main window passes here (paints and update requests many times a
        # second): the cheapest test first, nothing imported per call.
        if event.type() == _RESIZE and watched is self._host:
            self._place()
        return False

    def _place(self) -> None:
        w = 380
        h = min(self._host.height() - 40, 90 * max(1, len(self.toasts)))
        self.setGeometry(self._host.width() - w - 16, self._host.height() - h - 36, w, h)
        self.raise_()

    def show_toast(self, level: str, source: str, message: str) -> QFrame:
        colors = {"error": theme.DOWN, "warning": theme.WARN}
        accent = colors.get(level, theme.TOAST_INFO)
        toast = QFrame(self)
        toast.setObjectName("toast")
        toast.setProperty("level", level)
        toast.setStyleSheet(
            f"QFrame#toast {{ background: {theme.TOAST_BG}; border: 1px solid {theme.BADGE_BG};"
            f" border-radius: 4px; border-left: 4px solid {accent}; }}"
        )
        lay = QVBoxLayout(toast)
        lay.setContentsMargins(10, 6, 10, 6)
        title = QLabel(f"{level.upper()} · {source}")
        title.setStyleSheet(f"color: {accent}; font-weight: 600;")
        body = MessageLabel(message)
        body.setWordWrap(True)
        body.setObjectName("toastMessage")
        lay.addWidget(title)
        lay.addWidget(body)
        self._layout.addWidget(toast)
        self.toasts.append(toast)
        while len(self.toasts) > self._max:
            self._remove(self.toasts[0])
        # the toast is the timer's context: a toast deleted with its panel cancels its own timer
        QTimer.singleShot(self._timeout, toast, lambda: self._remove(toast))
        self.show()
        self._place()
        return toast

    def _remove(self, toast: QFrame) -> None:
        if toast in self.toasts:
            self.toasts.remove(toast)
            toast.hide()
            toast.deleteLater()
        if not self.toasts:
            self.hide()
        else:
            self._place()


def wants_toast(level: str, source: str) -> bool:
    """Risk rejections and drift incidents (and every error) raise a toast."""
    return level == "error" or source in TOAST_SOURCES or source.startswith("strategy:")
