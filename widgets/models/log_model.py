"""The log panel's model: the newest N log records, appended in coalesced batches.

Records arrive from any thread (the :class:`LogHub` calls listeners on the logging thread).
:meth:`LogTableModel.enqueue` only puts them in a locked buffer; :meth:`LogTableModel.flush`, run by
a timer on the GUI thread at most ``flush_hz`` times a second, moves the whole buffer into the model
with one ``beginInsertRows`` and trims the oldest rows with one ``beginRemoveRows``. A burst of
100,000 records therefore costs a few notifications per frame, never one row insert per record,
and the model never holds more than ``capacity`` rows.

The timer runs only while records wait: the record that finds the buffer empty asks the GUI thread
(a queued signal) to flush one interval later, and the records that follow ride along. A quiet
log therefore costs the GUI thread nothing, where a free-running timer woke it ``flush_hz`` times
a second for an empty buffer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from datetime import datetime
from typing import Any, Protocol

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    QTimer,
    Signal,
)

from widgets import theme
from widgets.models.columns import BoundedTableModel, Column, refilter
from widgets.models.common import fmt_clock, zoned

LEVEL_COLORS = {
    "CRITICAL": theme.CRITICAL,
    "ERROR": theme.DOWN,
    "WARNING": theme.WARN,
    "INFO": theme.LOG_TEXT,
    "DEBUG": theme.MUTED,
}


class LogRecordLike(Protocol):
    """What the model reads from a log entry (``app.logging_setup.LogEntry`` has these)."""

    @property
    def ts(self) -> datetime: ...
    @property
    def level(self) -> str: ...
    @property
    def levelno(self) -> int: ...
    @property
    def logger(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def exc_text(self) -> str | None: ...


def _message_tip(e: LogRecordLike) -> str | None:
    return f"{e.message}\n\n{e.exc_text}" if e.exc_text else e.message


LOG_COLUMNS: list[Column[Any]] = [
    Column(zoned("Time"), lambda e: fmt_clock(e.ts, ms=True), sort=lambda e: e.ts,
           tooltip=lambda e: e.ts.isoformat()),
    Column("Level", lambda e: e.level, sort=lambda e: e.levelno,
           foreground=lambda e: LEVEL_COLORS.get(e.level)),
    Column("Source", lambda e: e.logger),
    Column("Message", lambda e: e.message + ("  [traceback]" if e.exc_text else ""), tooltip=_message_tip),
]  # fmt: skip


class LogTableModel(BoundedTableModel[Any]):
    """Bounded, batch-appended log table. ``enqueue`` from any thread; everything else GUI thread."""

    #: emitted by the record that finds the buffer empty, from whichever thread logged it
    _arrived = Signal()

    def __init__(
        self, capacity: int = 10_000, *, flush_hz: float = 20.0, parent: QObject | None = None
    ) -> None:
        super().__init__(LOG_COLUMNS, capacity, parent)
        self._lock = threading.Lock()
        self._pending: deque[Any] = deque(maxlen=capacity)
        self.received = 0
        self.flushes = 0
        self._running = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(max(1, int(1000 / flush_hz)))
        self._timer.timeout.connect(self.flush)
        self._arrived.connect(self._flush_soon)  # queued when a record comes from another thread

    def start(self) -> None:
        """Follow: flush whenever records arrive (and now, if some already wait)."""
        self._running = True
        self._flush_soon()

    def stop(self) -> None:
        self._running = False
        self._timer.stop()

    def enqueue(self, entry: Any) -> None:
        """Buffer one record; any thread. Touches Qt only through a queued signal, once per batch."""
        with self._lock:
            first = not self._pending
            self._pending.append(entry)
            self.received += 1
        if first:
            # the panel may be gone while a late record still arrives (shutdown): nothing to show
            with contextlib.suppress(RuntimeError):
                self._arrived.emit()

    def _flush_soon(self) -> None:
        """GUI thread: one flush an interval from now, for everything that arrives meanwhile."""
        if self._running and not self._timer.isActive():
            with self._lock:
                waiting = bool(self._pending)
            if waiting:
                self._timer.start()

    def flush(self) -> int:
        """Move buffered records into the model (GUI thread); returns how many."""
        with self._lock:
            if not self._pending:
                return 0
            batch = list(self._pending)
            self._pending.clear()
        self.extend(batch)
        self.flushes += 1
        return len(batch)


class LogFilterProxy(QSortFilterProxyModel):
    """Filters by minimum level, source (logger-name prefix) and text (case-insensitive)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._min_level = logging.NOTSET
        self._source = ""
        self._text = ""

    def set_min_level(self, levelno: int) -> None:
        refilter(self, lambda: setattr(self, "_min_level", levelno))

    def set_source(self, prefix: str) -> None:
        refilter(self, lambda: setattr(self, "_source", prefix.strip()))

    def set_text(self, text: str) -> None:
        refilter(self, lambda: setattr(self, "_text", text.strip().lower()))

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, BoundedTableModel) or source_row >= model.rowCount():
            return False
        e = model.row_at(source_row)
        if e.levelno < self._min_level:
            return False
        if self._source and not e.logger.startswith(self._source):
            return False
        text = self._text
        return not text or text in e.message.lower() or text in e.logger.lower()


def level_number(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.NOTSET
