"""Reading a file Heron reads whole (settings, scripts, models, saved state) without trusting it.

:func:`read_bounded` checks the kind and size first and then reads at most ``limit + 1`` bytes, so a
FIFO never blocks, a device never runs forever and a file that grows after the check is still refused.
"""

from __future__ import annotations

import stat
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
