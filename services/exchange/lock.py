"""The data directory's writer lock: one exchange per venue, never two on the same files.

``exchange.lock`` in the data directory is held with an exclusive ``flock`` for the whole life of
the exchange process, taken before its keys or database are touched. The lock belongs to the open
file, so the kernel releases it when the process ends in any way (SIGKILL included); there is no
stale lock to clean up. The file holds the holder's pid so a refused second exchange can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "exchange.lock"


class DataDirLocked(RuntimeError):
    """Another live process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "a process whose pid is not yet written"
        super().__init__(
            f"exchange data directory {data_dir} is in use by another exchange ({holder}); "
            "refusing to start a second one on it"
        )
        self.data_dir = data_dir
        self.pid = pid


class DataDirLock:
    """The held lock; :meth:`release` (or process exit) gives it up."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no pid left behind for a reader to name
        os.close(fd)  # closing the only descriptor of the open file drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
    except OSError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def acquire(data_dir: Path) -> DataDirLock:
    """Take the lock of ``data_dir`` or raise :class:`DataDirLocked` at once (never waits).
    OSError when the lock file cannot be created (the directory is not writable)."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DataDirLocked(data_dir, pid) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the lock is held all the same; a refused second exchange cannot name us
    except BaseException:
        os.close(fd)
        raise
    return DataDirLock(data_dir, fd)
