"""One exchange per venue, never an orphan (the exchange's side).

- a second exchange on the same data directory refuses at once, naming the directory and the pid
  of the exchange that holds it (exit status 3), and the first one goes on untouched;
- ``--exit-with-parent PID``: the exchange ends cleanly when that process dies, SIGKILL included,
  whether PID is its direct parent (the kernel's parent-death signal) or not (the poll);
- a SIGTERM during start-up stops it cleanly (exit 0, nothing served) and leaves no lock held.

The stale write-back itself (an orphan's periodic write restoring old cash) is reproduced in
process in tests/unit/exchange/test_single_writer.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exchange import REPO, TEST_KEY_ID, TEST_SECRET, ExchangeProcess
from tests.support.polling import wait_for

DEADLINE = 20.0
EXIT_DATA_DIR_LOCKED = 3


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _exchange_argv(data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "services.exchange", "--data-dir", str(data_dir), "--port", "0",
            "--rate", "0", *extra]  # fmt: skip


def _gone(pid: int) -> bool:
    """Not running any more (a zombie left for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _kill_quietly(pid: int) -> None:
    """SIGKILL the exchange ``pid`` if it still runs (and the pid was not reused by another program)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"services.exchange" in cmdline and not _gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Processes a test started outside a Popen it waits for; all killed at the end."""
    started: list[int] = []
    yield started
    for pid in started:
        _kill_quietly(pid)


def _starts_and_stops(data_dir: Path) -> None:
    """A fresh exchange on ``data_dir`` comes up (no lock left held) and stops cleanly."""
    with ExchangeProcess.start(root=data_dir.parent) as ex:
        status, body = ex.request("GET", "/v2/account")
        assert status == 200, body
        assert ex.stop() == 0


def test_a_second_exchange_on_the_same_data_dir_refuses(tmp_path: Path) -> None:
    with ExchangeProcess.start(root=tmp_path) as first:
        assert first._proc is not None
        status, before = first.request("GET", "/v2/account")
        assert status == 200
        second = subprocess.run(
            _exchange_argv(first.data_dir, "--keys-file", str(first.keys_file)),
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert second.returncode == EXIT_DATA_DIR_LOCKED, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert str(first.data_dir) in lines[0] and f"pid {first._proc.pid}" in lines[0]
        assert "listening" not in second.stdout and "Traceback" not in second.stderr
        # The first exchange goes on as if nothing happened.
        status, after = first.request("GET", "/v2/account")
        assert status == 200 and after["cash"] == before["cash"]
        assert first.running
    _starts_and_stops(tmp_path / "data")  # once the first has stopped, the directory is free


def _spawn_parent(tmp_path: Path, data_dir: Path, watched: str) -> tuple[subprocess.Popen[str], int]:
    """A stand-in terminal: starts the exchange with --exit-with-parent, prints its pid and waits.
    ``watched`` is "self" (the parent passes its own pid) or a pid given by the test."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"key_id": TEST_KEY_ID, "secret": TEST_SECRET}))
    script = textwrap.dedent(f"""
        import os, subprocess, sys, time
        watched = os.getpid() if {watched!r} == "self" else int({watched!r})
        log = open({str(tmp_path / "exchange.stderr.log")!r}, "w")
        child = subprocess.Popen(
            [sys.executable, "-m", "services.exchange", "--data-dir", {str(data_dir)!r}, "--port", "0",
             "--rate", "0", "--keys-file", {str(keys)!r}, "--exit-with-parent", str(watched)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
        line = child.stdout.readline()
        print(child.pid, line.strip(), flush=True)
        while True:
            time.sleep(60)
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pid_text, _, ready = parent.stdout.readline().partition(" ")
    assert ready.startswith("listening on http://"), (ready, (tmp_path / "exchange.stderr.log").read_text())
    return parent, int(pid_text)


def _assert_stopped_cleanly(tmp_path: Path, data_dir: Path, watched: int, exchange: int) -> None:
    wait_for(f"the exchange (pid {exchange}) to end after its parent", lambda: _gone(exchange), DEADLINE)
    err = (tmp_path / "exchange.stderr.log").read_text()
    assert f"parent process {watched} has exited; shutting down" in err, err
    assert "Traceback" not in err, err
    assert not (data_dir / "venue.sqlite3-wal").exists()  # the venue was closed, not killed
    with sqlite3.connect(data_dir / "venue.sqlite3") as db:
        assert db.execute("SELECT value FROM kv WHERE key = 'cash'").fetchone() is not None
    db.close()
    _starts_and_stops(data_dir)


def test_the_exchange_ends_when_its_parent_is_killed(tmp_path: Path, pids: list[int]) -> None:
    data_dir = tmp_path / "data"
    parent, exchange = _spawn_parent(tmp_path, data_dir, "self")
    pids.append(exchange)
    try:
        parent.send_signal(signal.SIGKILL)  # the terminal dies without a word
        parent.wait(timeout=DEADLINE)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    _assert_stopped_cleanly(tmp_path, data_dir, parent.pid, exchange)


def test_the_exchange_ends_when_a_watched_process_that_is_not_its_parent_dies(
    tmp_path: Path, pids: list[int]
) -> None:
    """The portable poll: no parent-death signal applies when PID is not the direct parent."""
    data_dir = tmp_path / "data"
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    parent: subprocess.Popen[str] | None = None
    try:
        parent, exchange = _spawn_parent(tmp_path, data_dir, str(watched.pid))
        pids.append(exchange)
        assert not _gone(exchange)
        watched.kill()
        watched.wait(timeout=DEADLINE)
        _assert_stopped_cleanly(tmp_path, data_dir, watched.pid, exchange)
    finally:
        for proc in (watched, parent):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sigterm_during_start_up_stops_cleanly_and_frees_the_data_dir(tmp_path: Path) -> None:
    """Deterministic: the keys file is a FIFO, so start-up blocks reading it (the data directory
    already locked, nothing served yet); SIGTERM arrives exactly then. The exchange must finish
    reading, stop without serving, exit 0 and leave the directory free for the next one."""
    data_dir = tmp_path / "data"
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        _exchange_argv(data_dir, "--keys-file", str(fifo)),
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with open(fifo, "w") as writer:  # returns once the exchange has opened it to read
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(BrokenPipeError):  # no reader left when the signal killed it
                writer.write(json.dumps({"key_id": TEST_KEY_ID, "secret": TEST_SECRET}))
                writer.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"status {proc.returncode}; stderr:\n{err}"
    assert "listening" not in out and "Traceback" not in err
    _starts_and_stops(data_dir)
