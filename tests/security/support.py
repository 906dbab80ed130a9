"""Shared pieces of the security tests: an in-memory keyring, known fake keys, a refusing proxy.

- :class:`MemoryKeyring`: a keyring backend that keeps entries in a dict (never on disk). Use it as
  ``SecretStore(backend=MemoryKeyring())``.
- :class:`PreloadedKeyring`: the same, created holding :data:`FAKE_PAPER` for profile ``X`` /
  ``alpaca-paper``; a subprocess selects it with ``PYTHON_KEYRING_BACKEND`` (so the keys reach the
  terminal only through keyring, as in real use, never through argv or the environment).
- :class:`RefusingProxy`: an HTTP(S) proxy on 127.0.0.1 that answers every request with 403 and
  counts them. Pointing ``HTTPS_PROXY`` at it keeps a subprocess that tries Alpaca's real servers on
  this machine (no test reaches the internet) and proves whether it tried to connect at all.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from app.secrets import SERVICE_NAME, ApiKeys

REPO = Path(__file__).resolve().parents[2]

# Known fake keys: shaped like Alpaca's (PK = paper, AK = live) and unique enough to grep for.
FAKE_PAPER = ApiKeys(key_id="PKFAKESCAN7Q2W9E4R6T", secret="fakePaperSecret-heron-scan-Zx81Lm02Qw93Er")
FAKE_LIVE = ApiKeys(key_id="AKFAKESCAN3H5J7K9L1M", secret="fakeLiveSecret-heron-scan-Vb47Np56Tg21Yh")
SCAN_PROFILE = "X"


class MemoryKeyring(KeyringBackend):
    """Entries in a dict; nothing is written anywhere."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("no such entry")


class PreloadedKeyring(MemoryKeyring):
    """A MemoryKeyring that starts with the fake paper keys of profile X."""

    def __init__(self) -> None:
        super().__init__()
        self.entries[(SERVICE_NAME, f"{SCAN_PROFILE}:alpaca-paper")] = FAKE_PAPER.to_json()


class RefusingProxy:
    """Counts connections on 127.0.0.1 and answers each with ``403`` (see the module docstring)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="refusing-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                    self.requests.append(first)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> RefusingProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def files_containing(root: Path, needles: list[str], *, skip: frozenset[Path] = frozenset()) -> list[str]:
    """``path: needle`` for every file under ``root`` whose raw bytes contain a needle."""
    hits: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in skip:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for needle in needles:
            if needle.encode() in data:
                hits.append(f"{path.relative_to(root)}: {needle[:6]}...")
    return hits
