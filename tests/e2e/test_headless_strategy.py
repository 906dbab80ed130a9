"""A headless run with a strategy on the local exchange produces orders, fills and scored shadow
predictions in the state report (short variant of the documented 60 s run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_headless_strategy_trades_and_shadow_scores(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "main.py"),
            "--headless",
            "--data-dir",
            str(tmp_path / "data"),
            "--quit-after",
            "25",
            "--state-report",
            str(report),
            "--bar-seconds",
            "1",
            "--start-strategy",
            "sma_crossover:fast=2,slow=4,symbols=AAPL;MSFT;SPY",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["version"] == 1 and data["mode"] == "local"
    assert data["trading_state"] == "ACTIVE"
    assert data["connection"]["streams"] == {"stock": "live", "crypto": "live", "trading": "live"}
    (strategy,) = data["strategies"]
    assert strategy["name"] == "sma_crossover" and strategy["error"] is None
    assert strategy["orders"] >= 1
    assert data["orders"]["by_status"].get("filled", 0) >= 1
    assert data["positions"]["local"] == data["positions"]["broker"]
    assert data["reconciliation"]["clean"] is True
    assert data["shadow"]["predictions"] > 0 and data["shadow"]["scored"] > 0
    assert any(m["scored"] > 0 and m["hit_rate"] is not None for m in data["shadow"]["models"])
