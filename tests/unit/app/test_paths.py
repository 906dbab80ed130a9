from __future__ import annotations

from pathlib import Path

import pytest

from app.paths import DataDirError, prepare, resolve_paths


def test_profile_layout_under_an_explicit_data_dir(tmp_path: Path) -> None:
    paths = prepare(resolve_paths("work", tmp_path))
    assert paths.profile_dir == tmp_path / "profiles" / "work"
    assert paths.settings_file.parent == paths.profile_dir
    assert paths.log_dir.is_dir() and paths.exchange_dir.is_dir()
    assert paths.default_db_url.endswith("profiles/work/heron.db")


def test_default_root_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_paths("default").root == tmp_path / "heron"


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # even root cannot create a folder inside a file
    with pytest.raises(DataDirError, match=r"cannot create the data directory .*--data-dir"):
        prepare(resolve_paths("default", blocker / "data"))
