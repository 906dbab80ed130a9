"""Start, find or connect to the local Alpaca-compatible exchange (``python -m services.exchange``).

- :class:`LocalExchangeLauncher` starts the exchange as a child process on 127.0.0.1 with a random
  port and random per-session keys. The keys go to ``<exchange dir>/session.json`` (mode 0600,
  with url and pid once it listens) and reach the child through ``--keys-file``: never argv.
- The child dies with the terminal: ``PR_SET_PDEATHSIG`` (set between fork and exec) sends it
  SIGTERM when the terminal ends, however it ends (SIGKILL included), and ``--exit-with-parent PID``
  has the exchange watch for it too.
- If ``session.json`` names a process that is alive, is ``services.exchange`` for this data
  directory (``/proc/<pid>/cmdline``) and proves it holds the session secret without it being
  sent (``services/exchange/identity.py``), the running exchange is reused and left running on
  exit. Only then are the keys sent (``GET /v2/clock``). An exchange for this data directory that
  cannot prove it is stopped; anything else on the recorded port gets nothing.
- :meth:`LocalExchangeLauncher.watch` reports the death of the exchange the moment it happens
  (a thread waiting on its pidfd), and :meth:`LocalExchangeLauncher.restart` starts it again on the
  same port with the same keys, so the broker and the streams reconnect to the same address.
- :func:`app.exchange_process.connect_external` is ``--exchange-url URL --exchange-keys FILE``;
  the session, the errors and the identity and port checks live there too.

Blocking work (spawn, HTTP probe, reading the child's output) runs on worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hmac
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path

from app.exchange_process import (
    ExchangeDiedAtStart,
    ExchangeError,
    ExchangeSession,
    describe_exit,
    exchange_program_available,
    is_exchange_process,
    pid_alive,
    probe_exchange,
    prove_identity,
    read_keys_file,
)
from app.secrets import ApiKeys
from app.settings import LocalExchangeSettings, atomic_write_text
from services.storage.errors import describe_os_error

log = logging.getLogger("heron.exchange")
child_log = logging.getLogger("heron.exchange.child")

REPO_ROOT = Path(__file__).resolve().parents[1]
LISTENING_PREFIX = "listening on "
SESSION_FILE = "session.json"
EXIT_WITH_PARENT_FLAG = "--exit-with-parent"
_PR_SET_PDEATHSIG = 1

#: Every exchange child started by this process and not yet stopped: main.py's early signal
#: handler stops them when the terminal is told to end before its lifecycle exists.
_children: dict[int, subprocess.Popen[str]] = {}
_children_lock = threading.Lock()


def _load_prctl() -> Callable[[], None] | None:
    """A function for ``preexec_fn`` that asks the kernel for SIGTERM when the parent dies.

    Resolved here, in the parent, so that the forked child only makes the one libc call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: no signal will come
            os._exit(1)

    return set_parent_death_signal


_PDEATHSIG = _load_prctl()


def _register_child(proc: subprocess.Popen[str]) -> None:
    with _children_lock:
        _children[proc.pid] = proc


def _unregister_child(proc: subprocess.Popen[str]) -> None:
    with _children_lock:
        _children.pop(proc.pid, None)


def stop_children_now(grace: float = 3.0) -> list[int]:
    """Any thread or a signal handler: SIGTERM every exchange child still running, wait up to
    ``grace`` seconds, then SIGKILL. Returns their pids. For an exit that cannot run the
    shutdown sequence (a signal before the event loop exists)."""
    with _children_lock:
        procs = list(_children.values())
    for proc in procs:
        with contextlib.suppress(OSError):
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
                os.waitpid(proc.pid, 0)
    return [p.pid for p in procs]


class LocalExchangeLauncher:
    """Owns the local exchange child process for one data directory. Loop thread only."""

    def __init__(
        self,
        exchange_dir: Path,
        settings: LocalExchangeSettings,
        *,
        python: str = sys.executable,
        startup_timeout: float = 20.0,
        on_secret: Callable[[str], None] | None = None,
        module: str = "services.exchange",
    ) -> None:
        self.exchange_dir = exchange_dir
        self.settings = settings
        self.python = python
        self.startup_timeout = startup_timeout
        self.on_secret = on_secret
        self.module = module
        self.process: subprocess.Popen[str] | None = None
        self.session: ExchangeSession | None = None
        self._output_tail: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None
        self._keys: ApiKeys | None = None
        self._found: list[str] = []
        self._ready = threading.Event()
        self._spawned_at = 0.0
        self._ready_at: float | None = None
        self._expect_exit = False
        self._watched_pid: int | None = None
        self._last_session: ExchangeSession | None = None  # what restart() brings back

    @property
    def session_file(self) -> Path:
        return self.exchange_dir / SESSION_FILE

    # -- reuse ------------------------------------------------------------------------------------
    def _read_session(self) -> ExchangeSession | None:
        try:
            data = json.loads(self.session_file.read_text(encoding="utf-8"))
            keys = ApiKeys(key_id=data["key_id"], secret=data["secret"])
            url, pid = data.get("url"), data.get("pid")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(url, str) or not isinstance(pid, int):
            return None
        return ExchangeSession(url=url, keys=keys, pid=pid, owned=False)

    async def find_running(self) -> ExchangeSession | None:
        """The exchange recorded in ``session.json`` if it is still running and proves it is ours
        for this data directory (before any key is sent); None otherwise."""
        previous = self._read_session()
        if previous is None or previous.pid is None or not pid_alive(previous.pid):
            return None
        if not is_exchange_process(previous.pid, self.exchange_dir, self.module):
            log.info("session.json names pid %d, which is not the local exchange for %s; starting a "
                     "new one", previous.pid, self.exchange_dir)  # fmt: skip
            return None
        problem = await asyncio.to_thread(
            prove_identity, previous.url, previous.keys, self.exchange_dir, previous.pid, 1.5
        )
        if problem is not None:
            log.warning("the local exchange recorded for %s (pid %d) is not reusable: %s; stopping it "
                        "and starting a new one", self.exchange_dir, previous.pid, problem)  # fmt: skip
            await asyncio.to_thread(_stop_foreign_exchange, previous.pid, self.exchange_dir)
            return None
        self._notify_secret(previous.keys)
        if not await asyncio.to_thread(probe_exchange, previous.url, previous.keys, 1.5):
            return None
        return previous

    # -- start ------------------------------------------------------------------------------------
    def has_live_session(self) -> bool:
        """Cheap and blocking-free: ``session.json`` names a process that is still alive.

        Such an exchange may be reusable (:meth:`start` probes it); :meth:`spawn` is not used then.
        """
        previous = self._read_session()
        return (
            previous is not None
            and previous.pid is not None
            and pid_alive(previous.pid)
            and is_exchange_process(previous.pid, self.exchange_dir, self.module)
        )

    def spawn(self, *, port: int = 0, keys: ApiKeys | None = None) -> None:
        """Start the child without waiting for it (no event loop needed).

        Call it on a thread that lives as long as the child should (the main thread, the event
        loop's): the parent-death signal fires when the thread that started the child ends.

        Writes fresh per-session keys to ``session.json`` (0600) for ``--keys-file`` and starts
        the child and the thread relaying its output. :meth:`start` then waits for its address.
        main.py calls this right after parsing the arguments, so the exchange starts while the
        terminal imports its modules. Raises :class:`ExchangeError`.
        """
        if self.process is not None:
            raise ExchangeError("the local exchange was already started")
        if not exchange_program_available(self.module):
            program = self.module.replace(".", "/") + "/__main__.py"
            raise ExchangeError(f"its program ({program}) is not in this build yet")
        if keys is None:
            keys = ApiKeys(key_id="HRN" + secrets.token_hex(8).upper(), secret=secrets.token_urlsafe(30))
        self._keys = keys
        self.exchange_dir.mkdir(parents=True, exist_ok=True)
        if not self._session_holds(keys):  # a restart keeps its keys: no write needed (a full disk)
            self._write_session({"key_id": keys.key_id, "secret": keys.secret})
        cmd = [
            self.python, "-m", self.module,
            "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(self.exchange_dir),
            "--keys-file", str(self.session_file),
            "--seed", str(self.settings.seed),
        ]  # fmt: skip
        if self.settings.always_open:
            cmd.append("--always-open")
        cmd += [EXIT_WITH_PARENT_FLAG, str(os.getpid())]
        self._spawned_at = time.monotonic()
        self._found, self._ready = [], threading.Event()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # Ctrl-C in the terminal reaches Heron, which stops it in order
                preexec_fn=_PDEATHSIG,  # SIGTERM to the child when this thread / process dies
            )
        except OSError as exc:
            self.session_file.unlink(missing_ok=True)
            raise ExchangeError(f"cannot start the local exchange: {exc}") from None
        _register_child(self.process)
        self._expect_exit = False
        self._reader = threading.Thread(
            target=self._pump_output, args=(self.process, self._found, self._ready), name="exchange-output",
            daemon=True,
        )  # fmt: skip
        self._reader.start()

    async def start(self) -> ExchangeSession:
        """Reuse a running exchange for this data directory, or start one (or finish the start
        :meth:`spawn` began); raises ExchangeError."""
        if self.session is not None:
            return self.session
        if self.process is None:
            running = await self.find_running()
            if running is not None:
                log.info("reusing the local exchange at %s (pid %s)", running.url, running.pid)
                self.session = running
                return running
            self.spawn()
        keys = self._keys
        assert keys is not None and self.process is not None
        self._notify_secret(keys)
        asked = time.monotonic()
        try:
            url = await asyncio.to_thread(self._wait_for_address)
        except ExchangeError:
            self.process = None  # killed and reaped: the next start() starts a new child
            raise
        self.session = ExchangeSession(url=url, keys=keys, pid=self.process.pid, owned=True)
        try:
            self._write_session(
                {"url": url, "pid": self.process.pid, "key_id": keys.key_id, "secret": keys.secret}
            )
        except ExchangeError as exc:
            # the exchange runs and the keys are in memory: only a later reuse of it needs the file
            log.warning("local exchange at %s: %s; it is not recorded for reuse", url, exc)
        ready = (self._ready_at or time.monotonic()) - self._spawned_at
        waited = max(0.0, (self._ready_at or time.monotonic()) - asked)
        log.info("local exchange listening on %s (pid %d, ready %.2f s after its start; waited %.2f s "
                 "for it)", url, self.process.pid, ready, waited)  # fmt: skip
        return self.session

    def _session_holds(self, keys: ApiKeys) -> bool:
        try:
            held = read_keys_file(self.session_file)
        except ExchangeError:
            return False
        return hmac.compare_digest(held.key_id, keys.key_id) and hmac.compare_digest(held.secret, keys.secret)

    def _write_session(self, data: dict[str, object]) -> None:
        """Raises :class:`ExchangeError` naming the file (and "disk full" when that is why)."""
        try:
            atomic_write_text(self.session_file, json.dumps(data) + "\n", mode=0o600)
            os.chmod(self.session_file, 0o600)
        except OSError as exc:
            why = describe_os_error(exc, self.session_file)
            raise ExchangeError(f"its session file could not be written: {why}") from exc

    def listen_for_secret(self, on_secret: Callable[[str], None]) -> None:
        """Set the callback that learns the session secret (the log redactor); told at once when
        :meth:`spawn` already made one."""
        self.on_secret = on_secret
        if self._keys is not None:
            on_secret(self._keys.secret)

    def _notify_secret(self, keys: ApiKeys) -> None:
        if self.on_secret is not None:
            self.on_secret(keys.secret)

    def _wait_for_address(self) -> str:
        """Worker thread: block until the spawned child prints its address."""
        assert self.process is not None
        found = self._found
        if not self._ready.wait(self.startup_timeout) or not found:
            try:  # output ended: give the exiting child a moment to report its status
                code: int | None = self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
            self._kill()
            tail = " | ".join(list(self._output_tail)[-5:]) or "no output"
            if code is None:
                raise ExchangeError(
                    f"the local exchange did not report its address within {self.startup_timeout:g} s "
                    f"(last output: {tail})"
                )
            raise ExchangeDiedAtStart(
                f"the local exchange {describe_exit(code)} before it reported its address "
                f"(last output: {tail})"
            )
        return found[0]

    def _pump_output(self, proc: subprocess.Popen[str], found: list[str], ready: threading.Event) -> None:
        """Worker thread: relay the child's output to the log for its whole life."""
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip()
                self._output_tail.append(line)
                if not found and line.startswith(LISTENING_PREFIX):
                    found.append(line[len(LISTENING_PREFIX) :].strip().rstrip("/"))
                    self._ready_at = time.monotonic()
                    ready.set()
                child_log.info("%s", line)
        except (OSError, ValueError):
            pass
        finally:
            ready.set()
            with contextlib.suppress(OSError):
                proc.stdout.close()  # read to EOF: the child is gone, and the pipe is ours to close

    # -- watch and restart ------------------------------------------------------------------------
    def watch(
        self,
        loop: asyncio.AbstractEventLoop,
        on_exit: Callable[[int, str], None],
        at_once: Callable[[int], None] | None = None,
    ) -> None:
        """Call ``on_exit(pid, how)`` on ``loop`` the moment the running exchange ends without
        :meth:`stop` having asked it to. Watches the current process (started or reused); call
        again after :meth:`restart`. ``at_once(pid)`` (thread-safe) runs first, on the watching
        thread itself, without waiting for the loop: its port is free from that moment."""
        session = self.session
        pid = self.process.pid if self.process is not None else session.pid if session else None
        if pid is None or self._watched_pid == pid:
            return
        self._watched_pid = pid
        proc = self.process
        threading.Thread(
            target=self._watch,
            args=(pid, proc, loop, on_exit, at_once),
            name=f"exchange-watch-{pid}",
            daemon=True,
        ).start()

    def _watch(
        self,
        pid: int,
        proc: subprocess.Popen[str] | None,
        loop: asyncio.AbstractEventLoop,
        on_exit: Callable[[int, str], None],
        at_once: Callable[[int], None] | None = None,
    ) -> None:
        """Worker thread: block until process ``pid`` ends (pidfd; a 0.2 s poll where there is none)."""
        fd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            fd = os.pidfd_open(pid)
        try:
            if fd is not None:
                select.select([fd], [], [])
            else:
                while (proc.poll() is None) if proc is not None else pid_alive(pid):
                    time.sleep(0.2)
        finally:
            if fd is not None:
                os.close(fd)
        if at_once is not None and not self._expect_exit and self._watched_pid == pid:
            at_once(pid)
        code: int | None = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(2)
        if self._expect_exit or self._watched_pid != pid:
            return
        how = describe_exit(code)
        with contextlib.suppress(RuntimeError):  # the loop closed: the terminal is exiting anyway
            loop.call_soon_threadsafe(on_exit, pid, how)

    async def restart(self) -> ExchangeSession:
        """After the exchange died: start it again for the same data directory, on the same port
        with the same keys, so every client reconnects to the address it knows. Raises
        :class:`ExchangeError` (the port taken meanwhile, the program failing at start)."""
        old = self.session or self._last_session
        if old is None:
            raise ExchangeError("the local exchange was never started")
        self._last_session = old
        if self.process is not None:
            await asyncio.to_thread(self._terminate, 2.0)  # reap it (normally long gone)
            self.process = None
        port = urllib.parse.urlsplit(old.url).port or 0
        self.session = None
        self._output_tail.clear()
        self.spawn(port=port, keys=old.keys)
        return await self.start()

    # -- stop -------------------------------------------------------------------------------------
    def _kill(self) -> None:
        proc = self.process
        if proc is None:
            return
        self._expect_exit = True
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _unregister_child(proc)

    def _terminate(self, grace: float) -> int | None:
        proc = self.process
        if proc is None:
            return None
        self._expect_exit = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("the local exchange ignored SIGTERM for %.0f s; killing it", grace)
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(2)
        _unregister_child(proc)
        return proc.returncode

    async def stop(self, grace: float = 8.0) -> None:
        """Stop the child if we started it (a reused or external exchange keeps running).

        Also stops a child whose start was interrupted before it reported its address.
        """
        self._expect_exit = True  # also for a reused exchange: its end is no longer news
        if self.process is None:
            return
        code = await asyncio.to_thread(self._terminate, grace)
        log.info("local exchange stopped (exit status %s)", code)
        self._forget()

    def stop_now(self, grace: float = 8.0) -> None:
        """Blocking :meth:`stop` for a caller without an event loop (main.py, when the terminal
        ended before its shutdown sequence took the exchange over). No-op once stopped."""
        self._expect_exit = True
        if self.process is None:
            return
        code = self._terminate(grace)
        log.info("local exchange stopped (exit status %s)", code)
        self._forget()

    def _forget(self) -> None:
        self.session_file.unlink(missing_ok=True)
        self.session = None
        self.process = None
        self._keys = None


def _stop_foreign_exchange(pid: int, exchange_dir: Path, grace: float = 5.0) -> None:
    """Blocking: stop an exchange for our data directory that this terminal did not start and that
    cannot prove it is ours (SIGTERM, then SIGKILL). Only called after its cmdline was checked."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid) or not is_exchange_process(pid, exchange_dir):
            return
        time.sleep(0.05)
    log.warning("the local exchange pid %d ignored SIGTERM for %.0f s; killing it", pid, grace)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def start_early(
    args: argparse.Namespace, *, module: str = "services.exchange"
) -> LocalExchangeLauncher | None:
    """main.py, right after the arguments are parsed: start the local exchange child now, so its
    start-up overlaps the terminal's imports on the other core. Blocking-free (a fork/exec).

    Returns the launcher (the composition root takes it over and waits for the address), or None
    when this run does not start one here: not local mode, ``--exchange-url``, an exchange still
    alive for this data directory (the normal start probes and reuses it), or anything unusual
    (unwritable data dir, invalid settings, no exchange program) that the normal start-up path
    reports with its own clear message.
    """
    from app.paths import DataDirError, prepare, resolve_paths
    from app.settings import peek
    from services.domain.enums import Mode

    if getattr(args, "exchange_url", None) is not None:
        return None
    try:
        paths = prepare(resolve_paths(args.profile, args.data_dir))
    except DataDirError:
        return None
    settings = peek(paths.settings_file)
    if settings is None:
        return None
    mode = Mode(args.mode) if args.mode else settings.mode
    if mode is not Mode.LOCAL:
        return None
    launcher = LocalExchangeLauncher(paths.exchange_dir, settings.local_exchange, module=module)
    if launcher.has_live_session():
        return None
    try:
        launcher.spawn()
    except ExchangeError:
        return None
    return launcher
