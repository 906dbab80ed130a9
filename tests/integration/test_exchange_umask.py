"""A hand-started exchange keeps its files owner-only whatever the caller's umask."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.crash.harness import REPO
from tests.support.polling import wait_for


def test_a_hand_started_exchange_creates_owner_only_files_under_umask_000(tmp_path: Path) -> None:
    data = tmp_path / "venue-data"
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"key_id": "PKUMASK", "secret": "umask-secret-0000"}))
    keys.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.exchange", "--port", "0", "--data-dir", str(data),
         "--keys-file", str(keys)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: os.umask(0),  # the caller's umask is the point
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on http://"):
                break
        else:
            raise AssertionError(f"the exchange did not start: {proc.stderr.read() if proc.stderr else ''}")
        venue = data / "venue.sqlite3"
        wait_for("the venue database", venue.exists, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700, oct(data.stat().st_mode)
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} {oct(path.stat().st_mode)}"
