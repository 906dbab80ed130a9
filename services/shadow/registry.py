"""Model registry: versioned scikit-learn models in the data directory, checked by SHA-256.

Models live in ``<root>/<name>/<version>.pkl`` (folders 0700, files 0600). Their expected
SHA-256, feature names and metadata live in a :class:`ModelIndex` the caller chooses. Heron itself
keeps them in its own database (:class:`DatabaseModelIndex`, table ``shadow_models``), never beside
the model files: whoever can write the models folder cannot also vouch for what is in it.
:class:`FileModelIndex` (``<root>/index.json``) is for tools and tests that trust the folder.

Loading rules (pickle can run arbitrary code, so these are strict):

* Only a (name, version) listed in the index is ever loaded; the file path is derived from the
  validated name and version, never taken from the index or from a caller. A file dropped into the
  directory by anyone else is therefore never opened.
* The bytes are read once (refused unread above :data:`MAX_MODEL_BYTES`), hashed, compared with the
  index's SHA-256, and only those verified bytes are unpickled. A mismatch raises
  :class:`TamperedModelError` naming the model; nothing is unpickled.
* The unpickled object must offer ``predict_proba``.

Limit, said plainly: someone who can rewrite both a model file and Heron's database can still
substitute a model; that is the user's own account, not something a file format can defend.

Blocking: file and database I/O on the calling thread; call from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, Text, insert, select

from services.storage.engine import Database
from services.storage.errors import describe_db_error
from services.storage.files import FileTooLargeError, atomic_write_bytes, read_bounded
from services.storage.schema import Migration, Schema

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^v[0-9]{1,6}$")
INDEX_VERSION = 1
#: A shadow model is a few megabytes; a larger file is refused unread.
MAX_MODEL_BYTES = 256 * 1024 * 1024
MAX_INDEX_BYTES = 16 * 1024 * 1024
_DIR_MODE = 0o700

Entries = dict[str, dict[str, dict[str, Any]]]


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
    path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    """The file's bytes, refused unread when larger than ``limit`` or not a regular file."""
    try:
        return read_bounded(path, limit, what)
    except FileTooLargeError as exc:
        raise ModelRegistryError(f"{exc}; refused") from exc


class ModelIndex(Protocol):
    """Where a registry keeps each version's SHA-256 and description."""

    def entries(self) -> Entries:
        """``{name: {version: {"sha256", "created_at", "feature_names", "metadata"}}}``."""
        ...

    def add(self, name: str, version: str, entry: dict[str, Any]) -> None: ...


class MemoryModelIndex:
    """An index for one session only (Heron without a database): models trained now, loaded now."""

    def __init__(self) -> None:
        self._models: Entries = {}

    def entries(self) -> Entries:
        return json.loads(json.dumps(self._models))  # a copy the caller may change

    def add(self, name: str, version: str, entry: dict[str, Any]) -> None:
        self._models.setdefault(name, {})[version] = json.loads(json.dumps(entry))


class FileModelIndex:
    """``index.json`` beside the models: only as trustworthy as the folder it is in (tools, tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> Entries:
        path = self.path
        if not path.exists():
            return {}
        try:
            data = json.loads(_read_limited(path, MAX_INDEX_BYTES, "model index").decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ModelRegistryError(f"model index {path} is unreadable: {str(exc)[:200]}") from None
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

    def add(self, name: str, version: str, entry: dict[str, Any]) -> None:
        models = self.entries()
        models.setdefault(name, {})[version] = entry
        payload = json.dumps({"version": INDEX_VERSION, "models": models}, indent=1, sort_keys=True)
        _atomic_write(self.path, payload.encode("utf-8"))


# -- the index in Heron's database -------------------------------------------------------------------

metadata = MetaData()
shadow_models = Table(
    "shadow_models",
    metadata,
    Column("name", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("feature_names", Text(), nullable=False),  # JSON list of strings
    Column("metadata", Text(), nullable=False),  # JSON object
    PrimaryKeyConstraint("name", "version", name="pk_shadow_models"),
)


def _v1_create_shadow_models(conn: Connection) -> None:
    # Frozen copy of version 1 (see services.storage.schema): never edit; add a migration instead.
    m = MetaData()
    Table(
        "shadow_models",
        m,
        Column("name", String(64), nullable=False),
        Column("version", String(16), nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("feature_names", Text(), nullable=False),
        Column("metadata", Text(), nullable=False),
        PrimaryKeyConstraint("name", "version", name="pk_shadow_models"),
    )
    m.create_all(conn)


SHADOW_MODELS_SCHEMA: Final = Schema(
    "shadow_models", (Migration(1, "shadow model hashes", _v1_create_shadow_models),)
)


class DatabaseModelIndex:
    """The index in Heron's database (needs :data:`SHADOW_MODELS_SCHEMA`): the models folder alone
    can never vouch for a model."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def entries(self) -> Entries:
        out: Entries = {}
        with self.db.connect() as conn:
            rows = conn.execute(select(shadow_models)).mappings().all()
        for row in rows:
            try:
                features, meta = json.loads(row["feature_names"]), json.loads(row["metadata"])
            except (ValueError, RecursionError):
                features, meta = None, None  # refused by the registry's record check, naming it
            out.setdefault(row["name"], {})[row["version"]] = {
                "sha256": row["sha256"],
                "created_at": row["created_at"],
                "feature_names": features,
                "metadata": meta,
            }
        return out

    def add(self, name: str, version: str, entry: dict[str, Any]) -> None:
        with self.db.begin(write_lock=True) as conn:
            conn.execute(
                insert(shadow_models).values(
                    name=name,
                    version=version,
                    sha256=entry["sha256"],
                    created_at=entry["created_at"],
                    feature_names=json.dumps(entry["feature_names"]),
                    metadata=json.dumps(entry["metadata"]),
                )
            )


class ModelRegistry:
    """Stores and loads model versions under ``root`` (e.g. ``<data_dir>/models``)."""

    def __init__(self, root: Path, index: ModelIndex | None = None) -> None:
        self.root = root
        self.index: ModelIndex = index if index is not None else FileModelIndex(root / "index.json")

    # -- index ---------------------------------------------------------------------------------
    def _read_index(self) -> Entries:
        try:
            return self.index.entries()
        except ModelRegistryError:
            raise
        except Exception as exc:  # a database error: said, never a model loaded without its hash
            raise ModelRegistryError(f"the model index cannot be read: {exc}") from exc

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
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
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
        try:
            self.index.add(
                name,
                version,
                {
                    "sha256": record.sha256,
                    "created_at": record.created_at,
                    "feature_names": list(record.feature_names),
                    "metadata": record.metadata,
                },
            )
        except Exception as exc:  # a full disk, a locked database: the file without its hash is useless
            path.unlink(missing_ok=True)
            why = describe_db_error(exc) if not isinstance(exc, ModelRegistryError) else str(exc)
            raise ModelRegistryError(f"model {name} {version} not recorded in the index: {why}") from exc
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
            data = _read_limited(path, MAX_MODEL_BYTES, f"model {name} {info.version}:")
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
