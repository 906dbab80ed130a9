"""Process faults of the terminal in local mode (the real main.py, headless, in a subprocess): a
signal during start-up, a second terminal on the same profile, a stranger on the port recorded in
session.json, and the exchange child killed under a running terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HERON_CRASH_AT", None)
    env["QT_QPA_PLATFORM"] = "offscreen"  # a window needs no display in tests
    return env


def _start(data: Path, *extra: str, window: bool = False) -> subprocess.Popen[str]:
    mode = [] if window else ["--headless"]  # a window renders offscreen (QT_QPA_PLATFORM in _env)
    return subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *mode, "--data-dir", str(data), *extra],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip


def _pids_using(folder: Path) -> list[int]:
    """Every process whose command line names ``folder`` (the exchange's --data-dir)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _exchange_dir(data: Path) -> Path:
    return data / "profiles" / "default" / "exchange"


def _log(data: Path) -> Path:
    return data / "profiles" / "default" / "logs" / "heron.log"


def _logged(data: Path, needle: str) -> bool:
    path = _log(data)
    return path.exists() and needle in path.read_text(errors="replace")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_in_the_first_second_leaves_no_exchange_running(
    tmp_path: Path, procs: list[subprocess.Popen[str]], sig: signal.Signals
) -> None:
    data = tmp_path / "heron"
    proc = _start(data, "--quit-after", "60")
    procs.append(proc)
    exchange = _exchange_dir(data)
    # the moment the child exists (main.py starts it right after parsing, before the imports)
    child = wait_for("an exchange child", lambda: [p for p in _pids_using(exchange) if p != proc.pid])
    if sig is signal.SIGKILL:
        # once it listens: a child killed while still starting dies on its own of the broken pipe
        wait_for("the exchange listening", lambda: "url" in _read_json(exchange / "session.json"))
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode != 0
    if sig is not signal.SIGKILL:
        assert f"stopped by {sig.name}" in stderr
    try:
        wait_for("no process left on the exchange's data directory", lambda: not _pids_using(exchange), 10)
    finally:
        for pid in _pids_using(exchange):
            os.kill(pid, signal.SIGKILL)
    assert child


def test_a_second_terminal_on_the_same_profile_is_refused(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    data = tmp_path / "heron"
    first = _start(data, "--quit-after", "60")
    procs.append(first)
    wait_for("the first terminal's start-up", lambda: _logged(data, "start-up reconciliation"), 60)
    exchanges = _pids_using(_exchange_dir(data))
    second = _start(data, "--quit-after", "8")
    procs.append(second)
    _, stderr = second.communicate(timeout=30)
    assert second.returncode != 0
    line = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(line) == 1 and "'default'" in line[0] and f"pid {first.pid}" in line[0], stderr
    assert _pids_using(_exchange_dir(data)) == exchanges  # no second exchange was started
    assert _log(data).read_text().count("Heron starting") == 1  # it stopped before its log and database
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert first.returncode == 0  # the first one's work went on undisturbed and ended cleanly
    wait_for("the exchange stopped", lambda: not _pids_using(_exchange_dir(data)), 10)


SQUATTER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
log = sys.argv[1]
class H(BaseHTTPRequestHandler):
    def _record(self):
        with open(log, "a") as fh:
            fh.write(json.dumps({"path": self.path, "headers": dict(self.headers)}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"service": "heron-exchange", "proof": "00", "is_open": true}')
    do_GET = do_POST = _record
    def log_message(self, *a):
        pass
server = HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.mark.parametrize("disguised", [False, True], ids=["any-process", "named-like-the-exchange"])
def test_a_stranger_on_the_recorded_port_gets_no_keys(
    tmp_path: Path, procs: list[subprocess.Popen[str]], disguised: bool
) -> None:
    data = tmp_path / "heron"
    exchange = _exchange_dir(data)
    exchange.mkdir(parents=True)
    seen = tmp_path / "requests.jsonl"
    # "disguised": its command line reads like the exchange's for this data directory
    tail = ["-m", "services.exchange", "--data-dir", str(exchange)] if disguised else []
    squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, str(seen), *tail], stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
    procs.append(squatter)
    assert squatter.stdout is not None
    port = int(squatter.stdout.readline())
    secret = "recorded-session-secret-0123456789"
    (exchange / "session.json").write_text(json.dumps(
        {"url": f"http://127.0.0.1:{port}", "pid": squatter.pid, "key_id": "HRNRECORDED", "secret": secret}
    ))  # fmt: skip
    report = tmp_path / "report.json"
    terminal = _start(data, "--quit-after", "4", "--state-report", str(report))
    procs.append(terminal)
    _, stderr = terminal.communicate(timeout=90)
    assert terminal.returncode == 0, stderr[-2000:]
    requests = [json.loads(line) for line in seen.read_text().splitlines()] if seen.exists() else []
    for request in requests:
        text = json.dumps(request).lower()
        assert secret.lower() not in text and "hrnrecorded" not in text and "apca-api" not in text, request
        assert "authorization" not in {k.lower() for k in request["headers"]}, request
    # the terminal started its own exchange and traded against it
    assert json.loads(report.read_text())["trading_state"] == "ACTIVE"
    if disguised:
        # an exchange for our data directory that cannot prove it is ours is stopped, not trusted
        wait_for("the unproven process stopped", lambda: squatter.poll() is not None, 10)


@pytest.mark.parametrize("window", [False, True], ids=["headless", "window"])
def test_a_killed_exchange_child_is_said_restarted_and_trading_resumes_after_reconciliation(
    tmp_path: Path, procs: list[subprocess.Popen[str]], window: bool
) -> None:
    data = tmp_path / "heron"
    report = tmp_path / "report.json"
    terminal = _start(data, "--quit-after", "90", "--state-report", str(report), window=window)
    procs.append(terminal)
    wait_for("start-up reconciliation", lambda: _logged(data, "start-up reconciliation: clean"), 60)
    session = _exchange_dir(data) / "session.json"
    old = json.loads(session.read_text())
    os.kill(old["pid"], signal.SIGKILL)
    said = f"the local exchange (pid {old['pid']}) was killed by SIGKILL"
    wait_for("the death said in the log", lambda: _logged(data, said), 10)
    wait_for("trading resumed after reconciliation", lambda: _logged(data, "trading resumed (ACTIVE)"), 60)
    new = json.loads(session.read_text())
    assert new["pid"] != old["pid"] and new["url"] == old["url"]
    log_text = _log(data).read_text()
    death = log_text.index(f"(pid {old['pid']}) was killed by SIGKILL")
    assert "ERROR" in log_text[log_text.rfind("\n", 0, death) : death]
    assert death < log_text.index("local exchange restarted") < log_text.index("trading resumed (ACTIVE)")
    terminal.send_signal(signal.SIGTERM)
    _, stderr = terminal.communicate(timeout=60)
    assert terminal.returncode == 0, stderr[-2000:]
    final = json.loads(report.read_text())
    assert final["trading_state"] == "ACTIVE"
    wait_for("no exchange left", lambda: not _pids_using(_exchange_dir(data)), 10)


def test_a_sigkill_of_the_uv_launcher_ends_heron_and_its_exchange(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """README: ``uv run main.py``. uv runs Heron as its child; a SIGKILL of uv left Heron and its
    exchange running unseen, holding the profile. A stand-in launcher named ``uv`` (the kernel's
    ``comm``) starts main.py the way uv does, and is killed."""
    data = tmp_path / "heron"
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.symlink_to(sys.executable)
    code = ("import subprocess, time; "  # Heron under this venv's python; the launcher is only named uv
            f"subprocess.Popen([{sys.executable!r}, {str(REPO / 'main.py')!r}, '--headless', '--data-dir', "
            f"{str(data)!r}, '--quit-after', '60']); time.sleep(120)")  # fmt: skip
    launcher = subprocess.Popen([str(uv), "-c", code], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    procs.append(launcher)
    comm = Path(f"/proc/{launcher.pid}/comm")
    wait_for("the launcher named uv", lambda: comm.read_text().strip() == "uv", 10)
    wait_for("start-up reconciliation", lambda: _logged(data, "start-up reconciliation: clean"), 60)
    assert _pids_using(_exchange_dir(data))
    launcher.kill()
    launcher.wait()
    wait_for("Heron and its exchange gone", lambda: not _pids_using(data), 30)
    assert _logged(data, "shutdown finished")


#: Kills the exchange child, binds its port the moment it is free and records every byte any client
#: sends there. It answers a websocket upgrade (and greets like Alpaca's data stream) so a stream
#: would go on to send its auth message, and records each frame unmasked.
PORT_SQUATTER = r"""
import base64, hashlib, json, os, signal, socket, sys, threading, time
import msgpack
port, victim, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
def record(kind, data):
    with lock, open(log, "a") as fh:
        fh.write(json.dumps({"kind": kind, "data": data.decode("latin-1")}) + "\n")
def frames(conn):
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 2:
            n, at = buf[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + 4 + n:
                break
            mask, payload = buf[at:at + 4], buf[at + 4:at + 4 + n]
            record("frame", bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            buf = buf[at + 4 + n:]
def serve(conn):
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                record("bytes", head)
                return
            head += chunk
        record("bytes", head)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if headers.get("upgrade", "").lower() != "websocket":
            conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode()
                                               + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        if "/stream" not in lines[0]:
            greeting = msgpack.packb([{"T": "success", "msg": "connected"}])
            conn.sendall(bytes([0x82, len(greeting)]) + greeting)
        frames(conn)
os.kill(victim, signal.SIGKILL)
deadline = time.monotonic() + 10
while True:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("127.0.0.1", port))
        break
    except OSError:
        server.close()
        if time.monotonic() > deadline:
            sys.exit("the port never came free")
        time.sleep(0.001)
server.listen(64)
print("bound", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def test_a_stranger_on_the_port_of_a_dead_exchange_child_gets_no_keys(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """The child is killed and its port bound by another process at once: every client of that address
    (REST, history, the three streams) is suspended from the moment the death is noticed, the port's
    holder is named, and trading comes back only with the terminal's own restarted exchange. Before,
    the stranger received the keys in dozens of REST headers and the streams' auth messages, and the
    restart failed for the whole session."""
    data = tmp_path / "heron"
    terminal = _start(data, "--quit-after", "120")
    procs.append(terminal)
    wait_for("start-up reconciliation", lambda: _logged(data, "start-up reconciliation: clean"), 60)
    session = _read_json(_exchange_dir(data) / "session.json")
    key_id, secret, url = str(session["key_id"]), str(session["secret"]), str(session["url"])
    port = int(url.rsplit(":", 1)[1])
    seen = tmp_path / "squatter.jsonl"
    squatter = subprocess.Popen(
        [sys.executable, "-c", PORT_SQUATTER, str(port), str(session["pid"]), str(seen)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    procs.append(squatter)
    assert squatter.stdout is not None and squatter.stdout.readline().strip() == "bound"

    def leaked() -> list[str]:
        lines = seen.read_text(encoding="utf-8").splitlines() if seen.exists() else []
        return [ln for ln in lines if key_id in ln or secret in ln or "apca-api" in ln.lower()]

    # nothing reaches the stranger while it holds the port: REST calls, health probes and the streams'
    # reconnects go on on their own schedules throughout; the holder is named meanwhile
    named = f"its port {port} is taken by pid {squatter.pid}"
    watch_until = time.monotonic() + 6
    while time.monotonic() < watch_until or not _logged(data, named):
        assert not leaked(), leaked()[:3]
        assert time.monotonic() < watch_until + 30, "the holder of the port was not named"
        time.sleep(0.05)
    assert not seen.exists(), seen.read_text()[:2000]  # not even a connection without the keys
    assert _log(data).read_text().count(f"its port {port} is taken by") == 1  # said once, not every second
    squatter.kill()
    squatter.wait(10)
    wait_for("trading resumed after reconciliation", lambda: _logged(data, "trading resumed (ACTIVE)"), 60)
    assert _read_json(_exchange_dir(data) / "session.json")["url"] == url
    terminal.send_signal(signal.SIGTERM)
    _, stderr = terminal.communicate(timeout=60)
    assert terminal.returncode == 0, stderr[-2000:]
    assert not leaked()


def test_an_exchange_child_killed_during_start_up_is_started_again(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """The child is killed the moment it exists (before it reports its address): start-up says so,
    starts another and trades against it. Before, trading stayed DISABLED for the whole session."""
    data = tmp_path / "heron"
    terminal = _start(data, "--quit-after", "90")
    procs.append(terminal)
    exchange = _exchange_dir(data)
    child = wait_for("an exchange child", lambda: [p for p in _pids_using(exchange) if p != terminal.pid])
    assert isinstance(child, list)
    os.kill(child[0], signal.SIGKILL)
    wait_for("the end of start-up", lambda: _logged(data, "start-up reconciliation: clean")
          or _logged(data, "no exchange: trading stays DISABLED"), 60)  # fmt: skip
    log_text = _log(data).read_text()
    assert "no exchange" not in log_text and "start-up reconciliation: clean" in log_text
    # killed within milliseconds of appearing: long before its imports are done and it listens
    assert "was killed by SIGKILL before it reported its address" in log_text
    assert "starting it again" in log_text
    assert _read_json(exchange / "session.json")["pid"] != child[0]
    terminal.send_signal(signal.SIGTERM)
    _, stderr = terminal.communicate(timeout=60)
    assert terminal.returncode == 0, stderr[-2000:]
