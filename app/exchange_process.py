"""The local exchange as seen from outside its process: the session (address and keys) and the
errors of starting or reaching it; who holds a port; whether a pid is the exchange for a data
directory and can prove it holds the session secret (without it being sent); a probe with the
keys; ``--exchange-url URL --exchange-keys FILE`` (:func:`connect_external`). Blocking helpers
run on worker threads. The child process itself is :mod:`app.local_exchange`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import os
import secrets
import signal
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from app.secrets import ApiKeys
from services.exchange.identity import IDENTITY_PATH, SERVICE, identity_proof
from services.storage.files import FileTooLargeError, read_bounded

#: A keys or session file is a few hundred bytes; anything far larger is not one.
MAX_KEYS_FILE_BYTES = 64 * 1024


class ExchangeError(Exception):
    """The exchange could not be started or reached; the message is fit to show a person."""


class ExchangeDiedAtStart(ExchangeError):
    """The child ended (a status or a signal) before it reported its address; starting it again
    may well work (it was killed, or lost a race for its port)."""


def port_holder(port: int) -> str | None:
    """Who listens on TCP ``port`` on this machine: "pid N (command line)", "a process of
    another user" when its sockets cannot be read, or None when nothing listens there."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        raw = (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                        command = raw.decode("utf-8", "replace")[:200] or "?"
                        return f"pid {proc.name} ({command})"
    return "a process whose sockets this terminal cannot read (another user's)"


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
        data = json.loads(read_bounded(path, MAX_KEYS_FILE_BYTES, "the keys file").decode("utf-8"))
    except FileTooLargeError as exc:
        raise ExchangeError(str(exc)) from None
    except OSError as exc:
        raise ExchangeError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ExchangeError(f"the keys file {path} is not valid JSON: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("key_id"), str)
        or not isinstance(data.get("secret"), str)
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_exchange_process(pid: int, exchange_dir: Path, module: str = "services.exchange") -> bool:
    """``/proc/<pid>/cmdline`` is ``... -m <module> ... --data-dir <exchange_dir> ...``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    if module not in argv:
        return False
    want = str(exchange_dir.resolve())
    for flag, value in itertools.pairwise(argv):
        if flag == "--data-dir" and str(Path(value).resolve()) == want:
            return True
    return any(a == f"--data-dir={exchange_dir}" or a == f"--data-dir={want}" for a in argv)


def prove_identity(url: str, keys: ApiKeys, exchange_dir: Path, pid: int, timeout: float = 2.0) -> str | None:
    """Blocking: None when the exchange at ``url`` proves it holds ``keys``' secret, is process
    ``pid`` and serves ``exchange_dir``; otherwise why not. Sends no key."""
    challenge = secrets.token_hex(32)
    parts = urllib.parse.urlsplit(url)
    port = parts.port
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1") or port is None:
        return f"{url} is not a loopback http address"
    query = urllib.parse.urlencode({"challenge": challenge})
    try:
        with urllib.request.urlopen(f"{url}{IDENTITY_PATH}?{query}", timeout=timeout) as response:
            body = json.loads(response.read(4096).decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"no identity answer from {url} ({exc})"
    if not isinstance(body, dict) or body.get("service") != SERVICE or not isinstance(body.get("proof"), str):
        return f"{url} did not answer as a Heron exchange"
    expected = identity_proof(keys.secret, challenge, exchange_dir, port, pid)
    if not hmac.compare_digest(body["proof"], expected):
        return f"the process at {url} could not prove it is the exchange (pid {pid}) for {exchange_dir}"
    return None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "ended (exit status unknown: not started by this terminal)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


async def connect_external(url: str, keys_file: Path, *, probe: bool = True) -> ExchangeSession:
    keys = read_keys_file(keys_file)
    if probe and not await asyncio.to_thread(probe_exchange, url, keys):
        raise ExchangeError(f"the exchange at {url} does not answer GET /v2/clock with the given keys")
    return ExchangeSession(url=url, keys=keys, pid=None, owned=False)
