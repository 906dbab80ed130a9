"""One terminal per profile: an exclusive lock on ``<profile dir>/heron.lock`` for the process lifetime.

A second Heron on the same profile (same data directory) would share the database and the local
exchange with the first, and the first one's quit would stop the exchange under it. main.py takes
this lock before any exchange is spawned or the database is opened; a second start is refused
with one line naming the profile and the pid holding it.

The lock is ``fcntl.flock`` on a file that stays open until the process ends, so the kernel drops
it with the process however that ends (SIGKILL included): a stale lock file never blocks a start.
The descriptor is not inherited by children (PEP 446), so the exchange child cannot keep it.
Standard library only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "heron.lock"


class ProfileInUse(Exception):
    """Another process holds the profile; the message is one line fit to show a person."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


@dataclass
class ProfileLock:
    path: Path
    fd: int

    def release(self) -> None:
        """Tests only: a running terminal keeps its lock until it exits."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: The lock of this process (kept referenced so its descriptor stays open for the process lifetime).
_held: ProfileLock | None = None


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire(profile_dir: Path, profile: str) -> ProfileLock:
    """Lock ``profile_dir`` for this process or raise :class:`ProfileInUse` (or OSError when the
    folder cannot hold a lock file: the caller's normal start-up path reports that)."""
    global _held
    profile_dir.mkdir(parents=True, exist_ok=True)
    path = profile_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        pid = _holder(fd)
        os.close(fd)
        who = f"pid {pid}" if pid is not None else "another process"
        raise ProfileInUse(
            f"profile {profile!r} is already open in another Heron ({who}) using {profile_dir}; "
            "close that one first, or start this one with another --profile or --data-dir",
            pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    lock = ProfileLock(path, fd)
    _held = lock
    return lock
