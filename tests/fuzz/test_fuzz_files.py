"""Settings, strategy state, exchange session and model index files holding arbitrary bytes.

Contract: never a traceback; a file that cannot be used is refused with a clear, typed error and
is kept (moved aside with its bytes intact, or left untouched), so nothing a person wrote is lost.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from app import settings as app_settings
from app.local_exchange import LocalExchangeLauncher
from app.settings import LocalExchangeSettings, SettingsError
from services.shadow.registry import ModelRegistry, ModelRegistryError
from services.strategies.store import StrategyStateError, StrategyStateStore
from tests.fuzz.budget import fuzz_pair

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _near(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``valid`` with some keys replaced by arbitrary JSON, dropped, or added."""
    keys = list(valid)

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        data = json.loads(json.dumps(valid))
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
            if draw(st.booleans()):
                data[key] = draw(json_value)
            else:
                data.pop(key, None)
        if draw(st.booleans()):
            data[draw(st.text(max_size=8))] = draw(json_value)
        return data

    return mutate()


def file_bytes(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    text = json.dumps(valid)
    return st.one_of(
        st.binary(max_size=200),
        json_value.map(lambda v: json.dumps(v).encode()),
        _near(valid).map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=0, max_value=len(text)).map(lambda n: text[:n].encode()),  # truncated
        st.just(b"\xef\xbb\xbf" + text.encode()),  # BOM
        st.just(text.encode("utf-16")),
    )


# ------------------------------------------------------------------------------------------ settings

VALID_SETTINGS = app_settings.Settings().to_dict()


def prop_settings_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        path.write_bytes(data)
        try:
            loaded = app_settings.load(path)
        except SettingsError as exc:
            message = str(exc)
            assert str(path) in message and "\n" not in message.strip()
            kept = [p for p in Path(tmp).iterdir() if p.name.startswith("settings.json")]
            # Either left in place (unreadable) or moved aside with every byte intact.
            assert any(p.read_bytes() == data for p in kept), kept
            return
        assert isinstance(loaded, app_settings.Settings)
        app_settings.save(loaded, path)
        assert app_settings.load(path) == loaded


test_settings_file, test_settings_file_deep = fuzz_pair(file_bytes(VALID_SETTINGS), examples=150)(
    prop_settings_file
)


# ----------------------------------------------------------------------------------- strategy state

VALID_STATE = {
    "version": 1,
    "strategies": {"sma": {"key": "sma_crossover", "state": "running", "params": {}}},
}


def prop_strategy_state_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = StrategyStateStore.in_data_dir(Path(tmp))
        store.path.parent.mkdir(parents=True)
        store.path.write_bytes(data)
        try:
            loaded = store.load()
        except StrategyStateError as exc:
            assert "strategy state file" in str(exc)
            aside = [p for p in store.path.parent.iterdir() if ".corrupt-" in p.name]
            assert len(aside) == 1 and aside[0].read_bytes() == data
            return
        assert isinstance(loaded, dict)
        assert all(isinstance(k, str) and isinstance(v, dict) for k, v in loaded.items()), loaded


test_strategy_state_file, test_strategy_state_file_deep = fuzz_pair(file_bytes(VALID_STATE), examples=150)(
    prop_strategy_state_file
)


# ---------------------------------------------------------------------------- exchange session.json

VALID_SESSION = {"url": "http://127.0.0.1:1", "pid": 1, "key_id": "HRNABC", "secret": "s3cret-value"}


def prop_session_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        launcher = LocalExchangeLauncher(Path(tmp), LocalExchangeSettings())
        launcher.session_file.write_bytes(data)
        session = launcher._read_session()
        if session is not None:
            assert session.url and isinstance(session.pid, int) and session.keys.secret


test_session_file, test_session_file_deep = fuzz_pair(file_bytes(VALID_SESSION), examples=150)(
    prop_session_file
)


# ------------------------------------------------------------------------------- model registry index

VALID_INDEX = {
    "version": 1,
    "models": {
        "logreg": {"v1": {"sha256": "0" * 64, "created_at": "", "feature_names": ["a"], "metadata": {}}}
    },
}


def prop_model_index(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        root.mkdir()
        (root / "index.json").write_bytes(data)
        registry = ModelRegistry(root)
        try:
            for name in registry.names():
                for record in registry.versions(name):
                    assert record.version.startswith("v")
                registry.load(name)
        except ModelRegistryError as exc:
            assert str(exc)
        assert (root / "index.json").read_bytes() == data  # never rewritten by a read


test_model_index, test_model_index_deep = fuzz_pair(file_bytes(VALID_INDEX), examples=150)(prop_model_index)


def test_regression_null_key_in_session_file_is_ignored_not_a_crash(tmp_path: Path) -> None:
    # Found by test_session_file: ApiKeys(None, ...) raised AttributeError out of start-up.
    launcher = LocalExchangeLauncher(tmp_path, LocalExchangeSettings())
    launcher.session_file.write_text('{"url": "http://127.0.0.1:1", "pid": 1, "key_id": null, "secret": ""}')
    assert launcher._read_session() is None


def test_regression_null_strategy_record_is_refused_and_kept_aside(tmp_path: Path) -> None:
    # Found by test_strategy_state_file: {"sma": null} came back from load() and the runner's
    # restore would call .get on None at start-up.
    store = StrategyStateStore.in_data_dir(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"version": 1, "strategies": {"sma": null}}')
    try:
        store.load()
    except StrategyStateError as exc:
        assert "'sma'" in str(exc)
    else:
        raise AssertionError("a null strategy record was accepted")
    assert (store.path.parent / "state.json.corrupt-1").read_text().endswith('{"sma": null}}')


def test_regression_malformed_model_index_entries_are_registry_errors(tmp_path: Path) -> None:
    # Found by test_model_index_deep: these raised AttributeError/TypeError out of the registry.
    sha = "0" * 64
    for text in (
        '{"version": 1, "models": {"a": true}}',
        '{"version": 1, "models": {"a": {"v1": null}}}',
        json.dumps({"version": 1, "models": {"a": {"v1": {"sha256": sha, "feature_names": 5}}}}),
        json.dumps({"version": 1, "models": {"a": {"v1": {"sha256": sha, "metadata": [1]}}}}),
    ):
        (tmp_path / "index.json").write_text(text)
        try:
            ModelRegistry(tmp_path).versions("a")
        except ModelRegistryError:
            continue
        raise AssertionError(f"accepted {text}")
