"""The one atomic write (settings, the journal mark, model files, strategy state): the old content or
the new, never half, owner-only, and nothing left behind when the disk refuses it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from services.storage import files


def test_a_write_replaces_the_whole_file_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old")
    old_umask = os.umask(0)
    try:
        files.atomic_write_bytes(path, b"new")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_refused_write_keeps_the_old_content_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal mark's own copy of this left its ``.tmp`` behind on a full disk."""
    path = tmp_path / "heron.db-mark"
    path.write_text("old")

    def full(*_a: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError):
        files.atomic_write_bytes(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heron.db-mark"]
