"""The exchange process: a SIGTERM at the moment ``listening on ...`` is written shuts it down cleanly.

Clients (Heron's launcher, tests/support/exchange.py, service managers) treat the line as "ready":
from then on SIGTERM must mean a clean shutdown (exit status 0, the venue's SQLite closed), never
the default action of the signal, which kills the process with its state half-written.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.exchange import REPO

F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def test_sigterm_while_the_listening_line_is_written_exits_cleanly(tmp_path: Path) -> None:
    """Deterministic: the stdout pipe is filled up to a few bytes, so the exchange blocks inside the
    write of its ``listening on`` line; SIGTERM arrives exactly then. Without its handlers installed
    the signal kills it (status -15); with them it finishes the line, stops and exits 0."""
    data = tmp_path / "data"
    read_fd, write_fd = os.pipe()
    size = fcntl.fcntl(write_fd, F_GETPIPE_SZ)
    os.write(write_fd, b"x" * (size - 8))  # leave less room than the line needs
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.exchange", "--data-dir", str(data), "--port", "0", "--rate", "0"],
        cwd=REPO,
        stdout=write_fd,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_fd)
    try:
        assert proc.stderr is not None
        # The keys note goes to stderr just before the line; once it is here, the exchange is at
        # (or blocked in) the write of the listening line.
        note = proc.stderr.readline()
        assert "keys.json" in note, note
        proc.send_signal(signal.SIGTERM)
        with os.fdopen(read_fd, "rb") as reader:
            read_fd = -1
            out = reader.read()  # drains the pipe; EOF when the exchange has exited
        proc.wait(timeout=30)
        err = proc.stderr.read()
        assert proc.returncode == 0, f"status {proc.returncode}; stderr:\n{err}"
        assert out.lstrip(b"x").decode().startswith("listening on http://127.0.0.1:")
        assert "Traceback" not in err
        # Its state is committed and the database was closed (a killed exchange leaves the WAL).
        assert not (data / "venue.sqlite3-wal").exists()
        with sqlite3.connect(data / "venue.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM kv").fetchone()[0] > 0
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
