"""Chart benchmark: 1M one-minute bars in a 1600×900 ChartPanel, offscreen.

One "frame" is the update call + ``processEvents()``, which delivers the window's pending update
request and paints, in the software raster backing store, exactly what the user would see change
(plot, axes, readout). ``paints_per_frame`` counts the plot's paint events to prove the paint
happened inside the timed frame. (An earlier version also called ``grab()``, which rendered the
whole plot a second time per frame.) Wall-clock figures are the goals; ``..._cpu_ms`` figures are
the GUI thread's CPU time for the same frames, which a loaded 2-core box does not inflate.
Figures (p95 over the repetitions):

- chart_last_bar_p95_ms: ``update_last_bar`` (same bar) + frame, zoomed to the last ~300 bars.
- chart_append_p95_ms: ``append_bars`` of one new bar (the live bar joins history) + frame, zoomed.
- chart_full_view_ms: median frame after a new bar with all 1M bars in view (per-pixel merge
  recomputed; the worst case for a full view).
- chart_full_view_tick_ms: median tick + frame in full view (merge cached, only the live bar changes).
- chart_mb_per_1m_bars: RSS growth from ``set_history`` of 1M bars and the first frame.
- chart_last_bar_p95_ms_with_indicators / chart_append_p95_ms_with_indicators: the same with SMA,
  EMA and Bollinger bands on (an append extends each indicator by the new bar; no goal is set).

Every figure above is taken with :data:`ORDER_LINES` working-order lines (limit, stop, stop-limit,
trailing stop, bracket legs) and :data:`FILL_MARKERS` fill markers drawn, as a trading chart has
them. ``chart_drag_replace_ms`` (tests/bench/chart_drag.py) is the median time from the release of
a dragged order line to the replaced order's line drawn at its new price, through the engine and
the local exchange on loopback.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from tests.bench import chart_drag

N_BARS = 1_000_000
WIDTH, HEIGHT = 1600, 900
ZOOM_BARS = 300
ORDER_LINES = 8  # lines of the orders below (a stop-limit has two)
FILL_MARKERS = 400


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def run() -> dict[str, dict[str, Any]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    from widgets.chart.panel import ChartPanel
    from widgets.chart.sample import random_walk_bars

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data = random_walk_bars(N_BARS, seed=3)
    step = int(data["t"][1] - data["t"][0])

    panel = ChartPanel(visible_bars=ZOOM_BARS)
    panel.resize(WIDTH, HEIGHT)
    panel.show()
    app.processEvents()

    paints = [0]

    class _PaintCounter(QtCore.QObject):
        def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
            if event.type() == QtCore.QEvent.Type.Paint:
                paints[0] += 1
            return False

    counter = _PaintCounter()
    panel.plot_widget.viewport().installEventFilter(counter)

    def frame() -> None:
        app.processEvents()

    frame()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    panel.set_history("BENCH", "1Min", data)
    frame()
    load_s = time.perf_counter() - t0
    rss1 = _rss_mb()
    lines, markers = _draw_orders_and_fills(panel, data)
    frame()

    rng = np.random.default_rng(1)

    def tick_same() -> None:
        live = panel.store.live
        assert live is not None
        p = live.c * (1 + rng.normal(0, 2e-4))
        panel.update_last_bar(live.t, live.o, max(live.h, p), min(live.l, p), p, live.v + 10)

    def append_one() -> None:
        live = panel.store.live
        assert live is not None
        c = live.c
        panel.append_bars(
            {
                "t": np.array([live.t + step], dtype=np.int64),
                "o": np.array([c]),
                "h": np.array([c * 1.0005]),
                "l": np.array([c * 0.9995]),
                "c": np.array([c * 1.0002]),
                "v": np.array([100.0]),
            }
        )

    cpu: dict[str, list[float]] = {}
    paint_counts: dict[str, float] = {}

    def timed(fn: Any, reps: int, warm: int = 5, name: str = "") -> list[float]:
        for _ in range(warm):
            fn()
            frame()
        out = []
        cpu_ms = cpu.setdefault(name, [])
        p0 = paints[0]
        for _ in range(reps):
            t = time.perf_counter()
            c = time.thread_time()
            fn()
            frame()
            out.append((time.perf_counter() - t) * 1000)
            cpu_ms.append((time.thread_time() - c) * 1000)
        paint_counts[name] = (paints[0] - p0) / reps
        return out

    panel.go_latest()
    frame()
    last_bar = timed(tick_same, 300, name="last_bar")
    append = timed(append_one, 100, name="append")

    n = len(panel.store)
    panel.price_plot.getViewBox().setXRange(-1, n + 1, padding=0)
    panel.viewport.follow = True  # keep the whole range in view while bars arrive
    frame()
    full_tick = timed(tick_same, 40, name="full_tick")
    full_append = timed(append_one, 25, warm=3, name="full_append")

    panel.go_latest()
    frame()
    for name in ("SMA", "EMA", "BB"):
        panel.set_indicator(name, True)
    frame()
    last_bar_ind = timed(tick_same, 150, name="last_bar_ind")
    append_ind = timed(append_one, 20, warm=2, name="append_ind")

    scale = 1e6 / N_BARS
    panel.close()
    load_avg = os.getloadavg()[0]
    return {
        "chart_last_bar_p95_ms": {
            "value": round(_pct(last_bar, 95), 2),
            "unit": "ms",
            "goal": "<= 5",
            "cpu_p95_ms": round(_pct(cpu["last_bar"], 95), 2),
            "paints_per_frame": paint_counts["last_bar"],
            "load_avg_1m": load_avg,
            "order_lines": lines,
            "fill_markers": markers,
        },
        "chart_append_p95_ms": {
            "value": round(_pct(append, 95), 2),
            "unit": "ms",
            "goal": "<= 8",
            "cpu_p95_ms": round(_pct(cpu["append"], 95), 2),
            "paints_per_frame": paint_counts["append"],
        },
        "chart_full_view_ms": {
            "value": round(_pct(full_append, 50), 2),
            "unit": "ms",
            "goal": "<= 10",
            "cpu_median_ms": round(_pct(cpu["full_append"], 50), 2),
            "paints_per_frame": paint_counts["full_append"],
        },
        "chart_mb_per_1m_bars": {"value": round((rss1 - rss0) * scale, 1), "unit": "MB", "goal": "<= 100"},
        "chart_last_bar_median_ms": {"value": round(_pct(last_bar, 50), 2), "unit": "ms"},
        "chart_append_median_ms": {"value": round(_pct(append, 50), 2), "unit": "ms"},
        "chart_full_view_p95_ms": {"value": round(_pct(full_append, 95), 2), "unit": "ms"},
        "chart_full_view_tick_ms": {"value": round(_pct(full_tick, 50), 2), "unit": "ms"},
        "chart_load_1m_bars_s": {"value": round(load_s, 3), "unit": "s"},
        "chart_last_bar_p95_ms_with_indicators": {"value": round(_pct(last_bar_ind, 95), 2), "unit": "ms"},
        "chart_append_p95_ms_with_indicators": {"value": round(_pct(append_ind, 95), 2), "unit": "ms"},
        **chart_drag.run(),
    }


def _draw_orders_and_fills(panel: Any, data: dict[str, np.ndarray]) -> tuple[int, int]:
    """Working orders around the last price and fills over the last bars, through the chart's own
    path for the engine's events. Returns (lines drawn, markers drawn)."""
    from dataclasses import replace
    from datetime import UTC, datetime
    from decimal import Decimal

    from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
    from services.domain.events import FillEvent
    from services.domain.models import Fill, Order

    last = Decimal(str(round(float(data["c"][-1]), 2)))
    now = datetime.now(UTC)
    base = Order(id="", client_order_id="", symbol="BENCH", side=OrderSide.BUY, type=OrderType.LIMIT,
                 time_in_force=TimeInForce.GTC, status=OrderStatus.NEW, qty=Decimal(100),
                 filled_qty=Decimal(0), created_at=now, updated_at=now, submitted_at=now)  # fmt: skip
    pct = last / 100
    orders = [
        replace(base, limit_price=last - pct),
        replace(base, side=OrderSide.SELL, limit_price=last + pct),
        replace(base, type=OrderType.STOP, stop_price=last + 2 * pct),
        replace(base, type=OrderType.STOP_LIMIT, stop_price=last - 2 * pct, limit_price=last - 3 * pct),
        replace(base, side=OrderSide.SELL, type=OrderType.TRAILING_STOP, trail_price=pct, hwm=last),
        replace(base, side=OrderSide.SELL, order_class=OrderClass.OCO, limit_price=last + 3 * pct),
        replace(base, side=OrderSide.SELL, type=OrderType.STOP, stop_price=last - 4 * pct),
    ]
    for i, order in enumerate(orders):
        panel.orders.show_order(replace(order, id=f"o{i}", client_order_id=f"c{i}"))
    times = data["t"][-FILL_MARKERS * 5 :: 5]
    closes = data["c"][-FILL_MARKERS * 5 :: 5]
    for i, (t, c) in enumerate(zip(times.tolist(), closes.tolist(), strict=True)):
        side = OrderSide.BUY if i % 2 else OrderSide.SELL
        ts = datetime.fromtimestamp(t / 1e9, UTC)
        fill = Fill(f"e{i}", "o0", "c0", "BENCH", side, Decimal(1), Decimal(str(round(c, 2))), ts)
        panel.orders.on_fill_event(FillEvent(ts, fill))
    return len(panel.orders.items), len(panel.fill_positions())


if __name__ == "__main__":
    for key, fig in run().items():
        print(f"{key:45s} {fig['value']:>10} {fig['unit']}  {fig.get('goal', '')}")
