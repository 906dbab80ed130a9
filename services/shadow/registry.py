"""Model registry: versioned scikit-learn models in the data directory, checked by SHA-256.

Layout: ``<root>/index.json`` plus ``<root>/<name>/<version>.pkl``. The registry writes both;
every write is atomic (temporary file, fsync, ``os.replace``).

Loading rules (pickle can run arbitrary code, so these are strict):

* Only a (name, version) listed in the index is ever loaded; the file path is derived from the
  validated name and version, never taken from the index or from a caller. A file dropped into the
  directory by anyone else is therefore never opened.
* The bytes are read once, hashed, compared with the index's SHA-256, and only those verified
  bytes are unpickled. A mismatch raises :class:`TamperedModelError`; nothing is unpickled.
* The unpickled object must offer ``predict_proba``.

Limit, said plainly: someone who can rewrite both a model file and ``index.json`` in the data
directory can still substitute a model; the hash check protects against corruption, partial
writes and files that did not come from this registry, not against a user's own account.

Blocking: file I/O on the calling thread; call from a worker thread when models are large.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^v[0-9]{1,6}$")
INDEX_VERSION = 1


class ModelRegistryError(RuntimeError):
    """A model cannot be stored or loaded; the message says why."""


class UnknownModelError(ModelRegistryError):
    """No such model name or version in the registry's index."""


class TamperedModelError(ModelRegistryError):
    """The model file's SHA-256 does not match the registry's index: refused, not loaded."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: str
    sha256: str
    created_at: str
    feature_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    info: ModelVersion
    estimator: Any


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRegistry:
    """Stores and loads model versions under ``root`` (e.g. ``<data_dir>/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- index ---------------------------------------------------------------------------------
    def _index_path(self) -> Path:
        return self.root / "index.json"

    def _read_index(self) -> dict[str, dict[str, dict[str, Any]]]:
        path = self._index_path()
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelRegistryError(f"model index {path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            raise ModelRegistryError(f"model index {path} has an unsupported format")
        models = data.get("models")
        if not isinstance(models, dict):
            raise ModelRegistryError(f"model index {path} has no 'models' object")
        for name, versions in models.items():
            if not isinstance(versions, dict) or not all(
                isinstance(e, dict) and _VERSION.match(v) for v, e in versions.items()
            ):
                raise ModelRegistryError(f"model index {path} has a malformed entry for {name!r}")
        return models

    def _write_index(self, models: dict[str, dict[str, dict[str, Any]]]) -> None:
        payload = json.dumps({"version": INDEX_VERSION, "models": models}, indent=1, sort_keys=True)
        _atomic_write(self._index_path(), payload.encode("utf-8"))

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME.match(name):
            raise ModelRegistryError(f"invalid model name {name!r} (letters, digits, _ . -; max 64)")

    def _file(self, name: str, version: str) -> Path:
        self._check_name(name)
        if not _VERSION.match(version):
            raise ModelRegistryError(f"invalid model version {version!r} (expected v<number>)")
        return self.root / name / f"{version}.pkl"

    # -- API -----------------------------------------------------------------------------------
    def save(
        self,
        name: str,
        estimator: Any,
        *,
        feature_names: tuple[str, ...],
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store ``estimator`` as the next version of ``name``; returns its record."""
        if not hasattr(estimator, "predict_proba"):
            raise ModelRegistryError(f"model {name!r} has no predict_proba; only classifiers are stored")
        self._check_name(name)
        models = self._read_index()
        versions = models.setdefault(name, {})
        numbers = [int(v[1:]) for v in versions if _VERSION.match(v)]
        version = f"v{max(numbers, default=0) + 1}"
        path = self._file(name, version)
        data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(data).hexdigest()
        _atomic_write(path, data)
        record = ModelVersion(
            name=name,
            version=version,
            sha256=digest,
            created_at=datetime.now(UTC).isoformat(),
            feature_names=tuple(feature_names),
            metadata=dict(metadata or {}),
        )
        versions[version] = {
            "sha256": record.sha256,
            "created_at": record.created_at,
            "feature_names": list(record.feature_names),
            "metadata": record.metadata,
        }
        self._write_index(models)
        return record

    def names(self) -> list[str]:
        return sorted(self._read_index())

    def versions(self, name: str) -> list[ModelVersion]:
        self._check_name(name)
        entries = self._read_index().get(name)
        if not entries:
            raise UnknownModelError(f"no model named {name!r} in the registry")
        return sorted(
            (self._record(name, v, e) for v, e in entries.items()), key=lambda r: int(r.version[1:])
        )

    def latest(self, name: str) -> ModelVersion:
        return self.versions(name)[-1]

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load a registered version (latest when ``version`` is None) after checking its hash."""
        info = self.latest(name) if version is None else self._lookup(name, version)
        path = self._file(name, info.version)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelRegistryError(f"model file for {name} {info.version} is missing: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != info.sha256:
            raise TamperedModelError(
                f"model {name} {info.version} refused: file SHA-256 {digest[:12]}… does not match the "
                f"registry's {info.sha256[:12]}… (modified or replaced outside the registry)"
            )
        estimator = pickle.loads(data)  # only verified bytes written by this registry
        if not hasattr(estimator, "predict_proba"):
            raise ModelRegistryError(f"model {name} {info.version} has no predict_proba")
        return LoadedModel(info, estimator)

    def _lookup(self, name: str, version: str) -> ModelVersion:
        self._file(name, version)  # validates the spelling
        entries = self._read_index().get(name)
        if not entries:
            raise UnknownModelError(f"no model named {name!r} in the registry")
        entry = entries.get(version)
        if entry is None:
            raise UnknownModelError(
                f"model {name!r} has no version {version!r} in the registry (known: {', '.join(entries)})"
            )
        return self._record(name, version, entry)

    @staticmethod
    def _record(name: str, version: str, entry: dict[str, Any]) -> ModelVersion:
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ModelRegistryError(f"model index entry {name} {version} has no valid sha256")
        features, metadata = entry.get("feature_names", ()), entry.get("metadata") or {}
        if (
            not isinstance(features, list | tuple)
            or not all(isinstance(f, str) for f in features)
            or not isinstance(metadata, dict)
        ):
            raise ModelRegistryError(
                f"model index entry {name} {version} has malformed feature names or metadata"
            )
        return ModelVersion(
            name=name,
            version=version,
            sha256=sha,
            created_at=str(entry.get("created_at", "")),
            feature_names=tuple(entry.get("feature_names", ())),
            metadata=dict(entry.get("metadata") or {}),
        )
