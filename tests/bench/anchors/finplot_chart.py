"""Anchor: finplot's candlestick chart measured exactly like ``tests/bench/bench_chart.py``.

Same data (``random_walk_bars(1_000_000, seed=3)``, one-minute bars), same widget size (1600×900),
offscreen, same frame (the update call + ``processEvents()``, which delivers the window's pending
update request and paints; ``paints_per_frame`` counts the plot viewport's paint events to show the
paint happened inside the timed frame), same repetitions and statistics:

- anchor_finplot_last_bar_p95_ms: last bar changed (same bar) + ``update_data`` + frame, zoomed to
  the last ~300 bars (finplot's ``init_zoom_periods=300``; it keeps following the right edge).
- anchor_finplot_append_p95_ms: one new bar + ``update_data`` + frame, zoomed.
- anchor_finplot_full_view_ms: median frame after a new bar with all 1M bars in view.
- anchor_finplot_mb_per_1m_bars: RSS growth from building the 1M-bar DataFrame finplot draws from
  (with the input arrays held, as bench_chart holds them) through ``candlestick_ochl`` + ``show``
  and the first frame. The DataFrame counts because it *is* finplot's bar store: finplot's own
  ``df.copy()`` is copy-on-write under pandas 3 and shares it (``after_dataframe_mb`` is the growth
  once the DataFrame exists, i.e. finplot's own additions only).

finplot's live API is ``item.update_data(df)`` with the *whole* DataFrame (a partial frame is
merged against the full index and the rest is cut away), so the caller keeps its own DataFrame:
the tick sets the last row in place, the append concatenates one row. That caller-side work is
done *before* the timer starts and reported separately as ``caller_prep_p95_ms``; the timed
figure is finplot's own call plus the frame only, which favours the anchor, never Heron.

Runs only in the scratch environment (finplot is not a Heron dependency); see README.md here.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

N_BARS = 1_000_000
WIDTH, HEIGHT = 1600, 900
ZOOM_BARS = 300


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def versions() -> str:
    names = ("finplot", "pyqtgraph", "PySide6-Essentials", "pandas", "numpy")
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def run() -> dict[str, dict[str, Any]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # finplot declares PyQt6; the scratch env leaves it out and pyqtgraph must bind to PySide6.
    os.environ.setdefault("QT_API", "pyside6")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import finplot as fplt
    import pandas as pd
    from PySide6 import QtCore, QtWidgets

    from widgets.chart.sample import random_walk_bars

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data = random_walk_bars(N_BARS, seed=3)
    step = int(data["t"][1] - data["t"][0])
    ax = fplt.create_plot("anchor", init_zoom_periods=ZOOM_BARS, maximize=False)
    win = ax.vb.win
    win.resize(WIDTH, HEIGHT)

    def frame() -> None:
        app.processEvents()

    frame()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    # finplot's candlestick column order: time, open, close, high, low.
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(data["t"], unit="ns", utc=True),
            "open": data["o"],
            "close": data["c"],
            "high": data["h"],
            "low": data["l"],
        }
    )
    rss_df = _rss_mb()
    item = fplt.candlestick_ochl(df, ax=ax)
    fplt.show(qt_exec=False)
    win.resize(WIDTH, HEIGHT)
    frame()
    load_s = time.perf_counter() - t0
    rss1 = _rss_mb()

    paints = [0]

    class _PaintCounter(QtCore.QObject):
        def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
            if event.type() == QtCore.QEvent.Type.Paint:
                paints[0] += 1
            return False

    counter = _PaintCounter()
    win.viewport().installEventFilter(counter)

    rng = np.random.default_rng(1)
    state: dict[str, Any] = {"df": df}
    i_close, i_high, i_low = 2, 3, 4

    def prep_tick() -> None:
        d = state["df"]
        c = float(d.iat[-1, i_close])
        p = c * (1 + rng.normal(0, 2e-4))
        d.iat[-1, i_high] = max(float(d.iat[-1, i_high]), p)
        d.iat[-1, i_low] = min(float(d.iat[-1, i_low]), p)
        d.iat[-1, i_close] = p

    def prep_append() -> None:
        d = state["df"]
        c = float(d.iat[-1, i_close])
        row = pd.DataFrame(
            {
                "time": [d["time"].iat[-1] + pd.Timedelta(step, unit="ns")],
                "open": [c],
                "close": [c * 1.0002],
                "high": [c * 1.0005],
                "low": [c * 0.9995],
            }
        )
        state["df"] = pd.concat([d, row], ignore_index=True)

    def update() -> None:
        item.update_data(state["df"])

    cpu: dict[str, list[float]] = {}
    prep_ms: dict[str, list[float]] = {}
    paint_counts: dict[str, float] = {}

    def timed(prep: Callable[[], None], reps: int, warm: int = 5, name: str = "") -> list[float]:
        for _ in range(warm):
            prep()
            update()
            frame()
        out = []
        cpu_ms = cpu.setdefault(name, [])
        prep_list = prep_ms.setdefault(name, [])
        p0 = paints[0]
        for _ in range(reps):
            tp = time.perf_counter()
            prep()
            prep_list.append((time.perf_counter() - tp) * 1000)
            t = time.perf_counter()
            c = time.thread_time()
            update()
            frame()
            out.append((time.perf_counter() - t) * 1000)
            cpu_ms.append((time.thread_time() - c) * 1000)
        paint_counts[name] = (paints[0] - p0) / reps
        return out

    frame()
    visible_zoomed = ax.vb.targetRect().width()
    last_bar = timed(prep_tick, 300, name="last_bar")
    append = timed(prep_append, 100, name="append")

    d = state["df"]
    fplt.set_x_pos(d["time"].iat[0], d["time"].iat[-1], ax=ax)
    frame()
    visible_full = ax.vb.targetRect().width()
    full_tick = timed(prep_tick, 40, name="full_tick")
    full_append = timed(prep_append, 25, warm=3, name="full_append")
    visible_full_end = ax.vb.targetRect().width()

    scale = 1e6 / N_BARS
    win.close()
    load_avg = os.getloadavg()[0]
    version = versions()
    r = round
    return {
        "anchor_finplot_last_bar_p95_ms": {
            "value": r(_pct(last_bar, 95), 2), "unit": "ms", "version": version,
            "compare": "chart_last_bar_p95_ms",
            "cpu_p95_ms": r(_pct(cpu["last_bar"], 95), 2),
            "caller_prep_p95_ms": r(_pct(prep_ms["last_bar"], 95), 3),
            "paints_per_frame": paint_counts["last_bar"], "visible_bars": r(visible_zoomed, 1),
            "load_avg_1m": load_avg,
        },
        "anchor_finplot_append_p95_ms": {
            "value": r(_pct(append, 95), 2), "unit": "ms", "version": version,
            "compare": "chart_append_p95_ms",
            "cpu_p95_ms": r(_pct(cpu["append"], 95), 2),
            "caller_prep_p95_ms": r(_pct(prep_ms["append"], 95), 3),
            "paints_per_frame": paint_counts["append"],
        },
        "anchor_finplot_full_view_ms": {
            "value": r(_pct(full_append, 50), 2), "unit": "ms", "version": version,
            "compare": "chart_full_view_ms",
            "cpu_median_ms": r(_pct(cpu["full_append"], 50), 2),
            "caller_prep_median_ms": r(_pct(prep_ms["full_append"], 50), 3),
            "paints_per_frame": paint_counts["full_append"],
            "visible_bars": r(visible_full, 1), "visible_bars_at_end": r(visible_full_end, 1),
        },
        "anchor_finplot_mb_per_1m_bars": {
            "value": r((rss1 - rss0) * scale, 1), "unit": "MB", "version": version,
            "compare": "chart_mb_per_1m_bars",
            "dataframe_mb": r((rss_df - rss0) * scale, 1),
            "after_dataframe_mb": r((rss1 - rss_df) * scale, 1),
        },
        "anchor_finplot_last_bar_median_ms": {"value": r(_pct(last_bar, 50), 2), "unit": "ms"},
        "anchor_finplot_append_median_ms": {"value": r(_pct(append, 50), 2), "unit": "ms"},
        "anchor_finplot_full_view_p95_ms": {"value": r(_pct(full_append, 95), 2), "unit": "ms"},
        "anchor_finplot_full_view_tick_ms": {"value": r(_pct(full_tick, 50), 2), "unit": "ms"},
        "anchor_finplot_load_1m_bars_s": {"value": r(load_s, 3), "unit": "s"},
    }  # fmt: skip


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
