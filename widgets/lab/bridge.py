"""The bridge from a sweep's coordinator thread to the window: a :class:`SweepListener` whose
methods may be called on any thread, and Qt signals on the GUI thread.

Points and progress are kept in a buffer under a lock; the first one into an empty buffer wakes the
GUI thread through a queued signal, and the window drains the buffer in batches at most
:data:`FLUSH_MS` apart (:meth:`LabBridge.take`), so a sweep reporting hundreds of points a second
costs the GUI a few updates a second, not one per point. The outcome arrives by its own queued
signal after the last point (the buffer is drained before it is shown).
"""

from __future__ import annotations

import contextlib
import threading
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from services.lab.model import PointResult, SweepOutcome, SweepProgress

#: the least time between two batches shown (about ten a second)
FLUSH_MS = 100


class LabBridge(QObject):
    """Signals (GUI thread):
    batch(list[PointResult], SweepProgress | None): what arrived since the last batch;
    finished(SweepOutcome): the sweep ended (after its last batch)."""

    batch = Signal(list, object)
    finished = Signal(object)
    _wake = Signal()
    _done = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._points: list[PointResult] = []
        self._progress: SweepProgress | None = None
        self._last_flush = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._schedule, Qt.ConnectionType.QueuedConnection)
        self._done.connect(self._finish, Qt.ConnectionType.QueuedConnection)
        #: batches delivered (tests and the benchmark read it)
        self.flushes = 0

    # -- SweepListener: any thread ------------------------------------------------------------------
    def on_point(self, result: PointResult) -> None:
        with self._lock:
            first = not self._points and self._progress is None
            self._points.append(result)
        if first:
            self._emit(self._wake)

    def on_progress(self, progress: SweepProgress) -> None:
        with self._lock:
            first = not self._points and self._progress is None
            self._progress = progress
        if first:
            self._emit(self._wake)

    def on_finished(self, outcome: SweepOutcome) -> None:
        self._emit(self._done, outcome)

    @staticmethod
    def _emit(signal: object, *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the window was closed: nobody is left to tell
            signal.emit(*args)  # type: ignore[attr-defined]

    # -- GUI thread ---------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_flush) * 1000
        self._timer.start(max(0, int(FLUSH_MS - since)))

    def take(self) -> tuple[list[PointResult], SweepProgress | None]:
        with self._lock:
            points, progress = self._points, self._progress
            self._points, self._progress = [], None
        return points, progress

    def flush(self) -> None:
        points, progress = self.take()
        self._last_flush = time.monotonic()
        if points or progress is not None:
            self.flushes += 1
            self.batch.emit(points, progress)

    def _finish(self, outcome: SweepOutcome) -> None:
        self._timer.stop()
        self.flush()
        self.finished.emit(outcome)
