"""Chaos harness: one randomized fault run of the terminal against the local exchange, with figures.

A run (:func:`run_chaos`) is:

1. a fresh exchange (own data dir, random seed) and a fresh terminal data dir;
2. the terminal headless with a fast ``sma_crossover`` strategy AND a script of manual orders
   (market and resting limit orders) trading for ``trade_seconds``;
3. meanwhile a random plan of faults (:data:`FAULT_KINDS`) at random times: SIGKILL of the terminal
   (restarted with the strategy for the rest of the window), SIGKILL of the exchange and restart
   on the same port and data, websocket kills, dropped / duplicated / reordered trade updates,
   429 and 5xx storms, REST latency spikes, paused matching, an exclusive lock on the terminal's
   SQLite file (``BEGIN EXCLUSIVE`` from another connection), a cancel sent to the exchange
   behind the terminal's back (an operator cancelling on the broker's site), a full disk under the
   terminal's data dir for 5-15 s (a small tmpfs mounted there), a second terminal started on the
   same profile (it must refuse and exit non-zero at once, disturbing nothing), and a SIGTERM in the
   first 0-1.5 s of a terminal start (then started again);
   a run whose plan holds ``child_kill`` is a *local-mode* run: the terminal starts its own child
   exchange (no ``--exchange-url``), the harness finds it through ``session.json`` and SIGKILLs it;
   such a run draws only the faults that need no admin routes (:data:`LOCAL_KINDS`);
4. faults stop (``/reset``), the exchange's matching is paused so the broker's state is frozen,
   the terminal quits (or was left dead by a kill); in a local-mode run the terminal's quit stops
   its child, any process still naming the data dir is an orphan (counted, then killed), and the
   harness opens the child's venue with an admin exchange of its own, matching paused. The terminal
   is started again with nothing to do:
   it must reconcile clean. Recovery time is measured from that restart to trading ACTIVE
   (``heron_trading_state`` on ``--metrics-port``), so it includes interpreter start-up;
5. figures computed from the exchange's REST (orders by client_order_id, FILL activities,
   positions) against the terminal's database and state report (:func:`measure`).

Figures per run (JSON): faults injected by kind, orders sent (orders at the exchange), intents
journaled, duplicates at the exchange (an intent with more than one broker order, a client id twice,
or more script orders than the script had), lost fills (orders whose exchange FILL quantity exceeds
the terminal's booked quantity), phantom fills (the reverse), unreconciled divergences (positions
that differ, open orders that differ, exchange orders the terminal has no intent for, open
incidents or a reconciliation that is not clean after recovery), recovery time, exit codes;
orphans (any process whose command line names the run's directories once its terminals are gone:
after the SIGTERMed start, after the trading terminals quit, and at the very end), the state report's
account against ``/v2/account`` (cash exactly; equity within the price drift of the positions) and the
exchange's own cash and positions against its FILL activities (money or shares from nothing), and per
new fault what it showed (:func:`verdict` lists every failure criterion).

The helpers that read the exchange and the database come from tests/crash/harness.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.crash.harness import (
    _norm,
    exchange_fill_qty,
    exchange_fills,
    exchange_orders,
    exchange_positions,
    local_fill_qty,
    random_script,
)
from tests.support.exchange import ExchangeProcess

REPO = Path(__file__).resolve().parents[2]

FAULT_KINDS: tuple[str, ...] = (
    "terminal_kill",
    "exchange_kill",
    "ws_kill",
    "tu_drop",
    "tu_duplicate",
    "tu_reorder",
    "rest_429",
    "rest_5xx",
    "latency_spike",
    "matching_pause",
    "db_lock",
    "external_cancel",
    "flatten_pending_cancel",
    "replace_race",
    "garbled_answer",
    "disk_full",
    "child_kill",
    "second_terminal",
    "sigterm_startup",
)
#: faults a local-mode run (the terminal's own child exchange, no admin routes) can inject
LOCAL_KINDS: frozenset[str] = frozenset(
    {
        "terminal_kill",
        "child_kill",
        "db_lock",
        "external_cancel",
        "disk_full",
        "second_terminal",
        "sigterm_startup",
    }
)
STARTING_CASH = Decimal(100000)  # the exchange's --cash default, for the harness's and the child's
ORPHAN_GRACE = 3.0  # seconds a child exchange gets to follow its terminal out
SECOND_EXIT_WITHIN = 20.0  # a second terminal on the profile must have exited by then (2 busy cores)
CHILD_WAIT = 15.0  # child_kill waits this long for a terminal's child exchange to kill
CHILD_RESTART_WITHIN = 10.0  # the window stays open this long after a child_kill to see it restarted
OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "partially_filled",
        "pending_new",
        "pending_cancel",
        "pending_replace",
        "accepted_for_bidding",
        "held",
        "calculated",
    }
)
STRATEGY = "sma_crossover:fast=2,slow=4"
LOST_SPACING_S = 10.0  # ExecutionEngine's default lost_spacing_s


@dataclass
class Fault:
    at: float  # seconds after the first terminal start
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChaosConfig:
    trade_seconds: float = 8.0  # the faulted trading window
    faults_min: int = 2
    faults_max: int = 6
    kinds: tuple[str, ...] = FAULT_KINDS
    recovery_quit_after: float = 6.0
    flatten_seconds: float = 35.0  # the closer's 30 s deadline, and some: added to the window of a drill
    keep_dirs: bool = False
    local_share: float = 0.25  # share of random runs in local mode (a child_kill among their faults)
    tmpfs_mb: int = 96  # the terminal's data dir when disk_full is planned (DB, logs, a local venue)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Terminal:
    """``main.py --headless`` as a Popen (so the harness can SIGKILL it at any moment); ``ex`` None:
    local mode, the terminal starts (or reuses) its own child exchange."""

    def __init__(
        self,
        ex: ExchangeProcess | None,
        data_dir: Path,
        *,
        quit_after: float,
        tag: str,
        script: list[dict[str, Any]] | None = None,
        strategy: str | None = None,
        metrics_port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        side = data_dir.parent / "terminal-files"  # beside the data dir: a full disk there loses none
        side.mkdir(parents=True, exist_ok=True)
        self.report_path = side / f"report-{tag}.json"
        self.report_path.unlink(missing_ok=True)
        self.stderr_path = side / f"terminal-{tag}.stderr.log"
        self.tag = tag
        self.metrics_port = metrics_port
        exchange = (
            ("--mode", "local")
            if ex is None
            else ("--exchange-url", ex.url, "--exchange-keys", str(ex.keys_file))
        )
        args = [
            sys.executable,
            str(REPO / "main.py"),
            "--headless",
            "--data-dir",
            str(data_dir),
            *exchange,
            "--quit-after",
            f"{quit_after:.1f}",
            "--state-report",
            str(self.report_path),
            *extra,
        ]
        if script is not None:
            path = side / f"script-{tag}.json"
            path.write_text(json.dumps(script))
            args += ["--script", str(path)]
        if strategy is not None:
            args += ["--start-strategy", strategy, "--bar-seconds", "0.5"]
        if metrics_port is not None:
            args += ["--metrics-port", str(metrics_port)]
        env = dict(os.environ)
        env.pop("HERON_CRASH_AT", None)
        self.started = time.monotonic()
        self.stopped_by_harness = False
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.stopped_by_harness = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM (a clean, staged shutdown that writes the state report) and wait."""
        self.stopped_by_harness = True
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if it did not exit in time (it is SIGKILLed then: a hang)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def report(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.report_path.read_text())
            return data
        except (OSError, ValueError):
            return None

    def stderr_tail(self, n: int = 3000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def plan_faults(rng: random.Random, cfg: ChaosConfig) -> list[Fault]:
    """A random fault plan over the trading window (sorted by time). A share of the plans
    (``local_share``) are local-mode plans: one ``child_kill`` and faults from :data:`LOCAL_KINDS`."""
    n = rng.randint(cfg.faults_min, cfg.faults_max)
    local = rng.random() < cfg.local_share or set(cfg.kinds) == {"child_kill"}
    local = local and "child_kill" in cfg.kinds
    kinds = [k for k in cfg.kinds if (k in LOCAL_KINDS if local else k != "child_kill")]
    plan = []
    for i in range(n):
        kind = "child_kill" if local and i == 0 else rng.choice(kinds)
        at = round(rng.uniform(0.2, cfg.trade_seconds), 2)
        params: dict[str, Any]
        if kind == "ws_kill":
            params = {"which": rng.choice(["data", "trading", "all"])}
        elif kind in ("tu_drop", "tu_duplicate"):
            params = {"n": rng.randint(1, 3)}
        elif kind == "tu_reorder":
            params = {"n": rng.randint(2, 4)}
        elif kind == "rest_429" or kind == "rest_5xx":
            params = {"count": rng.randint(3, 20)}
        elif kind == "latency_spike":
            params = {
                "ms": rng.randint(300, 2500),
                "jitter_ms": rng.randint(0, 300),
                "seconds": round(rng.uniform(0.5, 3), 2),
            }
        elif kind == "matching_pause":
            params = {"seconds": round(rng.uniform(0.5, 3), 2)}
        elif kind == "db_lock":
            params = {"seconds": round(rng.uniform(1, 12), 2)}  # past the 10 s busy timeout too
        elif kind == "exchange_kill":
            params = {"down_seconds": round(rng.uniform(0.2, 3), 2)}
        elif kind == "terminal_kill":
            params = {"down_seconds": round(rng.uniform(0.1, 1.5), 2)}
        elif kind == "flatten_pending_cancel":
            # cancels are held in pending_cancel for 1-5 s from the start of the window, and the
            # script ends by pulling the kill switch with a flatten (see run_chaos)
            params = {"seconds": round(rng.uniform(1, 5), 2)}
            at = 0.2
        elif kind == "replace_race":
            params = {"count": rng.randint(1, 2)}
        elif kind == "garbled_answer":
            params = {"count": rng.randint(1, 3)}
        elif kind == "disk_full":
            params = {"seconds": round(rng.uniform(5, 15), 2)}
        elif kind == "sigterm_startup":
            params = {"after": round(rng.uniform(0, 1.5), 2)}
        else:
            params = {}
        plan.append(Fault(at, kind, params))
    return sorted(plan, key=lambda f: f.at)


def db_path(data_dir: Path) -> Path:
    return data_dir / "profiles" / "default" / "heron.db"


def exchange_dir(data_dir: Path) -> Path:
    """Where a local-mode terminal keeps its child exchange's venue and ``session.json``."""
    return data_dir / "profiles" / "default" / "exchange"


def is_local_plan(plan: list[Fault]) -> bool:
    return any(f.kind == "child_kill" for f in plan)


class SessionClient:
    """REST to a local-mode terminal's child exchange, with the url, keys and pid its
    ``session.json`` names at the time of the call (a restarted child has new ones)."""

    def __init__(self, data_dir: Path) -> None:
        self.session_file = exchange_dir(data_dir) / "session.json"

    def session(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.session_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None

    def pid(self) -> int | None:
        data = self.session()
        pid = None if data is None else data.get("pid")
        return pid if isinstance(pid, int) else None

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0) -> tuple[int, Any]:
        data = self.session()
        if data is None:
            raise OSError("no session.json with a url")
        raw = None if body is None else json.dumps(body).encode()
        headers = {"APCA-API-KEY-ID": str(data["key_id"]), "APCA-API-SECRET-KEY": str(data["secret"])}
        req = urllib.request.Request(str(data["url"]) + path, data=raw, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            text, status = exc.read(), exc.code
        return status, (json.loads(text) if text else None)


def processes_naming(paths: list[Path], exclude: set[int] | None = None) -> dict[int, str]:
    """pid -> command line of every process (but ``exclude`` and this one) with an argument that is
    one of ``paths`` or lies under one: whatever a run started and still runs."""
    roots = [str(p) for p in paths]
    exclude = exclude or set()
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if any(a == r or a.startswith(r + "/") for a in args for r in roots):
            out[int(entry.name)] = " ".join(args)[:300]
    return out


def kill_processes(pids: list[int], timeout: float = 10.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in pids):
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def mount_tmpfs(path: Path, size_mb: int) -> str | None:
    """Mount a ``size_mb`` tmpfs on ``path`` (created); None when done, else why it could not be."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount: {exc}"
    if proc.returncode != 0:
        return f"mount exit {proc.returncode}: {proc.stderr.strip()[:200]}"
    return None


def unmount(path: Path) -> str | None:
    """Unmount (lazily when busy); None when done, else why not."""
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"umount: {exc}"
        if proc.returncode == 0:
            return None
    return f"umount exit {proc.returncode}: {proc.stderr.strip()[:200]}"


def fill_disk(path: Path) -> int:
    """Write ``path`` until the file system is full; the bytes written."""
    chunk = b"\0" * (1 << 20)
    written = 0
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk)
            except OSError:  # ENOSPC: now the small tail
                break
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    written += fh.write(chunk[:size])
                except OSError:
                    break
    return written


def hold_db_lock(path: Path, seconds: float) -> bool:
    """Hold an exclusive SQLite lock on ``path`` for ``seconds``; False if it could not be taken."""
    try:
        conn = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


class _Run:
    """State of one chaos run while faults are injected (used from the harness thread and helpers)."""

    def __init__(
        self,
        ex: ExchangeProcess | None,
        data_dir: Path,
        cfg: ChaosConfig,
        rng: random.Random,
        *,
        disk_ok: str | None = "not mounted",
    ) -> None:
        self.ex = ex  # None: local mode (the terminal's own child exchange, reached via session.json)
        self.session = SessionClient(data_dir)
        self.disk_problem = disk_ok  # None: the data dir is a tmpfs the disk_full fault can fill
        self.data_dir = data_dir
        self.cfg = cfg
        self.rng = rng
        self.t0 = time.monotonic()
        self.terminals: list[Terminal] = []
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.helpers: list[threading.Thread] = []
        self.exchange_busy = threading.Event()  # set while the exchange is down on purpose
        self.disk_busy = threading.Event()  # set while the data dir's disk is full on purpose
        self.no_second = threading.Event()  # clear while a second terminal runs on the profile
        self.no_second.set()
        self.notes: list[str] = []
        self.first_active: float | None = None
        self.extra_window = 0.0  # a kill-switch flatten gets time to finish inside the window
        self.not_injectable: dict[str, str] = {}  # kind -> why (a fault that cannot be made here)
        self.orphans: dict[int, dict[str, str]] = {}  # pid -> command line, where first seen
        self.seconds: list[Terminal] = []  # second terminals started on the same profile
        self.second_figures: list[dict[str, Any]] = []
        self.child_kills: list[dict[str, Any]] = []
        self.sigterm_starts: list[dict[str, Any]] = []
        self.disk_fulls: list[dict[str, Any]] = []

    def rest(self) -> ExchangeProcess | SessionClient:
        return self.session if self.ex is None else self.ex

    def note_orphans(self, where: str, grace: float = ORPHAN_GRACE) -> dict[int, str]:
        """Processes naming the data dir that no terminal of this run owns and that are still there
        ``grace`` seconds on (none may be: every terminal started so far has exited, or is
        excluded as still running; a child gets a moment to follow its parent)."""
        deadline = time.monotonic() + grace
        while True:
            live = {t.proc.pid for t in [*self.terminals, *self.seconds] if t.alive()}
            found = processes_naming([self.data_dir], exclude=live)
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        with self.lock:
            for pid, cmd in found.items():
                self.orphans.setdefault(pid, {"cmd": cmd, "seen": where})
        return found

    def stretch_window(self, until: float) -> None:
        """Keep the trading window open until monotonic time ``until`` (and a little after)."""
        with self.lock:
            self.extra_window = max(self.extra_window, until + 2.0 - (self.t0 + self.cfg.trade_seconds + 1.0))

    @property
    def terminal(self) -> Terminal:
        return self.terminals[-1]

    def window_end(self) -> float:
        return self.t0 + self.cfg.trade_seconds + 1.0 + self.extra_window

    def start_terminal(self, script: list[dict[str, Any]] | None, *, first: bool = False) -> None:
        """The first terminal starts the clock once its trading is ACTIVE; later ones (after a kill)
        run the strategy until the end of the window."""
        if first:
            port = free_port()
            term = Terminal(
                self.ex,
                self.data_dir,
                quit_after=self.cfg.trade_seconds + 60,
                tag="t0",
                script=script,
                strategy=STRATEGY,
                metrics_port=port,
            )
            self.terminals.append(term)
            self.first_active = wait_active(port, term, timeout=40)
            self.t0 = time.monotonic()
            return
        self.no_second.wait(SECOND_EXIT_WITHIN + 90)  # one terminal start at a time on the profile
        self.terminals.append(
            Terminal(
                self.ex,
                self.data_dir,
                quit_after=self.cfg.trade_seconds + 60 + self.extra_window,
                tag=f"t{len(self.terminals)}",
                script=None,
                strategy=STRATEGY,
                metrics_port=free_port(),
            )
        )

    def background(self, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.helpers.append(t)

    def admin(self, path: str, body: Any) -> bool:
        if self.ex is None:
            self.not_injectable.setdefault(path, "no admin routes on a terminal's own child exchange")
            return False
        if self.exchange_busy.is_set() or not self.ex.running:
            return False
        try:
            self.ex.admin(path, body)
            return True
        except (OSError, RuntimeError, ValueError):
            return False

    def inject(self, f: Fault) -> None:
        ok = True
        p = f.params
        if f.kind == "terminal_kill":
            if not self.terminal.alive():
                ok = False
            else:
                self.terminal.kill()
                time.sleep(p["down_seconds"])
                if self.window_end() - time.monotonic() > 2.5:
                    self.start_terminal(None)
        elif f.kind == "exchange_kill":
            ex = self.ex
            if ex is None:
                ok = False
                self.not_injectable["exchange_kill"] = "local mode: child_kill is this fault there"
            elif self.exchange_busy.is_set():
                ok = False
            else:
                self.exchange_busy.set()

                def bounce() -> None:
                    assert ex is not None
                    try:
                        ex.kill()
                        time.sleep(p["down_seconds"])
                        ex.restart()
                    finally:
                        self.exchange_busy.clear()

                self.background(bounce)
        elif f.kind == "ws_kill":
            ok = self.admin("/streams/kill", {"which": p["which"]})
        elif f.kind == "tu_drop":
            ok = self.admin("/trade-updates", {"drop_next": p["n"]})
        elif f.kind == "tu_duplicate":
            ok = self.admin("/trade-updates", {"duplicate_next": p["n"]})
        elif f.kind == "tu_reorder":
            ok = self.admin("/trade-updates", {"reorder_next": p["n"]})
        elif f.kind == "rest_429":
            ok = self.admin("/rest/429", {"count": p["count"]})
        elif f.kind == "rest_5xx":
            ok = self.admin("/rest/5xx", {"count": p["count"], "statuses": [500, 502, 503, 504]})
        elif f.kind == "latency_spike":
            ok = self.admin("/rest/latency", {"ms": p["ms"], "jitter_ms": p["jitter_ms"]})
            if ok:

                def calm() -> None:
                    time.sleep(p["seconds"])
                    self.admin("/rest/latency", {"ms": 0, "jitter_ms": 0})

                self.background(calm)
        elif f.kind == "matching_pause":
            ok = self.admin("/matching", {"paused": True})
            if ok:

                def resume() -> None:
                    time.sleep(p["seconds"])
                    self.admin("/matching", {"paused": False})

                self.background(resume)
        elif f.kind == "db_lock":
            path = db_path(self.data_dir)
            ok = path.exists()
            if ok:

                def locker() -> None:
                    if not hold_db_lock(path, p["seconds"]):
                        with self.lock:
                            self.notes.append("db_lock: could not take the lock")

                self.background(locker)
        elif f.kind == "external_cancel":
            ok = self.cancel_one_open_order()
        elif f.kind == "flatten_pending_cancel":
            ok = self.admin("/cancel-delay", {"seconds": p["seconds"]})
        elif f.kind == "replace_race":
            ok = self.admin("/replace-race", {"count": p["count"]})
        elif f.kind == "garbled_answer":
            ok = self.admin("/rest/garble", {"count": p["count"]})
        elif f.kind == "disk_full":
            ok = self.disk_problem is None and not self.disk_busy.is_set()  # one full disk at a time
            if ok:
                self.disk_busy.set()
                self.stretch_window(time.monotonic() + p["seconds"] + 3.0)
                self.background(lambda: self.fill_disk_for(p["seconds"]))
            elif self.disk_problem is not None:
                self.not_injectable["disk_full"] = str(self.disk_problem)
        elif f.kind == "child_kill":
            if self.ex is not None:
                ok = False
                self.not_injectable["child_kill"] = "the run is not in local mode"
            else:
                self.background(self.kill_child)
                return  # counted by kill_child once it has found the child
        elif f.kind == "second_terminal":
            self.no_second.clear()
            self.background(self.second_terminal)
            return  # counted by second_terminal once the first terminal trades
        elif f.kind == "sigterm_startup":
            ok = True
            self.sigterm_startup(p["after"])
        with self.lock:
            (self.injected if ok else self.skipped)[f.kind] += 1

    def fill_disk_for(self, seconds: float) -> None:
        """disk_full: fill the data dir's tmpfs, hold it full for ``seconds``, free it."""
        filler = self.data_dir / "chaos-filler.bin"
        started = full_at = time.monotonic()
        written = 0
        try:
            written = fill_disk(filler)
            full_at = time.monotonic()
            time.sleep(max(0.0, seconds - (full_at - started)))
        finally:
            filler.unlink(missing_ok=True)
            self.disk_busy.clear()
            if any(k["restarted_after"] is None for k in self.child_kills):
                # a child killed before or while the disk was full gets its time once there is space
                self.stretch_window(time.monotonic() + CHILD_RESTART_WITHIN)
        with self.lock:
            self.disk_fulls.append(
                {
                    "at": round(started - self.t0, 2),
                    "filled_bytes": written,
                    "full_seconds": round(time.monotonic() - full_at, 2),
                }
            )

    def kill_child(self) -> None:
        """child_kill (on a helper thread): wait for the exchange a trading terminal started (local
        mode; up to CHILD_WAIT s, e.g. while a restarted terminal starts), SIGKILL it, and watch for
        CHILD_RESTART_WITHIN s (the window is held open that long) whether that terminal starts a
        new one (a new live exchange for the venue whose parent is that terminal)."""
        venue = exchange_dir(self.data_dir)
        pid = owner = None
        deadline = time.monotonic() + CHILD_WAIT
        while time.monotonic() < deadline:
            terminals = {t.proc.pid: t for t in self.terminals if t.alive()}
            pid = self.session.pid()
            parent = None if pid is None else _ppid(pid)
            if pid is not None and parent in terminals and _is_exchange(pid, venue):
                owner = terminals[parent]
                break
            time.sleep(0.1)
        if pid is None or owner is None:
            with self.lock:
                self.skipped["child_kill"] += 1
            return
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        self.stretch_window(killed_at + CHILD_RESTART_WITHIN)
        record: dict[str, Any] = {
            "at": round(killed_at - self.t0, 2),
            "pid": pid,
            "restarted_after": None,
            "owner_stopped_after": None,
        }
        with self.lock:
            self.injected["child_kill"] += 1
            self.child_kills.append(record)
        while time.monotonic() < self.window_end():
            # the terminal's children, not session.json: on a full disk the restarted exchange runs
            # but its session file cannot be rewritten
            new = next((c for c in _children(owner.proc.pid) if c != pid and _is_exchange(c, venue)), None)
            if new is not None:
                record["restarted_after"] = round(time.monotonic() - killed_at, 2)
                record["new_pid"] = new
                return
            if not owner.alive():
                record["owner_stopped_after"] = round(time.monotonic() - killed_at, 2)
                return
            time.sleep(0.1)

    def second_terminal(self) -> None:
        """second_terminal: start another terminal on the same profile while the first trades; it
        must exit non-zero within SECOND_EXIT_WITHIN s, never reach trading ACTIVE, and leave the
        first terminal and (local mode) its exchange running."""
        try:
            self._second_terminal()
        finally:
            self.no_second.set()

    def _second_terminal(self) -> None:
        first = self.terminal if self.terminals and self.terminal.alive() else None
        if first is None or first.metrics_port is None or wait_active(first.metrics_port, first, 30) is None:
            with self.lock:  # the second must meet a first that trades, not one starting up
                self.skipped["second_terminal"] += 1
            return
        child = self.session.pid() if self.ex is None else None
        port = free_port()
        second = Terminal(
            self.ex,
            self.data_dir,
            quit_after=self.cfg.trade_seconds + 60,
            tag=f"second{len(self.seconds)}",
            metrics_port=port,
        )
        with self.lock:
            self.seconds.append(second)
            self.injected["second_terminal"] += 1
        active = wait_active(port, second, timeout=SECOND_EXIT_WITHIN)
        code = second.proc.poll()
        if code is None:
            try:
                code = second.proc.wait(max(0.0, second.started + SECOND_EXIT_WITHIN - time.monotonic()))
            except subprocess.TimeoutExpired:
                code = None
        exited_after = round(time.monotonic() - second.started, 2) if code is not None else None
        stayed_up = code is None
        if stayed_up:
            second.terminate(60)
        disturbed = []
        if first is not None and not first.alive() and not first.stopped_by_harness:
            disturbed.append(f"the first terminal exited ({first.proc.returncode})")
        if first is not None and first.alive() and "connection limit exceeded" in first.stderr_tail(20_000):
            disturbed.append("the first terminal's stream was displaced by the second's (406)")
        if child is not None and not _is_exchange(child, exchange_dir(self.data_dir)):
            killed = any(k["pid"] == child for k in self.child_kills)
            if not killed and not (first is not None and first.stopped_by_harness):
                disturbed.append(f"the first terminal's exchange (pid {child}) is gone")
        with self.lock:
            self.second_figures.append(
                {
                    "tag": second.tag,
                    "exit_code": code,
                    "exited_after": exited_after,
                    "stayed_up": stayed_up,
                    "reached_active": active is not None,
                    "disturbed": disturbed,
                    "first_running": first is not None,
                    "said": _last_line(second.stderr_tail(600)),
                }
            )

    def sigterm_startup(self, after: float) -> None:
        """sigterm_startup: the terminal quits (SIGTERM), starts again and is SIGTERMed ``after``
        seconds into that start; once it is gone nothing naming the data dir may run (no orphan
        child); then it is started again for the rest of the window (held open 5 s at least)."""
        if self.terminals and self.terminal.alive():
            self.terminal.terminate(60)
        self.no_second.wait(SECOND_EXIT_WITHIN + 90)
        term = Terminal(
            self.ex,
            self.data_dir,
            quit_after=self.cfg.trade_seconds + 60,
            tag=f"t{len(self.terminals)}-sigterm",
            strategy=STRATEGY,
        )
        self.terminals.append(term)
        time.sleep(max(0.0, term.started + after - time.monotonic()))
        code = term.terminate(30)
        orphans = self.note_orphans("after a SIGTERM in start-up")
        with self.lock:
            self.sigterm_starts.append(
                {"after": after, "exit_code": code, "hung": code is None, "orphans": sorted(orphans)}
            )
        self.stretch_window(time.monotonic() + 5.0)  # started again, and given time to trade
        self.start_terminal(None)
        again = self.terminal
        assert again.metrics_port is not None
        active = wait_active(again.metrics_port, again, timeout=40)  # the next fault meets it trading
        self.sigterm_starts[-1]["started_again_active_after"] = None if active is None else round(active, 2)

    def cancel_one_open_order(self) -> bool:
        if self.ex is not None and (self.exchange_busy.is_set() or not self.ex.running):
            return False
        try:
            status, body = self.rest().request("GET", "/v2/orders?status=open&limit=50")
            if status != 200 or not body:
                return False
            order = self.rng.choice(list(body))
            status, _ = self.rest().request("DELETE", f"/v2/orders/{order['id']}")
            return status in (200, 204)
        except (OSError, ValueError):
            return False


def _is_exchange(pid: int, venue: Path) -> bool:
    """Whether ``pid`` is a live exchange process serving ``venue``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return not _zombie(pid) and b"services.exchange" in args and str(venue).encode() in args


def _children(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ppid(int(entry.name)) == parent:
            found.append(int(entry.name))
    return found


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def wait_active(port: int, proc: Terminal, timeout: float) -> float | None:
    """Seconds from the terminal's start until its metrics say trading is ACTIVE (None: never)."""
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                text = resp.read().decode()
            if 'heron_trading_state{state="ACTIVE"} 1.0' in text:
                return time.monotonic() - proc.started
        except OSError:
            pass
        time.sleep(0.05)
    return None


def local_intents(data_dir: Path) -> dict[str, str]:
    """client_order_id -> logical_id of every journaled intent."""
    with sqlite3.connect(f"file:{db_path(data_dir)}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT client_order_id, logical_id FROM order_intents").fetchall()
    return {str(c): str(lg) for c, lg in rows}


def flatten_figures(
    run: _Run, ex: ExchangeProcess, script: list[dict[str, Any]], plan: list[Fault], pulled: int
) -> dict[str, Any]:
    """After the window (matching paused, every trading terminal quit): did a kill-switch flatten
    end flat, or say loudly which symbol it left open? "Loudly" is the state report's ``closing``
    section naming the symbol as not complete (the same outcome is logged at ERROR, notified and
    journaled). A flatten cut short by a SIGKILL of the terminal cannot report: counted apart.
    ``pulled``: kill-switch records journaled; a drill whose script was ended before it (a quit
    for a SIGTERM in start-up) flattened nothing, and its open positions are no flatten's."""
    if not any(e.get("action") == "kill_switch" for e in script) or not pulled:
        return {"flatten_open_at_exchange": {}, "flatten_unreported": [], "flatten_interrupted": []}
    if not ex.running:
        ex.restart()
    open_now = exchange_positions(ex)
    reported: set[str] = set()
    for term in run.terminals:
        section = (term.report() or {}).get("closing") or {}
        reported |= {sym for sym, r in section.items() if not r.get("complete", True)}
    unreported = sorted(set(open_now) - reported)
    killed = any(f.kind == "terminal_kill" for f in plan)
    return {
        "flatten_open_at_exchange": open_now,
        "flatten_reported_open": sorted(reported),
        "flatten_unreported": [] if killed else unreported,
        "flatten_interrupted": unreported if killed else [],
    }


def last_not_found(data_dir: Path) -> float | None:
    """Epoch seconds of the latest not-found lookup of an in-flight intent (None: none yet)."""
    with sqlite3.connect(f"file:{db_path(data_dir)}?mode=ro", uri=True) as conn:
        (value,) = conn.execute(
            "SELECT max(last_not_found_at) FROM order_intents WHERE status = 'in_flight'"
        ).fetchone()
    return None if value is None else int(value) / 1_000_000


def journal_kinds(data_dir: Path) -> Counter[str]:
    """How many journal rows of each kind the terminal wrote (kill_switch, halt releases, ...)."""
    with sqlite3.connect(f"file:{db_path(data_dir)}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT kind, count(*) FROM order_journal GROUP BY kind").fetchall()
    return Counter({str(k): int(n) for k, n in rows})


def local_intent_status(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{db_path(data_dir)}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT client_order_id, status FROM order_intents").fetchall()
    return {str(c): str(st) for c, st in rows}


def measure(
    ex: ExchangeProcess, data_dir: Path, report: dict[str, Any] | None, script_len: int
) -> dict[str, Any]:
    """Figures comparing the exchange (truth) with the recovered terminal. See the module docstring."""
    orders = [o for o in exchange_orders(ex) if str(o["client_order_id"]).startswith("hr-")]
    coids = Counter(str(o["client_order_id"]) for o in orders)
    intents = local_intents(data_dir)
    per_logical: Counter[str] = Counter()  # originals only: a replacement shares its logical id
    unknown = []
    for coid in coids:
        if coid not in intents:
            unknown.append(coid)
        elif intents[coid] == coid:
            per_logical[coid] += 1
    script_at_exchange = sum(1 for c in coids if c.startswith("hr-x-script-") and intents.get(c, c) == c)
    duplicates = (
        sum(n - 1 for n in coids.values() if n > 1)
        + sum(n - 1 for n in per_logical.values() if n > 1)
        + max(0, script_at_exchange - script_len)
    )
    broker_fills = exchange_fill_qty(ex)
    local_fills = local_fill_qty(data_dir)
    lost = {
        oid: str(q - local_fills.get(oid, Decimal(0)))
        for oid, q in broker_fills.items()
        if local_fills.get(oid, Decimal(0)) < q
    }
    phantom = {
        oid: str(q - broker_fills.get(oid, Decimal(0)))
        for oid, q in local_fills.items()
        if broker_fills.get(oid, Decimal(0)) < q
    }
    divergences: list[str] = []
    in_flight: list[str] = []
    intent_status = local_intent_status(data_dir)
    broker_pos = exchange_positions(ex)
    if report is None:
        divergences.append("no state report after recovery")
    else:
        local_pos = {
            s: _norm(q)
            for s, q in report.get("positions", {}).get("local", {}).items()
            if Decimal(str(q)) != 0
        }
        for sym in sorted(set(local_pos) | set(broker_pos)):
            if local_pos.get(sym) != broker_pos.get(sym):
                divergences.append(f"position {sym}: local {local_pos.get(sym)} broker {broker_pos.get(sym)}")
        recon = report.get("reconciliation", {})
        if recon.get("clean") is not True:
            divergences.append(f"reconciliation not clean: {recon}")
        for inc in recon.get("open_incidents", []):
            divergences.append(f"open incident: {inc}")
        local_open = {o["client_order_id"]: o["status"] for o in report.get("orders", {}).get("open", [])}
        broker_open = {
            str(o["client_order_id"]): str(o["status"]) for o in orders if o["status"] in OPEN_STATUSES
        }
        for coid in sorted(set(local_open) | set(broker_open)):
            if (coid in local_open) != (coid in broker_open):
                if coid not in coids and intent_status.get(coid) == "in_flight":
                    # journaled, never reached the broker: in flight until two spaced lookups say LOST
                    in_flight.append(coid)
                    continue
                divergences.append(
                    f"open order {coid}: local {local_open.get(coid)} broker {broker_open.get(coid)}"
                )
        if report.get("trading_state") != "ACTIVE":
            divergences.append(f"trading state after recovery: {report.get('trading_state')}")
    for coid in unknown:
        divergences.append(f"order {coid} at the exchange has no journaled intent")
    return {
        "orders_sent": len(orders),
        "intents": len(intents),
        "script_orders_at_exchange": script_at_exchange,
        "duplicates_at_exchange": duplicates,
        "fills_at_exchange": len(broker_fills),
        "lost_fills": len(lost),
        "lost_fill_detail": lost,
        "phantom_fills": len(phantom),
        "phantom_fill_detail": phantom,
        "in_flight_unresolved": in_flight,
        "unreconciled_divergences": len(divergences),
        "divergence_detail": divergences,
        "positions_at_exchange": broker_pos,
    }


def measure_account(ex: ExchangeProcess, report: dict[str, Any] | None) -> dict[str, Any]:
    """The state report's account against ``/v2/account`` (cash exactly; equity within 2 % of the
    positions' value, which moves with prices), and the exchange's own cash and positions against
    its FILL activities: ``cash + sum(signed qty * price) == starting cash`` and per symbol the
    signed fill quantity is the position (an exchange that wrote back stale state breaks these)."""
    untrue: list[str] = []
    status, acct = ex.request("GET", "/v2/account")
    if status != 200:
        return {"account_divergences": 1, "account_detail": [f"GET /v2/account answered {status}"]}
    cash, equity = Decimal(str(acct["cash"])), Decimal(str(acct["equity"]))
    flow, shares = Decimal(0), dict[str, Decimal]()
    for r in exchange_fills(ex):
        signed = Decimal(str(r["qty"])) * (1 if r["side"] == "buy" else -1)
        flow += signed * Decimal(str(r["price"]))
        sym = str(r["symbol"]).replace("/", "")
        shares[sym] = shares.get(sym, Decimal(0)) + signed
    if cash + flow != STARTING_CASH:
        untrue.append(f"exchange cash {cash} is not explained by its fills: {STARTING_CASH - flow}")
    status, positions = ex.request("GET", "/v2/positions")
    held = {str(p["symbol"]).replace("/", ""): Decimal(str(p["qty"])) for p in positions or []}
    market_value = sum((abs(Decimal(str(p["market_value"]))) for p in positions or []), Decimal(0))
    for sym in sorted(set(held) | {k for k, v in shares.items() if v != 0}):
        if held.get(sym, Decimal(0)) != shares.get(sym, Decimal(0)):
            untrue.append(f"exchange position {sym} {held.get(sym)} is not its fills' {shares.get(sym)}")
    section = (report or {}).get("account")
    if report is None:
        pass  # counted as a divergence by measure()
    elif not isinstance(section, dict):
        untrue.append("the state report has no account section (cash, equity)")
    else:
        if Decimal(str(section.get("cash"))) != cash:
            untrue.append(f"state report cash {section.get('cash')} but the exchange says {cash}")
        drift = Decimal("0.02") * market_value + Decimal("0.01")
        if abs(Decimal(str(section.get("equity"))) - equity) > drift:
            untrue.append(f"state report equity {section.get('equity')} but the exchange says {equity}")
    return {
        "account_cash": str(cash),
        "account_equity": str(equity),
        "report_account": section if isinstance(section, dict) else None,
        "account_divergences": len(untrue),
        "account_detail": untrue,
    }


def _space_back(figures: dict[str, Any], at: float) -> float:
    """Run time at which the disk has space again after ``at`` (``at`` itself when it was not full)."""
    back = at
    for d in sorted(figures.get("disk_fulls") or [], key=lambda d: d["at"]):
        start, end = d["at"], d["at"] + (d.get("full_seconds") or 0)
        if start <= back < end:
            back = end
    return back


def verdict(figures: dict[str, Any]) -> list[str]:
    """Every reason the run failed (empty: the run is ok)."""
    why = []
    for key in (
        "duplicates_at_exchange",
        "lost_fills",
        "phantom_fills",
        "unreconciled_divergences",
        "account_divergences",
    ):
        if figures.get(key):
            why.append(f"{key}: {figures[key]}")
    if "recovery_exit_code" in figures and figures["recovery_exit_code"] != 0:
        why.append(f"recovery exit code {figures['recovery_exit_code']}")
    for key in ("harness_error", "task_failures", "kill_switch_not_pulled", "flatten_unreported"):
        if figures.get(key):
            why.append(f"{key}: {figures[key]}")
    if figures.get("orphans"):
        why.append(f"orphaned processes: {len(figures['orphans'])}")
    for kind, reason in (figures.get("faults_not_injectable") or {}).items():
        why.append(f"{kind} could not be injected: {reason}")
    for s in figures.get("second_terminals") or []:
        if s["stayed_up"] or s["exit_code"] in (0, None) or s["reached_active"] or s["disturbed"]:
            why.append(
                f"second terminal {s['tag']}: exit {s['exit_code']}, stayed up {s['stayed_up']}, "
                f"trading ACTIVE {s['reached_active']}, disturbed {s['disturbed']}"
            )
    for k in figures.get("child_kills") or []:
        stopped = k.get("owner_stopped_after")
        # a full disk keeps any exchange from opening its venue: its terminal gets its time to
        # restart the child from when space is back
        allowed = _space_back(figures, k["at"]) - k["at"] + CHILD_RESTART_WITHIN
        if k["restarted_after"] is None and (stopped is None or stopped >= allowed):
            why.append(f"the exchange child killed at {k['at']} s was not restarted by its terminal")
    for st in figures.get("sigterm_starts") or []:
        if st["hung"]:
            why.append(f"a SIGTERM {st['after']} s into start-up did not end the terminal")
    return why


def run_chaos(
    seed: int,
    work_dir: Path,
    cfg: ChaosConfig | None = None,
    plan: list[Fault] | None = None,
    after: Callable[[ExchangeProcess, Path, dict[str, Any] | None], None] | None = None,
) -> dict[str, Any]:
    """One randomized fault run (or the given ``plan``); returns its figures (never raises for a
    product failure: ``ok`` is False and the terminal's logs stay in ``work_dir/run-<seed>``).
    ``after(exchange, data_dir, report)`` runs once the figures are measured, before the exchange
    stops (tests use it to check that the figures can detect a planted fault)."""
    cfg = cfg or ChaosConfig()
    rng = random.Random(seed)
    started = time.monotonic()
    run_dir = work_dir / f"run-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    data_dir = run_dir / "heron"
    script = random_script(rng, rng.randint(3, 8))
    for entry in script:  # spread the manual orders over the faulted window
        entry["delay"] = round(rng.uniform(0, cfg.trade_seconds / len(script)), 2)
    orders_in_script = len(script)
    # an operator moving resting limits: a replace after some of them (raced by replace_race)
    for i in reversed(range(len(script))):
        if script[i].get("type") == "limit" and rng.random() < 0.6:
            script.insert(
                i + 1,
                {
                    "action": "replace",
                    "delay": round(rng.uniform(0.1, 0.5), 2),
                    "limit_price": {"offset_pct": rng.choice([-7, -4, -3])},
                },
            )
    planned = plan_faults(rng, cfg)
    plan = planned if plan is None else plan
    if any(f.kind == "flatten_pending_cancel" for f in plan):
        # The kill switch with a flatten while cancels are held in pending_cancel, over a long
        # position with a working exit order that holds its shares (a resting take-profit sell):
        # the closing sell is refused until that exit order is really canceled.
        symbol = rng.choice(["AAPL", "MSFT", "SPY"])
        script += [
            {"symbol": symbol, "side": "buy", "qty": "5", "type": "market", "delay": 0.1},
            {
                "symbol": symbol,
                "side": "sell",
                "qty": "5",
                "type": "limit",
                "time_in_force": "gtc",
                "limit_price": {"offset_pct": 6},
                "delay": 0.3,
            },
            {
                "action": "kill_switch",
                "flatten": True,
                "reason": "chaos drill",
                "delay": round(rng.uniform(0.2, 1.0), 2),
            },
        ]
        orders_in_script += 2
    local = is_local_plan(plan)
    figures: dict[str, Any] = {
        "seed": seed,
        "plan": [f.__dict__ for f in plan],
        "mode": "local" if local else "external",
        "script_orders": orders_in_script,
        "script_entries": len(script),
    }
    ex: ExchangeProcess | None = None
    run: _Run | None = None
    rec: Terminal | None = None
    mounted = False
    try:
        disk_problem: str | None = "not planned"
        if any(f.kind == "disk_full" for f in plan):
            disk_problem = mount_tmpfs(data_dir, cfg.tmpfs_mb)
            mounted = disk_problem is None
        if not local:
            (run_dir / "exchange").mkdir(parents=True)
            ex = ExchangeProcess.start(seed=rng.randint(1, 1_000_000), root=run_dir / "exchange")
        run = _Run(ex, data_dir, cfg, rng, disk_ok=disk_problem)
        if any(entry.get("action") == "kill_switch" for entry in script):
            run.extra_window = cfg.flatten_seconds
        run.start_terminal(script, first=True)
        figures["first_start_to_active_seconds"] = run.first_active
        for f in plan:
            delay = run.t0 + f.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            run.inject(f)
        for t in run.helpers:
            t.join(60)
        time.sleep(max(0.0, run.window_end() - time.monotonic()))
        if ex is not None:
            if not ex.running:
                ex.restart()
            # Faults end with the window, not with the last injection: settings that last (a cancel
            # delay held through a kill-switch flatten) must cover what the window does after it.
            ex.admin("/reset", {})
            time.sleep(1.0)  # quiet second: the terminal catches up without faults
            ex.admin("/matching", {"paused": True})  # freeze the broker's state for the comparison
        codes = []
        for term in run.terminals:
            codes.append(term.terminate(60))
        for term in run.seconds:
            term.terminate(60)
        figures["trading_exit_codes"] = codes
        figures["hangs_at_quit"] = sum(1 for c in codes if c is None)
        # Every terminal is gone, so its child must be too: whatever still names the data dir is an
        # orphan (counted, then killed: one writer for the venue the harness opens in local mode).
        run.note_orphans("after the trading terminals quit")
        kill_processes(list(processes_naming([data_dir])))
        if local:
            (run_dir / "exchange").mkdir(parents=True)
            # the seed the terminal's own child used (settings' local_exchange.seed, 0 by default):
            # another seed is another simulated market, whose prices would show as a day's loss
            ex = ExchangeProcess.start(seed=0, root=run_dir / "exchange", data_dir=exchange_dir(data_dir))
            ex.admin("/matching", {"paused": True})
        assert ex is not None
        figures.update(flatten_figures(run, ex, script, plan, journal_kinds(data_dir).get("kill_switch", 0)))
        # recovery: a clean restart that has nothing to do but reconcile. A kill-switch HALT is kept
        # across restarts until an operator releases it: the recovery releases it (journaled), as
        # the README tells an operator to, so that reaching ACTIVE still measures recovery.
        release: tuple[str, ...] = ()
        if journal_kinds(data_dir).get("kill_switch", 0):
            release = ("--release-halt", "chaos run: recovery after the kill-switch drill")
        port = free_port()
        rec = Terminal(
            ex, data_dir, quit_after=cfg.recovery_quit_after, tag="recovery", metrics_port=port, extra=release
        )
        recovery = wait_active(port, rec, timeout=cfg.recovery_quit_after + 20)
        figures["recovery_exit_code"] = rec.wait(60)
        figures["recovery_seconds"] = None if recovery is None else round(recovery, 3)
        report = rec.report()
        figures.update(measure(ex, data_dir, report, orders_in_script))
        if figures["in_flight_unresolved"] and recovery is not None:
            # The engine settles an intent the broker never saw as LOST after two not-found lookups
            # at least 10 s apart after its POST deadline (services/orders/engine.py): restart after
            # that spacing and measure again; what is still unresolved then counts as a divergence.
            figures["in_flight_after_first_recovery"] = figures["in_flight_unresolved"]
            time.sleep(max(0.0, rec.started + LOST_SPACING_S + 1.0 - time.monotonic()))
            # A recovery made before the intent's POST deadline does not count a not-found lookup,
            # so two spaced lookups may need up to three restarts; each waits from the journal's
            # record of the last lookup (a loaded machine makes it seconds after the process start).
            for n in range(2, 5):
                last = last_not_found(data_dir)
                if last is not None:
                    time.sleep(max(0.0, last + LOST_SPACING_S + 1.0 - time.time()))
                again = Terminal(
                    ex,
                    data_dir,
                    quit_after=cfg.recovery_quit_after,
                    tag=f"recovery{n}",
                    metrics_port=free_port(),
                )
                figures[f"recovery{n}_exit_code"] = again.wait(60)
                rec = again
                report = again.report()
                figures.update(measure(ex, data_dir, report, orders_in_script))
                if not figures["in_flight_unresolved"]:
                    break
            for coid in figures["in_flight_unresolved"]:
                figures["unreconciled_divergences"] += 1
                figures["divergence_detail"].append(f"in-flight intent {coid} still unresolved")
        if recovery is None:
            figures["unreconciled_divergences"] += 1
            figures["divergence_detail"].append("trading never became ACTIVE after the restart")
        figures.update(measure_account(ex, report))
        # A task that dies is a failure even when it said so (the script or a strategy stops
        # trading for the rest of the session): count the terminals' "background task ... failed".
        figures["task_failures"] = [
            line.strip()[:200]
            for t in [*run.terminals, rec]
            for line in t.stderr_tail(1_000_000).splitlines()
            if "background task" in line and "failed" in line
        ]
        figures["kill_switch_pulls"] = journal_kinds(data_dir).get("kill_switch", 0)
        if after is not None:
            after(ex, data_dir, rec.report())
        drill = any(e.get("action") == "kill_switch" for e in script)
        interrupted = any(f.kind in ("terminal_kill", "sigterm_startup") for f in plan)
        figures["kill_switch_not_pulled"] = drill and not interrupted and figures["kill_switch_pulls"] == 0
    except Exception as exc:  # a harness failure is a figure too, never a silent pass
        figures["harness_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        terminals = [*(run.terminals if run else []), *(run.seconds if run else []), *([rec] if rec else [])]
        for term in terminals:
            if term.alive():
                term.kill()
        if ex is not None:
            ex.stop()
        if run is not None:
            figures["faults_injected"] = dict(run.injected)
            figures["faults_skipped"] = dict(run.skipped)
            figures["faults_not_injectable"] = dict(run.not_injectable)
            figures["faults_total"] = sum(run.injected.values())
            figures["notes"] = run.notes
            figures["second_terminals"] = run.second_figures
            figures["child_kills"] = run.child_kills
            figures["sigterm_starts"] = run.sigterm_starts
            figures["disk_fulls"] = run.disk_fulls
        # nothing the run started may outlive it: its terminals are gone and its exchange stopped
        orphans = dict(run.orphans) if run is not None else {}
        deadline = time.monotonic() + ORPHAN_GRACE
        while True:
            left = processes_naming([run_dir])
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for pid, cmd in left.items():
            orphans.setdefault(pid, {"cmd": cmd, "seen": "at the end of the run"})
        kill_processes(list(left))
        figures["orphans"] = {str(pid): o for pid, o in orphans.items()}
        figures["failures"] = verdict(figures)
        figures["ok"] = not figures["failures"]
        if not figures["ok"]:
            figures["stderr_tail"] = {term.tag: term.stderr_tail(1500) for term in terminals}
        if mounted:
            if not figures["ok"] or cfg.keep_dirs:  # the tmpfs goes: keep its logs and databases
                shutil.copytree(
                    data_dir,
                    run_dir / "heron-kept",
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("chaos-filler*"),
                )
            problem = unmount(data_dir)
            if problem is not None:
                figures.setdefault("notes", []).append(f"tmpfs: {problem}")
        figures["wall_seconds"] = round(time.monotonic() - started, 2)
        if figures["ok"] and not cfg.keep_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)  # logs and databases are kept for failures only
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / f"run-{seed}.json").write_text(json.dumps(figures, indent=2, default=str))
    return figures
