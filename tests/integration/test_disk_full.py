"""A real full disk under the terminal's data directory (a small tmpfs), for a few seconds mid-script:
every scripted order is sent or refused with a message, the script runs to its last entry, nothing
is sent without its journal entry, no fill is lost, the log names "disk full", and trading goes on
once space returns.

The regression: with the disk full for 12 s, 42 of 60 script orders were never sent (the script's
task died on "database or disk is full") and the only trace was a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.crash.harness import REPO, check_invariants, exchange_orders
from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for_text

ORDERS = 24
FULL_FOR_S = 5.0


def _mount_tmpfs(path: Path, size: str) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


def _fill(path: Path) -> Path:
    """Write zeros until the file system is full; returns the filler file."""
    filler = path / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError:
                break
        for size in (1 << 16, 1 << 12, 1 << 9, 1):  # the last bytes too
            while True:
                try:
                    fh.write(chunk[:size])
                except OSError:
                    break
    return filler


@pytest.mark.slow
def test_a_full_disk_mid_script_refuses_or_sends_every_order_and_trading_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "heron"
    _mount_tmpfs(data, "48m")
    try:
        script = tmp_path / "script.json"  # outside the full disk: the script file is not at fault
        # quantities 1..5 in turn: the risk gate refuses a repeat of the same order within 2 s
        script.write_text(json.dumps(
            [{"symbol": "AAPL", "side": "buy", "qty": str(1 + n % 5), "type": "market", "delay": 0.5}
             for n in range(ORDERS)]
        ))  # fmt: skip
        report = tmp_path / "report.json"
        log_file = data / "profiles" / "default" / "logs" / "heron.log"
        with ExchangeProcess.start(seed=21) as ex:
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(data),
                 "--exchange-url", ex.url, "--exchange-keys", str(ex.keys_file), "--quit-after", "40",
                 "--state-report", str(report), "--script", str(script)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            )  # fmt: skip
            try:
                wait_for_text(log_file, "script order 3:", 60)
                filler = _fill(data)
                time.sleep(FULL_FOR_S)  # the fault's duration, not a wait for a result
                filler.unlink()
                _, stderr = proc.communicate(timeout=90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            assert proc.returncode == 0, stderr[-3000:]
            log_text = log_file.read_text(errors="replace")
            assert "disk full" in stderr, stderr[-3000:]
            # no order, script, strategy, risk or shadow-model path ends in a traceback
            ours = r'File ".*(services/(orders|risk|strategies)|app/(script|strategy_sink))'
            assert not re.search(ours, stderr), stderr[-3000:]
            assert not re.findall(r"background task (\S+) failed", stderr), stderr[-3000:]
            assert "disk full" in log_text  # said in the log once it takes writes again
            # the script ran to its end; every order was sent or refused with a message
            assert f"script order {ORDERS}:" in log_text
            refused = set(re.findall(r"script order (\d+): .* denied \((.*disk full.*)\)", stderr))
            sent = [o for o in exchange_orders(ex) if o["client_order_id"].startswith("hr-")]
            assert len(sent) + len(refused) == ORDERS, (len(sent), refused)
            assert int(re.findall(r"script order (\d+): .* accepted", log_text)[-1]) > 3 + FULL_FOR_S / 0.5
            # journal before wire, no duplicate, no fill lost: the terminal's books equal the exchange's
            state = json.loads(report.read_text())
            check_invariants(ex, data, state, intents=ORDERS)
            assert state["trading_state"] == "ACTIVE", state
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
