"""The lab's settings: where sweeps run (a local cluster by default, or a Dask scheduler), saved in
the versioned settings file and edited in the settings dialog's Strategy lab tab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app import settings as S
from app.qt.settings_access import SettingsFiles
from widgets.settings_dialog import SettingsDialog


def test_a_v3_file_gains_the_lab_defaults_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    v3 = {"schema_version": 3, "mode": "local", "watchlist": ["SPY"]}
    path.write_text(json.dumps(v3))
    loaded = S.load(path)
    assert loaded.lab == S.LabSettings(scheduler="", workers=0, allow_insecure_tcp=False)
    assert loaded.watchlist == ["SPY"]
    assert json.loads(path.read_text())["lab"]["scheduler"] == ""
    assert json.loads((tmp_path / "settings.json.bak-v3").read_text()) == v3


def test_the_lab_section_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = S.Settings()
    original.lab = S.LabSettings("tls://10.0.0.5:8786", 0, False, "/etc/ca.pem", "/etc/me.pem", "/etc/me.key")
    S.save(original, path)
    assert S.load(path) == original


@pytest.mark.parametrize(
    ("lab", "words"),
    [
        ({"scheduler": "10.0.0.5:8786"}, "lab.scheduler must be empty (a local cluster) or a Dask address"),
        ({"workers": -1}, "lab.workers must be a whole number from 0 (automatic) to 512"),
        ({"workers": True}, "lab.workers must be a whole number"),
        ({"allow_insecure_tcp": "yes"}, "lab.allow_insecure_tcp must be true or false"),
        ({"tls_key": 5}, "lab.tls_key must be text"),
        ({"sheduler": "tls://x:1"}, "lab has unknown setting(s) ['sheduler']"),
    ],
)
def test_a_bad_lab_setting_is_refused_naming_it(lab: dict[str, Any], words: str) -> None:
    with pytest.raises(S.SettingsError) as caught:
        S.from_dict({"schema_version": S.SCHEMA_VERSION, "lab": lab})
    assert words in str(caught.value)


def test_the_settings_dialog_saves_the_lab_tab(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    settings = S.load(path)
    d = SettingsDialog(settings, path, backend=SettingsFiles())
    qtbot.addWidget(d)
    tab = d.lab_tab
    assert d.tabs.tabText(d.tabs.indexOf(tab)) == "Strategy lab"
    assert tab.scheduler.text() == "" and tab.workers.value() == 0
    tab.scheduler.setText(" tcp://127.0.0.1:8786 ")
    tab.workers.setValue(1)
    tab.tls["tls_ca"].setText("/tmp/ca.pem")
    assert d.apply() is not None
    assert S.load(path).lab == S.LabSettings("tcp://127.0.0.1:8786", 1, False, "/tmp/ca.pem", "", "")
    tab.scheduler.setText("scheduler:8786")
    assert d.apply() is None
    assert "lab.scheduler must be empty" in d.error.text()
