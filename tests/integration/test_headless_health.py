"""Headless, with no window to ask: a frozen exchange (SIGSTOP) is said in the log as the broker
connection leaving live, and the state report, rewritten while the terminal runs, shows the freeze
while it happens (connection not live, no stream reported live while silent)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
#: Polling bounds, not speed claims.
NOTICED_WITHIN = 15.0
START_WITHIN = 60.0


def _until(cond: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str]) -> Any:
    """:func:`wait_for` that gives up at once when the terminal exits."""

    def check() -> Any:
        if proc.poll() is not None:
            raise AssertionError(f"the terminal exited ({proc.returncode}) while waiting for {what}")
        return cond()

    return wait_for(what, check, timeout, every=0.1)


def _report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def test_headless_says_a_frozen_exchange_and_its_report_shows_it_mid_run(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    report = tmp_path / "report.json"
    log_file = data / "profiles" / "default" / "logs" / "heron.log"
    with ExchangeProcess.start(seed=21) as ex:
        assert ex._proc is not None
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "main.py"),
                "--headless",
                "--data-dir",
                str(data),
                "--exchange-url",
                ex.url,
                "--exchange-keys",
                str(ex.keys_file),
                "--quit-after",
                "180",
                "--state-report",
                str(report),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        stopped = False
        try:
            # The report exists and says the truth before quit: trading, every stream live.
            def trading_live() -> bool:
                r = _report(report)
                return bool(
                    r
                    and r.get("trading_state") == "ACTIVE"
                    and r.get("final") is False
                    and r["connection"].get("live") is True
                    and set(r["connection"]["streams"].values()) == {"live"}
                )

            _until(trading_live, START_WITHIN, "a mid-run state report with a live connection", proc)
            written = report.stat().st_mtime_ns

            os.kill(ex._proc.pid, signal.SIGSTOP)
            stopped = True
            _until(
                lambda: (
                    log_file.exists()
                    and "broker connection live -> unresponsive" in log_file.read_text(errors="replace")
                ),
                NOTICED_WITHIN,
                "the log to say the broker connection is unresponsive",
                proc,
            )

            def frozen_reported() -> dict[str, Any] | None:
                r = _report(report)
                if r is None or report.stat().st_mtime_ns == written or r["connection"].get("live"):
                    return None
                return r if "live" not in r["connection"]["streams"].values() else None

            frozen = _until(frozen_reported, NOTICED_WITHIN, "the report to show the freeze", proc)
            assert frozen["final"] is False
            assert frozen["trading"]["orders_possible"] is False
            assert frozen["connection"]["streams"]["trading"] == "unresponsive"

            os.kill(ex._proc.pid, signal.SIGCONT)
            stopped = False
            _until(trading_live, NOTICED_WITHIN * 2, "the report to show the connection live again", proc)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if stopped:
                os.kill(ex._proc.pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0, stderr[-2000:]
        final = _report(report)
        assert final is not None and final["final"] is True
