"""Whole-window frame time during a market-data storm, and cold start-up time.

``ui_frame_p99_ms``: the terminal's real services on the local exchange (in-process, offscreen,
qasync loop), the main window with every trading panel and the chart. A storm of 50,000 quote
messages/s over 500 symbols (the watchlist's symbols among them) is generated on the market-data
thread and fed through the real pipeline (book → coalescer → one batch per frame). A frame is
the GUI thread's handling of one batch (every panel's bus handler) plus a synchronous repaint of
the window. The coalescer backlog is sampled to show it stays bounded.

``startup_s``: ``main.py`` as a subprocess in local mode with a fresh data dir, from spawn to the
log line saying the trading panels are installed (services up, window usable).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[2]
RATE = 50_000
SYMBOLS = 500
STORM_S = 6.0


def _storm(pipeline: Any, loop: asyncio.AbstractEventLoop, symbols: list[str], stop: list[bool]) -> None:
    """Runs on the market-data thread: RATE quote messages/s in 5 ms slices."""
    rng = random.Random(11)
    mids = {s: 100.0 + i for i, s in enumerate(symbols)}
    per_slice = RATE // 200

    def slice_() -> None:
        if stop[0]:
            return
        now = time.time()
        ns = int(now * 1e9)
        msgs = []
        for _ in range(per_slice):
            s = symbols[rng.randrange(len(symbols))]
            m = mids[s] = max(1.0, mids[s] + rng.uniform(-0.02, 0.02))
            msgs.append({"T": "q", "S": s, "bp": round(m - 0.01, 2), "bs": 100, "ap": round(m + 0.01, 2),
                         "as": 100, "t": ns})  # fmt: skip
        pipeline.process_messages(msgs, now)
        loop.call_later(0.005, slice_)

    loop.call_soon_threadsafe(slice_)


def _frames(data_dir: Path) -> dict[str, Any]:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.panels_trading import install
    from services.domain.enums import Mode
    from widgets.main_window import MainWindow
    from widgets.preview import start_local_services, stop_services

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    out: dict[str, Any] = {}

    async def main() -> None:
        ctx, services = await start_local_services(data_dir)
        try:
            streams = services.streams
            window = MainWindow(Mode.LOCAL)
            window.resize(1600, 1000)
            install(window, ctx, services)
            window.show()
            await asyncio.sleep(2.0)  # history, first quotes
            samples: list[float] = []
            backlog: list[int] = []
            original = streams._deliver

            def timed(batch: Any) -> None:
                t = time.perf_counter()
                original(batch)
                window.repaint()
                samples.append((time.perf_counter() - t) * 1000)
                backlog.append(streams.pipeline.coalescer.backlog)

            streams.data._deliver = timed
            symbols = list(dict.fromkeys([*ctx.settings.watchlist, *(f"ST{i:03d}" for i in range(SYMBOLS))]))
            symbols = [s for s in symbols if "/" not in s][:SYMBOLS]
            stop = [False]
            before = streams.messages_delivered
            _storm(streams.pipeline, streams.data.loop, symbols, stop)
            await asyncio.sleep(STORM_S)
            stop[0] = True
            delivered = streams.messages_delivered - before
            await asyncio.sleep(0.3)
            streams.data._deliver = original
            samples.sort()
            out["samples"] = samples
            out["delivered_per_s"] = delivered / STORM_S
            out["backlog_max"] = max(backlog) if backlog else None
            out["backlog_last"] = backlog[-1] if backlog else None
            window.close()
        finally:
            await stop_services(ctx)

    with loop:
        loop.run_until_complete(asyncio.wait_for(main(), 120))
    return out


def _startup() -> float | None:
    with tempfile.TemporaryDirectory(prefix="heron-startup-") as tmp:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--mode", "local", "--data-dir", tmp, "--quit-after", "25"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        found: float | None = None
        try:
            while time.monotonic() - t0 < 25 and proc.poll() is None:
                logs = list(Path(tmp).rglob("heron.log"))
                if logs and re.search("trading panels installed", logs[0].read_text(errors="replace")):
                    found = time.monotonic() - t0
                    break
                time.sleep(0.02)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return found


def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="heron-bench-ui-") as tmp:
        res = _frames(Path(tmp))
    samples = res["samples"]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else None
    startup = _startup()
    return {
        "ui_frame_p99_ms": {
            "value": None if p99 is None else round(p99, 2), "unit": "ms", "goal": "<= 33",
            "median_ms": round(statistics.median(samples), 2) if samples else None, "frames": len(samples),
            "storm_msgs_per_s": RATE, "symbols": SYMBOLS,
            "delivered_msgs_per_s": round(res["delivered_per_s"]),
            "coalescer_backlog_max": res["backlog_max"], "coalescer_backlog_last": res["backlog_last"],
        },
        "startup_s": {"value": None if startup is None else round(startup, 2), "unit": "s", "goal": "<= 2.0",
                      "note": "spawn to 'trading panels installed' in heron.log"
                      + ("" if startup is not None else "; never reached within 25 s")},
    }  # fmt: skip


if __name__ == "__main__":
    print(run())
