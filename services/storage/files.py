"""Reading a file Heron reads whole (settings, scripts, models, saved state) without trusting it.

:func:`read_bounded` checks the kind and size first and then reads at most ``limit + 1`` bytes, so a
FIFO never blocks, a device never runs forever and a file that grows after the check is still refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class FileTooLargeError(ValueError):
    """A file Heron reads whole is larger than its limit (or not a regular file); never read."""


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, refused unread above ``limit`` bytes or when it is not a regular file.

    Raises :class:`FileTooLargeError` naming ``what`` and the file, or :class:`OSError`."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise FileTooLargeError(f"{what} {path} is not a regular file")
    if info.st_size > limit:
        raise FileTooLargeError(
            f"{what} {path} is {info.st_size:,} bytes, more than the {limit:,}-byte limit; it was not read"
        )
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{what} {path} is more than the {limit:,}-byte limit; it was not read")
    return data


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never half: a
    temporary file in the same folder (``mode``, whatever the umask), fsynced, renamed over ``path``,
    then the folder fsynced. Raises OSError (a full disk: the temporary file is removed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # the rename is done; a folder that cannot be fsynced (some filesystems) keeps it
    finally:
        os.close(dir_fd)
