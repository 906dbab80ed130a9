"""A settings file of any shape is moved aside with a message naming it and the problem, and Heron
goes on with the defaults; it is never read whole when huge, and never crashes the start."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import settings as S

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ASIDE = "settings.json.corrupt-20260102T030405Z"

_keys = st.sampled_from(
    [
        "schema_version",
        "mode",
        "ui",
        "local_exchange",
        "risk",
        "watchlist",
        "market_data",
        "theme",
        "confirm_orders",
        "symbols",
        "seed",
        "always_open",
        "live_feed",
        "history_feed",
        "max_order_qty",
        "max_open_orders",
        "symbol_allow",
        "x",
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from([0, 1, 2, 3, 99, "local", "dark", "iex", "AAPL", "1000", "AAPL,MSFT"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=20,
)


def _check(path: Path, data: bytes) -> None:
    """The property: load gives Settings, or moves the bytes aside intact with a one-line message;
    load_or_defaults then always gives usable settings."""
    path.write_bytes(data)
    try:
        loaded = S.load(path, now=lambda: NOW)
    except S.SettingsTooNewError:
        assert path.read_bytes() == data
        return
    except S.SettingsError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message
        aside = path.with_name(ASIDE)
        assert aside.read_bytes() == data, "the file must be moved aside with every byte intact"
        assert not path.exists()
        aside.unlink()
        path.write_bytes(data)
        settings_, problem = S.load_or_defaults(path, now=lambda: NOW)
        assert settings_ == S.Settings() and problem is not None and str(path) in problem
        assert "default" in problem
        return
    assert isinstance(loaded, S.Settings)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    _json
    | st.dictionaries(_keys, _json, max_size=7)
    | st.fixed_dictionaries(
        {"schema_version": st.sampled_from([0, 1, 2, 3])},
        optional={
            k: _json for k in ["ui", "local_exchange", "risk", "watchlist", "market_data", "mode", "symbols"]
        },
    )
)
def test_settings_of_any_json_shape_load_or_move_aside(value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _check(Path(tmp) / "settings.json", json.dumps(value).encode())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"null", "JSON object"),
        (b"42", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (json.dumps({"schema_version": 1, "local_exchange": [1]}).encode(), "wrong shape"),
        (json.dumps({"schema_version": 1, "local_exchange": ["abc"]}).encode(), "wrong shape"),
        (json.dumps({"ui": {"theme": ["dark"]}, "mode": {"a": 1}}).encode(), "mode"),
    ],
)
def test_explicit_bad_settings_are_moved_aside_and_defaults_used(
    tmp_path: Path, data: bytes, problem: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(data)
    settings_, message = S.load_or_defaults(path, now=lambda: NOW)
    assert settings_ == S.Settings()
    assert message is not None and str(path) in message and problem in message and ASIDE in message
    assert (tmp_path / ASIDE).read_bytes() == data
    assert S.load(path) == S.Settings()  # the defaults were saved in its place


def test_a_folder_at_the_settings_path_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.mkdir()
    (path / "inside").write_text("kept")
    settings_, message = S.load_or_defaults(path, now=lambda: NOW)
    assert settings_ == S.Settings() and message is not None and "folder" in message
    assert (tmp_path / ASIDE / "inside").read_text() == "kept"


def test_a_huge_settings_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    with path.open("wb") as fh:  # sparse: 2 GB on paper, nothing on disk
        fh.truncate(2 * 1024**3)
    reads: list[int] = []
    real_read_text = Path.read_text

    def spy(self: Path, *a: Any, **k: Any) -> str:
        reads.append(1)
        return real_read_text(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", spy)
    settings_, message = S.load_or_defaults(path, now=lambda: NOW)
    assert settings_ == S.Settings() and message is not None and "limit" in message
    assert reads == []
    assert (tmp_path / ASIDE).stat().st_size == 2 * 1024**3


def test_a_fifo_at_the_settings_path_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    os.mkfifo(path)
    settings_, message = S.load_or_defaults(path, now=lambda: NOW)
    assert settings_ == S.Settings() and message is not None and "regular file" in message


def test_settings_written_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "settings.json"
        S.load(path)
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_huge_strategy_state_file_is_refused_unread(tmp_path: Path) -> None:
    from services.strategies.store import StrategyStateError, StrategyStateStore

    state = tmp_path / "strategies" / "state.json"
    state.parent.mkdir()
    with state.open("wb") as fh:  # sparse: 2 GB on paper
        fh.truncate(2 * 1024**3)
    with pytest.raises(StrategyStateError, match="byte limit; it was not read"):
        StrategyStateStore(state).load()
    assert not state.exists()  # moved aside, whole


def test_defaults_written_for_a_moved_file_are_known_until_the_settings_are_saved(tmp_path: Path) -> None:
    """Live trading must not start on the defaults that replaced a trader's unusable file, on this
    start or a later one; a later save of the settings (the trader's own) ends that."""
    import os
    import time as _time

    from app.settings import Settings, defaults_after_set_aside, load_or_defaults, save

    path = tmp_path / "settings.json"
    assert defaults_after_set_aside(path) is None  # nothing there
    save(Settings(), path)
    assert defaults_after_set_aside(path) is None  # a first run's defaults, nothing set aside
    path.write_text('{"schema_version": 3, "risk": "not an object"}')
    _settings, problem = load_or_defaults(path)
    assert problem is not None
    aside = defaults_after_set_aside(path)
    assert aside is not None and aside.name.startswith("settings.json.corrupt-")
    later = _time.time() + 60
    save(Settings(), path)
    os.utime(path, (later, later))  # saved by the trader a minute later
    assert defaults_after_set_aside(path) is None
