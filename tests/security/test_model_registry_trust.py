"""The shadow-model registry never unpickles a model whose expected hash lives in the same writable
folder: Heron keeps the hashes in its own database, and a changed file is refused naming the model."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.shadow.registry import (
    SHADOW_MODELS_SCHEMA,
    DatabaseModelIndex,
    ModelRegistry,
    TamperedModelError,
    UnknownModelError,
)
from services.storage.engine import Database

REPO = Path(__file__).resolve().parents[2]


class Probe:
    def predict_proba(self, x: object) -> object:
        return x


class Payload:
    """Unpickling this creates the folder ``path``: proof that the pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


def _plant(models: Path, name: str, version: str, payload: bytes) -> None:
    """What someone who can write the models folder can do: a pickle plus an index vouching for it."""
    import hashlib

    (models / name).mkdir(parents=True, exist_ok=True)
    (models / name / f"{version}.pkl").write_bytes(payload)
    entry = {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "created_at": datetime.now(UTC).isoformat(),
        "feature_names": ["a"],
        "metadata": {},
    }
    (models / "index.json").write_text(json.dumps({"version": 1, "models": {name: {version: entry}}}))


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.open(f"sqlite:///{tmp_path / 'heron.db'}", tmp_path, (SHADOW_MODELS_SCHEMA,))
    yield database
    database.dispose()


def test_a_replaced_model_file_is_refused_naming_it_and_never_unpickled(tmp_path: Path, db: Database) -> None:
    models = tmp_path / "models"
    registry = ModelRegistry(models, DatabaseModelIndex(db))
    record = registry.save("momentum_lr", Probe(), feature_names=("a",))
    assert isinstance(registry.load("momentum_lr").estimator, Probe)
    marker = tmp_path / "payload-ran"
    _plant(models, "momentum_lr", record.version, pickle.dumps(Payload(str(marker))))  # index.json too
    with pytest.raises(TamperedModelError, match="momentum_lr v1"):
        registry.load("momentum_lr")
    assert not marker.exists()
    # a fresh registry over the same database (a restart) refuses it the same way
    with pytest.raises(TamperedModelError):
        ModelRegistry(models, DatabaseModelIndex(db)).load("momentum_lr")
    assert not marker.exists()


def test_a_model_only_the_folder_vouches_for_is_never_opened(tmp_path: Path, db: Database) -> None:
    models = tmp_path / "models"
    marker = tmp_path / "payload-ran"
    _plant(models, "planted", "v1", pickle.dumps(Payload(str(marker))))
    registry = ModelRegistry(models, DatabaseModelIndex(db))
    assert registry.names() == []
    with pytest.raises(UnknownModelError, match="planted"):
        registry.load("planted")
    assert not marker.exists()


def test_model_files_and_folders_are_owner_only(tmp_path: Path, db: Database) -> None:
    old = os.umask(0o022)
    try:
        registry = ModelRegistry(tmp_path / "models", DatabaseModelIndex(db))
        registry.save("m", Probe(), feature_names=("a",))
    finally:
        os.umask(old)
    for path in [tmp_path / "models", tmp_path / "models" / "m", tmp_path / "models" / "m" / "v1.pkl"]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_headless_heron_never_unpickles_a_model_planted_with_its_own_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    models = data / "profiles" / "default" / "models"
    marker = tmp_path / "payload-ran"
    _plant(models, "momentum_lr", "v1", pickle.dumps(Payload(str(marker))))
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--mode", "local", "--data-dir", str(data),
         "--quit-after", "8"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    log = (data / "profiles" / "default" / "logs" / "heron.log").read_text()
    assert "shadow tracker warmed up" in log, proc.stderr[-2000:]  # the models stage was reached
    assert not marker.exists(), "a planted model was unpickled"
