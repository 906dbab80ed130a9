from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from services.shadow.features import FEATURE_NAMES
from services.shadow.registry import ModelRegistry, ModelRegistryError, TamperedModelError, UnknownModelError

LOADED: list[str] = []


def _record_load(tag: str) -> str:
    LOADED.append(tag)
    return tag


class Payload:
    """Unpickling this runs ``_record_load``: proof of whether a file was unpickled."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_record_load, ("payload ran",))


def fitted() -> LogisticRegression:
    model = LogisticRegression()
    model.fit([[0.0] * len(FEATURE_NAMES), [1.0] * len(FEATURE_NAMES)], [0, 1])
    return model


def test_save_and_load_versions(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    v1 = reg.save("logreg", fitted(), feature_names=FEATURE_NAMES, metadata={"test_accuracy": 0.5})
    v2 = reg.save("logreg", fitted(), feature_names=FEATURE_NAMES)
    assert (v1.version, v2.version) == ("v1", "v2") and len(v1.sha256) == 64
    assert reg.names() == ["logreg"] and [v.version for v in reg.versions("logreg")] == ["v1", "v2"]
    loaded = reg.load("logreg")
    assert loaded.info.version == "v2" and loaded.info.feature_names == FEATURE_NAMES
    assert reg.load("logreg", "v1").info.metadata == {"test_accuracy": 0.5}
    assert loaded.estimator.predict_proba([[1.0] * len(FEATURE_NAMES)])[0][1] > 0.5


def test_tampered_file_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    reg.save("m", fitted(), feature_names=FEATURE_NAMES)
    path = tmp_path / "m" / "v1.pkl"
    path.write_bytes(pickle.dumps(Payload()))  # swapped for a hostile pickle
    LOADED.clear()
    with pytest.raises(TamperedModelError, match="does not match the registry"):
        reg.load("m", "v1")
    assert LOADED == []
    one_bit = bytearray(pickle.dumps(fitted()))
    one_bit[-3] ^= 1
    path.write_bytes(bytes(one_bit))
    with pytest.raises(TamperedModelError):
        reg.load("m")


def test_unknown_files_and_names_are_refused(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    reg.save("m", fitted(), feature_names=FEATURE_NAMES)
    (tmp_path / "m" / "v9.pkl").write_bytes(pickle.dumps(Payload()))  # not written by the registry
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "v1.pkl").write_bytes(pickle.dumps(Payload()))
    LOADED.clear()
    with pytest.raises(UnknownModelError, match="no version 'v9'"):
        reg.load("m", "v9")
    with pytest.raises(UnknownModelError, match="no model named 'other'"):
        reg.load("other")
    with pytest.raises(ModelRegistryError, match="invalid model name"):
        reg.load("../m")
    with pytest.raises(ModelRegistryError, match="invalid model version"):
        reg.load("m", "../../x")
    assert LOADED == []


def test_missing_file_bad_index_and_non_classifier(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    reg.save("m", fitted(), feature_names=FEATURE_NAMES)
    (tmp_path / "m" / "v1.pkl").unlink()
    with pytest.raises(ModelRegistryError, match="missing"):
        reg.load("m")
    index = json.loads((tmp_path / "index.json").read_text())
    index["models"]["m"]["v1"]["sha256"] = "not-a-hash"
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ModelRegistryError, match="no valid sha256"):
        reg.load("m")
    with pytest.raises(ModelRegistryError, match="only classifiers"):
        reg.save("n", object(), feature_names=FEATURE_NAMES)
    (tmp_path / "index.json").write_text("[]")
    with pytest.raises(ModelRegistryError, match="unsupported format"):
        reg.names()


class _FullDiskIndex:
    """An index whose database refuses the write, as SQLite does on a full disk."""

    def entries(self) -> dict[str, Any]:
        return {}

    def add(self, name: str, version: str, entry: dict[str, Any]) -> None:
        import sqlite3

        from sqlalchemy.exc import OperationalError

        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))


def test_a_save_the_database_refuses_is_a_registry_error_saying_disk_full(tmp_path: Path) -> None:
    """Training at start-up catches ModelRegistryError and keeps the rule model; a raw database error
    ended its task with a traceback (a full disk in the chaos runs). No file is left without its hash."""
    reg = ModelRegistry(tmp_path / "models", _FullDiskIndex())
    with pytest.raises(ModelRegistryError, match=r"logreg v1 not recorded.*disk full"):
        reg.save("logreg", fitted(), feature_names=FEATURE_NAMES)
    assert not list((tmp_path / "models").rglob("*.pkl"))
