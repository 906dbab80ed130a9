"""Anchor: vnpy's own ``OrderMonitor`` measured exactly like ``tests/bench/bench_blotter.py``.

The real vnpy class (PyPI ``vnpy``, imported, not copied): a ``QTableWidget`` fed one signal per
order event, ``insertRow(0)`` for a new order, cells updated in place for a known one, and
``setSortingEnabled(False)`` / ``(True)`` around every event; never trimmed. 1600x900, offscreen.

Same orders as bench_blotter (100k orders over 500 symbols, the same ids, sides, prices and
times; the same seeded update stream: per frame 1,000/60 = 16 updates, ~10 % new orders, the rest
partial fills of random existing orders of which ~30 % become filled). Same frame: build the
frame's updates + hand them to the table (here: the monitor's own ``signal.emit``, one per event,
as vnpy's event engine does) + ``processEvents()``, which paints; ``paints`` counts the table
viewport's paint events. Same statistic: p99 by nearest rank over the frames.

Deviations, each in the anchor's favour:
- The initial 100k rows are loaded with the monitor's sorting switched off (vnpy has no bulk load;
  re-sorting after each of the 100k inserts would take hours), then sorting is switched on once,
  which leaves the table exactly as 100k events would.
- Events are emitted in the GUI thread (a direct slot call); vnpy's cross-thread hop from its
  event-engine thread (one queued slot call per event) is left out.
- A frame here takes seconds, so the run stops after ``HERON_ANCHOR_VNPY_FRAMES`` frames (default
  30, bench_blotter runs 240); with fewer than 100 frames the nearest-rank p99 is the slowest frame.
  ``gui_updates_per_s`` is how many updates per second the GUI thread could absorb at the median
  frame cost (vnpy has no coalescing, so any higher input rate is a growing backlog).

Runs only in the scratch environment (vnpy is not a Heron dependency); see README.md here.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

N_ORDERS = 100_000
UPDATES_PER_S = 1_000
FPS = 60
MAX_FRAMES = int(os.environ.get("HERON_ANCHOR_VNPY_FRAMES", "30"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def versions() -> str:
    names = ("vnpy", "PySide6-Essentials")
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def run() -> dict[str, dict[str, Any]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_API", "pyside6")  # qdarkstyle/qtpy (imported by vnpy's UI) bind to PySide6
    from PySide6 import QtCore
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from vnpy.event import Event, EventEngine
    from vnpy.trader.constant import Direction, Exchange, OrderType, Status
    from vnpy.trader.event import EVENT_ORDER
    from vnpy.trader.object import OrderData
    from vnpy.trader.ui.widget import OrderMonitor

    rng = random.Random(7)
    t0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    symbols = [f"S{i:03d}" for i in range(500)]

    def order(i: int, status: Status = Status.NOTTRADED, filled: int = 0) -> OrderData:
        return OrderData(
            gateway_name="ALPACA", symbol=symbols[i % 500], exchange=Exchange.SMART, orderid=f"c-{i}",
            type=OrderType.LIMIT, direction=Direction.LONG if i % 2 else Direction.SHORT,
            price=100 + (i % 997) / 100, volume=100, traded=filled, status=status,
            datetime=t0 + timedelta(milliseconds=i * 50), reference="manual",
        )  # fmt: skip

    # The event engine is only the registry vnpy's monitor subscribes to; it is never started, so
    # no second thread competes with the timed frames. main_engine is used only by double-click cancel.
    engine = EventEngine()
    monitor = OrderMonitor(None, engine)  # type: ignore[arg-type]
    monitor.resize(1600, 900)
    monitor.show()
    app.processEvents()

    paints = [0]

    class _PaintCounter(QtCore.QObject):
        def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
            if event.type() == QtCore.QEvent.Type.Paint:
                paints[0] += 1
            return False

    counter = _PaintCounter()
    monitor.viewport().installEventFilter(counter)

    rss0 = _rss_mb()
    started = time.perf_counter()
    monitor.sorting = False  # instance attribute: the class keeps sorting=True
    for i in range(N_ORDERS):
        monitor.process_event(Event(EVENT_ORDER, order(i)))
    del monitor.sorting
    monitor.setSortingEnabled(monitor.sorting)
    load_s = time.perf_counter() - started
    app.processEvents()
    monitor.viewport().repaint()
    rss1 = _rss_mb()

    per_frame = UPDATES_PER_S // FPS
    next_id = N_ORDERS
    samples: list[float] = []
    cpu: list[float] = []
    paints_before = paints[0]
    for _ in range(MAX_FRAMES):
        t = time.perf_counter()
        c = time.thread_time()
        for _u in range(per_frame):
            if rng.random() < 0.1:
                data = order(next_id)
                next_id += 1
            else:
                i = rng.randrange(N_ORDERS)
                data = order(i, Status.PARTTRADED, filled=rng.randrange(1, 100))
                if rng.random() < 0.3:
                    data.status, data.traded = Status.ALLTRADED, 100
            monitor.signal.emit(Event(EVENT_ORDER, data))
        app.processEvents()
        samples.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    frame_paints = paints[0] - paints_before
    full: list[float] = []
    for _ in range(10):
        t = time.perf_counter()
        monitor.viewport().repaint()
        full.append((time.perf_counter() - t) * 1000)
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(samples)
    rows = monitor.rowCount()
    monitor.close()
    load_avg = os.getloadavg()[0]
    version = versions()
    return {
        "anchor_vnpy_blotter_frame_p99_ms": {
            "value": round(p99, 2), "unit": "ms", "version": version, "compare": "blotter_frame_p99_ms",
            "median_ms": round(median, 2), "cpu_median_ms": round(statistics.median(cpu), 2),
            "cpu_max_ms": round(max(cpu), 2), "rows": rows, "updates_per_s": UPDATES_PER_S,
            "frames": len(samples), "paints": frame_paints,
            "gui_updates_per_s": round(per_frame * 1000 / median, 1), "load_avg_1m": round(load_avg, 2),
        },
        "anchor_vnpy_blotter_full_repaint_ms": {"value": round(statistics.median(full), 2), "unit": "ms",
                                                "compare": "blotter_full_repaint_ms"},
        "anchor_vnpy_blotter_load_100k_s": {"value": round(load_s, 2), "unit": "s",
                                            "compare": "blotter_load_100k_s",
                                            "note": "one event per order, sorting off during the load"},
        "anchor_vnpy_blotter_mb_100k_rows": {"value": round(rss1 - rss0, 1), "unit": "MB"},
    }  # fmt: skip


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
