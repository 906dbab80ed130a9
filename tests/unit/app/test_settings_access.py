"""The settings dialog's backend from the composition root: the whole document is checked before an
atomic save, a profile is created with default settings, and key pairs refuse an empty part."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.qt.settings_access import SettingsFiles
from app.settings import Settings, load


def test_save_checks_the_whole_document_first(tmp_path: Path) -> None:
    files = SettingsFiles()
    path = tmp_path / "settings.json"
    data = Settings().to_dict()
    data["mode"] = "no-such-mode"
    new, problem = files.save(data, path)
    assert new is None and problem and not path.exists()
    new, problem = files.save(Settings().to_dict(), path)
    assert problem is None and new is not None and load(path).mode is new.mode


def test_create_profile_writes_the_defaults(tmp_path: Path) -> None:
    files = SettingsFiles()
    assert files.create_profile("swing", tmp_path) is None
    assert (tmp_path / "profiles" / "swing" / "settings.json").exists()


def test_keys_and_the_known_names() -> None:
    files = SettingsFiles()
    assert files.keys("PKID", "secret").key_id == "PKID"
    with pytest.raises(ValueError):
        files.keys("PKID", " ")
    assert "dark" in files.themes and "symbol_deny" in files.list_risk_keys
    assert "max_open_orders" in files.int_risk_keys
