"""Idle cost of the window: ``idle_cpu_pct``, ``idle_rss_mb`` and ``idle_exchange_cpu_pct``.

``main.py`` runs as a child process exactly as a user starts it (local mode, the default local
exchange with its default symbols and message rate, a fresh data directory), showing a real window
on an X server: a private ``Xvfb`` with ``openbox`` as window manager when both are installed, so Qt
draws through xcb into a mapped, managed, exposed window as on a desktop (``offscreen`` skips the X
round trips, the window manager's configure events and exposure handling a user's window gets). Without
Xvfb it falls back to ``QT_QPA_PLATFORM=offscreen`` and says so in ``platform``.

Measured window: the terminal is *live* when its log says the window is usable and the start-up
reconciliation has run (services up, streams connected, trading state decided); the one-off start-up
work that follows is then let finish — the shadow models are loaded, or trained on this fresh data
directory's first launch (``shadow model ... added`` / ``not trained``), or left for when their
panel is first opened (its tab is behind the Log's, and nobody opens it), and ``SETTLE_S`` more
seconds pass — before ``WINDOW_S`` seconds of CPU time are counted. Nobody touches the window meanwhile.

- ``idle_cpu_pct``: user + system CPU time of the terminal process (every thread, the exchange
  child not included) over the window, in % of one core (``/proc/<pid>/stat``, utime + stime).
  ``gui_thread_pct`` is the GUI thread's share (``/proc/<pid>/task/<pid>``); the rest is the
  market-data thread and the worker threads.
- ``idle_rss_mb``: the terminal process's resident set (``VmRSS``) at the end of the window.
- ``idle_exchange_cpu_pct`` / ``exchange_rss_mb``: the same for the exchange child (the simulator's
  tick rate and market-data fan-out are its cost, not the window's).

The 1-minute load average before and after is reported with the figures: on a shared 2-core box
another process's load slows this one's work but does not add to its CPU time, so figures taken at
different loads still compare, though less well. ``calibration_ms`` (before and after the window)
is the CPU time this benchmark takes for a fixed pure-Python loop: on a virtual machine the same
work costs more CPU time at some moments than at others (caches and memory shared with other
guests), and the terminal's and the exchange's figures rise and fall together with it. Compare
figures taken at similar calibrations, or interleave the runs being compared.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WINDOW_S = float(os.environ.get("HERON_BENCH_IDLE_S", "60"))
SETTLE_S = 5.0
LIVE_TIMEOUT_S = 90.0
#: the shadow models are loaded (or trained on a first launch) some 20 s after start-up
MODELS_TIMEOUT_S = 90.0
LIVE_LINES = ("window usable: panels installed", "start-up reconciliation:")
MODELS_LINE = re.compile(
    r"shadow model \S+ \S+ added|shadow models not trained|shadow model \S+ not loaded"
    r"|trained shadow models load when the Shadow models panel is first opened"
)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """utime + stime of a process (or one of its threads) in seconds."""
    path = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    with open(path, encoding="ascii", errors="replace") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id (the GUI thread's id is the process id)."""
    out: dict[int, float] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            out[int(task)] = cpu_seconds(pid, int(task))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def calibrate(rounds: int = 5, n: int = 1_000_000) -> float:
    """CPU milliseconds of a fixed pure-Python loop on this thread (the median of ``rounds``)."""
    times = []
    for _ in range(rounds):
        start, x = time.thread_time(), 0
        for i in range(n):
            x += i & 7
        times.append(time.thread_time() - start)
    return 1000 * sorted(times)[rounds // 2]


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
                if int(stat[1]) == pid:
                    found.append(int(entry))
    return found


@contextlib.contextmanager
def display() -> Iterator[tuple[dict[str, str], str]]:
    """An environment for the terminal: a private Xvfb (+ openbox) when installed, else offscreen."""
    xvfb, wm = shutil.which("Xvfb"), shutil.which("openbox")
    if xvfb is None:
        yield {"QT_QPA_PLATFORM": "offscreen"}, "offscreen (no Xvfb installed)"
        return
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    procs = [server]
    try:
        with os.fdopen(read) as fh:
            number = fh.readline().strip()
        env = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": f":{number}"}
        what = f"xcb on Xvfb :{number} 1920x1080"
        if wm is not None:
            procs.append(subprocess.Popen([wm], env=dict(os.environ, **env),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
            what += " with openbox"
            time.sleep(0.5)
        yield env, what
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for(log_dir: Path, proc: subprocess.Popen[bytes], found: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(log_dir.rglob("heron.log"))
        if logs and found(logs[0].read_text(errors="replace")):
            return True
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def measure(window_s: float = WINDOW_S) -> dict[str, Any]:
    """Start the terminal, wait until it is live and settled, measure ``window_s`` seconds."""
    with tempfile.TemporaryDirectory(prefix="heron-bench-idle-") as tmp, display() as (env, platform):
        proc = subprocess.Popen(
            [sys.executable, "main.py", "--mode", "local", "--data-dir", tmp],
            cwd=REPO, env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out: dict[str, Any] = {"platform": platform}
        try:
            live = _wait_for(Path(tmp), proc, lambda text: all(line in text for line in LIVE_LINES),
                             LIVE_TIMEOUT_S)  # fmt: skip
            if not live:
                out["error"] = f"not live within {LIVE_TIMEOUT_S:.0f} s (exit status {proc.poll()})"
                return out
            out["models_settled"] = _wait_for(Path(tmp), proc, MODELS_LINE.search, MODELS_TIMEOUT_S)
            time.sleep(SETTLE_S)
            exchange = children(proc.pid)
            out["calibration_ms_before"] = calibrate()
            out["load_avg_1m_before"] = os.getloadavg()[0]
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            threads0 = thread_cpu(proc.pid)
            ex0 = sum(cpu_seconds(pid) for pid in exchange)
            time.sleep(window_s)
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            threads1 = thread_cpu(proc.pid)
            ex1 = sum(cpu_seconds(pid) for pid in exchange)
            wall = wall1 - wall0
            out.update(
                window_s=wall,
                cpu_pct=100 * (cpu1 - cpu0) / wall,
                rss_mb=rss_mb(proc.pid),
                exchange_cpu_pct=100 * (ex1 - ex0) / wall if exchange else None,
                exchange_rss_mb=sum(rss_mb(pid) for pid in exchange) if exchange else None,
                gui_thread_pct=100 * (threads1.get(proc.pid, 0.0) - threads0.get(proc.pid, 0.0)) / wall,
                load_avg_1m_after=os.getloadavg()[0],
                alive=proc.poll() is None,
                calibration_ms_after=calibrate(),
            )  # fmt: skip
            return out
        finally:
            _stop(proc)


def figures(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The benchmark's figures from :func:`measure`'s result (``value`` None when not measured)."""
    r = round
    common = {"platform": res.get("platform"), "window_s": r(res.get("window_s", 0.0), 1),
              "load_avg_1m_before": r(res.get("load_avg_1m_before", 0.0), 2),
              "load_avg_1m_after": r(res.get("load_avg_1m_after", 0.0), 2),
              "calibration_ms": [r(res[k], 1) for k in ("calibration_ms_before", "calibration_ms_after")
                                 if k in res]}  # fmt: skip
    if "error" in res:
        common["note"] = res["error"]
    cpu, rss, ex = res.get("cpu_pct"), res.get("rss_mb"), res.get("exchange_cpu_pct")
    gui = res.get("gui_thread_pct")
    return {
        "idle_cpu_pct": {"value": None if cpu is None else r(cpu, 1), "unit": "% of one core", "goal": "<= 5",
                         **common, "gui_thread_pct": None if gui is None else r(gui, 1),
                         "models_settled": res.get("models_settled"), "alive_at_end": res.get("alive")},
        "idle_rss_mb": {"value": None if rss is None else r(rss), "unit": "MB", "goal": "<= 300", **common},
        "idle_exchange_cpu_pct": {"value": None if ex is None else r(ex, 1), "unit": "% of one core",
                                  "exchange_rss_mb": None if res.get("exchange_rss_mb") is None
                                  else r(res["exchange_rss_mb"]), **common},
    }  # fmt: skip


def run() -> dict[str, dict[str, Any]]:
    return figures(measure())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
