"""Ctrl+C while a headless sweep's history loads: the load stops, the report says so, exit 1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[3]


def test_an_interrupt_while_the_history_loads_stops_it_and_reports_the_sweep_not_started(
    tmp_path: Path,
) -> None:
    """A year of one-minute bars of two symbols takes the local exchange many seconds to serve; a
    SIGINT meanwhile used to wait for all of it. It stops the load, writes the report (cancelled,
    nothing run, no sweep stored) and exits 1 with the reason in the log."""
    spec = tmp_path / "spec.json"
    space = {"fast": [2, 3], "slow": [10, 20]}
    spec.write_text(json.dumps({"strategy": "sma_crossover", "symbols": ["AAPL", "MSFT"], "days": 365,
                                "timeframe": "1Min", "space": space}))  # fmt: skip
    report, data = tmp_path / "out.json", tmp_path / "heron"
    log = data / "profiles" / "default" / "logs" / "heron.log"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data), "--sweep", str(spec),
         "--sweep-report", str(report)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for("the history load", lambda: log.exists() and "sweep history:" in log.read_text(), 60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert proc.returncode == 1, err[-2000:]
    assert "sweep not started: interrupted (SIGINT) while its history loaded" in text
    out = json.loads(report.read_text())
    assert (out["sweep_id"], out["state"], out["completed"], out["total"], out["points"]) == (
        None, "cancelled", 0, 4, []
    )  # fmt: skip
    assert out["message"] == "interrupted (SIGINT) while its history loaded"
