"""Preview: ``python -m widgets.chart [--bars N] [--screenshot FILE]``.

Opens a ChartPanel fed with a deterministic synthetic random walk (labelled SAMPLE in the title)
and ticks the live bar from a QTimer, so the chart can be looked at without the terminal.
``--screenshot FILE`` saves a PNG after one second and exits.
"""

from __future__ import annotations

import argparse
import sys
from zoneinfo import ZoneInfo

import numpy as np
from PySide6 import QtCore, QtWidgets

from widgets.chart.panel import ChartPanel
from widgets.chart.sample import random_walk_bars
from widgets.theme import apply_theme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m widgets.chart", description=__doc__)
    parser.add_argument("--bars", type=int, default=390 * 15, help="number of sample 1-minute bars")
    parser.add_argument("--screenshot", metavar="FILE", help="save a PNG after 1 s and exit")
    args = parser.parse_args(argv)
    if args.bars < 2:
        parser.error("--bars must be at least 2")

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    assert isinstance(app, QtWidgets.QApplication)
    apply_theme(app, "dark")  # the terminal's own theme, so the preview looks as in the app

    data = random_walk_bars(args.bars, session_bars=390, start_price=187.0, seed=11)
    panel = ChartPanel(display_tz=ZoneInfo("America/New_York"), visible_bars=180)
    panel.setWindowTitle("Heron chart preview — SAMPLE DATA (synthetic random walk)")
    panel.resize(1400, 820)
    panel.set_history("AAPL", "1Min", data)
    for name in ("SMA", "EMA", "BB", "RSI"):
        panel.set_indicator(name, True)
    t = data["t"]
    c = data["c"]
    panel.set_fills(
        [
            (int(t[-60]), float(c[-60]), "buy"),
            (int(t[-25]), float(c[-25]), "sell"),
            (int(t[-140]), float(c[-140]), "buy"),
        ]
    )
    last_close = float(c[-1])
    panel.set_open_orders(
        [
            ("sample-1", "buy", round(last_close * 0.992, 2)),
            ("sample-2", "sell", round(last_close * 1.008, 2)),
        ]
    )
    panel.symbolRequested.connect(lambda s: print(f"symbolRequested {s}"))
    panel.timeframeRequested.connect(lambda s: print(f"timeframeRequested {s}"))

    rng = np.random.default_rng(5)
    step = int(t[-1] - t[-2])
    state = {"ticks": 0}

    def tick() -> None:
        live = panel.store.live
        assert live is not None
        state["ticks"] += 1
        price = live.c * float(np.exp(rng.normal(0, 0.0004)))
        if state["ticks"] % 40 == 0:  # start a new bar now and then
            panel.update_last_bar(live.t + step, live.c, max(live.c, price), min(live.c, price), price, 50.0)
        else:
            panel.update_last_bar(
                live.t,
                live.o,
                max(live.h, price),
                min(live.l, price),
                price,
                live.v + float(rng.integers(1, 400)),
            )

    timer = QtCore.QTimer(panel)
    timer.timeout.connect(tick)
    timer.start(50)

    panel.show()
    if args.screenshot:
        out = args.screenshot

        def shoot() -> None:
            ok = panel.grab().save(out)
            print(f"screenshot {'saved to' if ok else 'FAILED for'} {out}")
            app.exit(0 if ok else 1)

        QtCore.QTimer.singleShot(1000, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
