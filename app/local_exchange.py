"""Start, find or connect to the local Alpaca-compatible exchange (``python -m services.exchange``).

- :class:`LocalExchangeLauncher` starts the exchange as a child process on 127.0.0.1 with a random
  port and random per-session keys. The keys go to ``<exchange dir>/session.json`` (mode 0600,
  with url and pid once it listens) and reach the child through ``--keys-file``: never argv.
- If ``session.json`` names a process that is alive and answers ``GET /v2/clock`` with those keys
  (a terminal restarted after a crash), the running exchange is reused and left running on exit.
- :func:`connect_external` is ``--exchange-url URL --exchange-keys FILE``.

Blocking work (spawn, HTTP probe, reading the child's output) runs on worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from app.secrets import ApiKeys
from app.settings import LocalExchangeSettings, atomic_write_text

log = logging.getLogger("heron.exchange")
child_log = logging.getLogger("heron.exchange.child")

REPO_ROOT = Path(__file__).resolve().parents[1]
LISTENING_PREFIX = "listening on "
SESSION_FILE = "session.json"


class ExchangeError(Exception):
    """The exchange could not be started or reached; the message is fit to show a person."""


@dataclass(frozen=True)
class ExchangeSession:
    url: str
    keys: ApiKeys = field(repr=False)
    pid: int | None
    owned: bool  # True: we started it and stop it on exit

    @property
    def describe(self) -> str:
        how = "started by Heron" if self.owned else "already running" if self.pid else "external"
        return f"{self.url} ({how})"


def exchange_program_available(module: str = "services.exchange") -> bool:
    """Whether ``python -m <module>`` can run in this checkout."""
    try:
        spec = find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:  # a package
            spec = find_spec(f"{module}.__main__")
        return spec is not None
    except (ImportError, ValueError):
        return False


def read_keys_file(path: Path) -> ApiKeys:
    """``{"key_id": ..., "secret": ...}``; raises :class:`ExchangeError` with the reason."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExchangeError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ExchangeError(f"the keys file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("key_id"), str) or not isinstance(
        data.get("secret"), str
    ):
        raise ExchangeError(f'the keys file {path} must hold {{"key_id": "...", "secret": "..."}}')
    try:
        return ApiKeys(key_id=data["key_id"], secret=data["secret"])
    except ValueError as exc:
        raise ExchangeError(f"the keys file {path}: {exc}") from None


def probe_exchange(url: str, keys: ApiKeys, timeout: float = 2.0) -> bool:
    """Blocking: True when ``GET {url}/v2/clock`` answers 200 with these keys."""
    request = urllib.request.Request(
        f"{url}/v2/clock",
        headers={"APCA-API-KEY-ID": keys.key_id, "APCA-API-SECRET-KEY": keys.secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def connect_external(url: str, keys_file: Path, *, probe: bool = True) -> ExchangeSession:
    keys = read_keys_file(keys_file)
    if probe and not await asyncio.to_thread(probe_exchange, url, keys):
        raise ExchangeError(f"the exchange at {url} does not answer GET /v2/clock with the given keys")
    return ExchangeSession(url=url, keys=keys, pid=None, owned=False)


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
        previous = self._read_session()
        if previous is None or previous.pid is None or not _pid_alive(previous.pid):
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
        return previous is not None and previous.pid is not None and _pid_alive(previous.pid)

    def spawn(self) -> None:
        """Start the child without waiting for it (any thread, no event loop needed).

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
        keys = ApiKeys(key_id="HRN" + secrets.token_hex(8).upper(), secret=secrets.token_urlsafe(30))
        self._keys = keys
        self.exchange_dir.mkdir(parents=True, exist_ok=True)
        self._write_session({"key_id": keys.key_id, "secret": keys.secret})
        cmd = [
            self.python, "-m", self.module,
            "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(self.exchange_dir),
            "--keys-file", str(self.session_file),
            "--seed", str(self.settings.seed),
        ]  # fmt: skip
        if self.settings.always_open:
            cmd.append("--always-open")
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
            )
        except OSError as exc:
            self.session_file.unlink(missing_ok=True)
            raise ExchangeError(f"cannot start the local exchange: {exc}") from None
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
        url = await asyncio.to_thread(self._wait_for_address)
        self.session = ExchangeSession(url=url, keys=keys, pid=self.process.pid, owned=True)
        self._write_session(
            {"url": url, "pid": self.process.pid, "key_id": keys.key_id, "secret": keys.secret}
        )
        ready = (self._ready_at or time.monotonic()) - self._spawned_at
        waited = max(0.0, (self._ready_at or time.monotonic()) - asked)
        log.info("local exchange listening on %s (pid %d, ready %.2f s after its start; waited %.2f s "
                 "for it)", url, self.process.pid, ready, waited)  # fmt: skip
        return self.session

    def _write_session(self, data: dict[str, object]) -> None:
        atomic_write_text(self.session_file, json.dumps(data) + "\n", mode=0o600)
        os.chmod(self.session_file, 0o600)

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
            raise ExchangeError(f"the local exchange exited with status {code} (last output: {tail})")
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

    # -- stop -------------------------------------------------------------------------------------
    def _kill(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(5)

    def _terminate(self, grace: float) -> int | None:
        proc = self.process
        if proc is None:
            return None
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
        return proc.returncode

    async def stop(self, grace: float = 8.0) -> None:
        """Stop the child if we started it (a reused or external exchange keeps running).

        Also stops a child whose start was interrupted before it reported its address.
        """
        if self.process is None:
            return
        code = await asyncio.to_thread(self._terminate, grace)
        log.info("local exchange stopped (exit status %s)", code)
        self._forget()

    def stop_now(self, grace: float = 8.0) -> None:
        """Blocking :meth:`stop` for a caller without an event loop (main.py, when the terminal
        ended before its shutdown sequence took the exchange over). No-op once stopped."""
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
