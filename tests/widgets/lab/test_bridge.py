"""The bridge from a sweep's coordinator thread: reports arrive on the GUI thread, in few batches."""

from __future__ import annotations

import threading
import time
from typing import Any

from services.lab.model import PointResult, SweepOutcome, SweepProgress, SweepState
from tests.support.polling import qt_pump, wait_for
from widgets.lab.bridge import FLUSH_MS, LabBridge


def test_points_from_another_thread_arrive_in_batches_on_the_gui_thread(qtbot: Any) -> None:
    bridge = LabBridge()
    gui = threading.get_ident()
    batches: list[tuple[int, int, SweepProgress | None]] = []
    finished: list[tuple[SweepOutcome, int]] = []
    bridge.batch.connect(lambda pts, prog: batches.append((threading.get_ident(), len(pts), prog)))
    bridge.finished.connect(lambda o: finished.append((o, sum(n for _, n, _ in batches))))
    total = 600
    began = time.monotonic()

    def coordinator() -> None:  # a point every millisecond or so, as a fast sweep reports them
        for i in range(total):
            time.sleep(0.001)
            bridge.on_point(PointResult(f"k{i}", {"fast": i}, {"sharpe": 1.0}))
            bridge.on_progress(SweepProgress("s", total, i + 1, 0, 1, 100.0, 1.0, 2))
        bridge.on_finished(SweepOutcome("s", SweepState.COMPLETED, total, total, 0, 2, 1.0, None))

    worker = threading.Thread(target=coordinator)
    worker.start()
    wait_for("the outcome", lambda: finished, 20, pump=qt_pump(qtbot))
    worker.join()
    elapsed = time.monotonic() - began
    assert {t for t, _, _ in batches} == {gui}
    assert sum(n for _, n, _ in batches) == total  # every point, once
    assert finished[0][1] == total  # the outcome after the last batch
    # batches at most FLUSH_MS apart, not one update per point
    assert len(batches) <= elapsed * 1000 / FLUSH_MS + 2, (len(batches), elapsed)
    last = [p for _, _, p in batches if p is not None][-1]
    assert last.completed == total


def test_reports_after_the_window_closed_are_dropped_quietly() -> None:
    import shiboken6

    bridge = LabBridge()
    shiboken6.delete(bridge)  # the window (the bridge's parent) was closed and deleted
    assert not shiboken6.isValid(bridge)
    # a late call from the coordinator thread must not raise into the engine
    bridge.on_point(PointResult("k", {}, None, "x"))
    bridge.on_finished(SweepOutcome("s", SweepState.CANCELLED, 1, 0, 0, 1, 0.1, None))
