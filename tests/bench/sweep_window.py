"""How smoothly the Strategy lab window runs while a real sweep fills it: ``sweep_gui_frame_p99_ms``.

The lab window (``widgets.lab.dialog``) is driven by Heron's own engine adapter
(``app.qt.panels.lab.LabEngine``) on a temporary SQLite database: a grid over the SMA crossover (fast
2..10 × slow 10..40 step 5, 62 valid points) on generated one-minute bars, on the local Dask cluster
the sweep starts: by default the lab's own size, cores − 1 worker processes (one on a 2-core machine,
which leaves a core to the window), or ``workers``. A 16 ms QTimer in the window records when it fires, from
Start until the sweep's outcome is shown; the figure is the 99th percentile of the intervals (an idle
loop gives ~16 ms; a GUI thread busy with one long step shows it as one long interval). Goal: ≤ 33 ms,
two frames at 60 Hz.

``QT_QPA_PLATFORM`` is the caller's (``offscreen`` under ``python -m tests.bench``); the figures say
which, with the 1-minute load average before and after: on a shared 2-core machine the workers'
backtests compete with the GUI thread for the cores.

Run alone: ``uv run python -m tests.bench.sweep_window [--bars N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

#: the timer whose intervals are measured
FRAME_MS = 16
#: the longest a measured sweep may take before the figure is given up
SWEEP_TIMEOUT_S = 600.0


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def measure(*, bars: int = 20_000, workers: int | None = None) -> dict[str, Any]:
    """Run one sweep in the window and return the figures (see the module docstring)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.qt.panels.lab import LabEngine
    from services.domain.enums import Timeframe
    from services.domain.models import Bar
    from services.lab.cluster import LabSettings
    from services.storage import Database
    from services.strategies.builtin import builtin_registry
    from services.strategies.synthetic import synthetic_bars
    from widgets.lab.dialog import StrategyLabDialog

    app = QApplication.instance() or QApplication([sys.argv[0]])
    registry = builtin_registry()

    def load(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        return synthetic_bars(symbol, bars, seed=7)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="heron-bench-sweep-") as folder:
        db = Database.open(None, Path(folder))
        engine = LabEngine(db, registry, load, lambda: LabSettings(workers=workers))
        dialog = StrategyLabDialog(registry, engine)
        try:
            dialog.form.fields["fast"].setText("2..10")
            dialog.form.fields["slow"].setText("10..40 step 5")
            dialog.form.workers.setValue(workers or 0)  # 0: the default size
            dialog.show()
            ticks: list[float] = []
            timer = QTimer(dialog)
            timer.setInterval(FRAME_MS)
            timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
            loop = QEventLoop()
            done = QTimer(dialog)
            done.setInterval(50)
            done.timeout.connect(lambda: loop.quit() if dialog.run is None else None)
            started = time.perf_counter()
            timer.start()
            if not dialog.start():
                raise RuntimeError(f"the sweep did not start: {dialog.status.text()}")
            bridge = dialog.bridge
            outcomes: list[Any] = []
            if bridge is not None:
                bridge.finished.connect(outcomes.append)
            done.start()
            QTimer.singleShot(int(SWEEP_TIMEOUT_S * 1000), loop.quit)
            loop.exec()
            elapsed = time.perf_counter() - started
            timer.stop()
            status = dialog.status.text()
            points = dialog.points.rowCount()
            flushes = bridge.flushes if bridge is not None else None
        finally:
            dialog.close()
            engine.close()
            db.dispose()
            app.processEvents()
    intervals = [(b - a) * 1000 for a, b in itertools.pairwise(ticks)]
    return {
        "sweep_gui_frame_p99_ms": {
            "value": p99(intervals),
            "unit": "ms",
            "goal": "<= 33",
            "frames": len(intervals),
            "max_ms": max(intervals, default=None),
            "points": points,
            "sweep_s": round(elapsed, 2),
            "outcome": status,
            "batches": flushes,
            "workers": outcomes[0].workers if outcomes else None,
            "bars": bars,
            "platform": os.environ.get("QT_QPA_PLATFORM"),
            "load_1m_before": load_before,
            "load_1m_after": os.getloadavg()[0],
        }
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=None, help="default: the lab's (cores − 1)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(bars=args.bars, workers=args.workers), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
