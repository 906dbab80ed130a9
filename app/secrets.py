"""API keys in the OS keyring, and nowhere else.

One keyring entry per profile and mode: service ``heron-terminal``, username ``<profile>:<mode>``,
password a JSON object ``{"key_id": ..., "secret": ...}``. Paper and live keys are separate entries
and cannot be mixed up. Local mode needs no keyring: its keys are generated per session.

Backends that would write secrets to disk in plain text or with home-made crypto
(everything from ``keyrings.alt``) are refused, as are keyring's ``fail`` and ``null`` backends;
:class:`KeyringUnavailableError` then says what to install, and local mode keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.domain.enums import Mode

SERVICE_NAME = "heron-terminal"

# Module prefixes of backends that are not a real OS keyring.
_REFUSED_MODULE_PREFIXES = ("keyrings.alt",)
_REFUSED_BACKENDS = {"keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"}


class SecretStoreError(Exception):
    """A keyring operation failed; the message is fit to show a person."""


class KeyringUnavailableError(SecretStoreError):
    """No secure OS keyring backend is usable here (none installed, locked, or plaintext only)."""


class InsecureKeyringError(KeyringUnavailableError):
    """The only keyring available stores secrets in a file (keyrings.alt): refused."""


@dataclass(frozen=True)
class ApiKeys:
    """An Alpaca key pair. ``repr`` never shows the secret."""

    key_id: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not isinstance(self.secret, str):
            # e.g. null in a hand-edited session.json: a typed error, not an AttributeError crash.
            raise TypeError("key id and secret must be text")
        if not self.key_id.strip() or not self.secret.strip():
            raise ValueError("key id and secret must both be non-empty")

    @classmethod
    def from_json(cls, text: str) -> ApiKeys:
        try:
            data = json.loads(text)
            return cls(key_id=str(data["key_id"]), secret=str(data["secret"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SecretStoreError(
                'stored keys are not a JSON object {"key_id": ..., "secret": ...}'
            ) from exc

    def to_json(self) -> str:
        return json.dumps({"key_id": self.key_id, "secret": self.secret})


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_refused(backend: Any) -> bool:
    name = _qualname(backend)
    return name in _REFUSED_BACKENDS or name.startswith(_REFUSED_MODULE_PREFIXES)


def choose_backend(backend: Any) -> Any:
    """The secure backend to use given keyring's choice (a chainer is searched); raises if none."""
    members = list(getattr(backend, "backends", None) or [backend])
    if hasattr(backend, "backends"):
        members.sort(key=lambda b: getattr(b, "priority", 0), reverse=True)
    usable = [b for b in members if not is_refused(b)]
    if usable:
        return usable[0]
    names = ", ".join(_qualname(b) for b in members) or "none"
    if any(_qualname(b).startswith(_REFUSED_MODULE_PREFIXES) for b in members):
        raise InsecureKeyringError(
            f"the only keyring backend available ({names}) stores secrets in a file, which Heron "
            "refuses. Install and unlock an OS keyring (gnome-keyring or KWallet via Secret Service), "
            "or use --mode local"
        )
    raise KeyringUnavailableError(
        f"no OS keyring is available (backend: {names}). Paper and live modes keep their keys in "
        "the OS keyring: install and unlock gnome-keyring or KWallet (Secret Service), or use --mode local"
    )


def username_for(profile: str, mode: Mode) -> str:
    return f"{profile}:{mode.value}"


class SecretStore:
    """Reads and writes API keys through a secure keyring backend.

    Blocking: every method may block on D-Bus (call from a worker thread in async code).
    ``on_secret`` is called with every secret read or written, so the log redactor masks it.
    """

    def __init__(self, backend: Any | None = None, on_secret: Callable[[str], None] | None = None) -> None:
        self._explicit = backend
        self._on_secret = on_secret

    def backend(self) -> Any:
        """The backend in use; raises :class:`KeyringUnavailableError` when none is acceptable."""
        if self._explicit is not None:
            return choose_backend(self._explicit)
        import keyring

        return choose_backend(keyring.get_keyring())

    def describe(self) -> str:
        return _qualname(self.backend())

    @staticmethod
    def _check_mode(mode: Mode) -> None:
        if mode is Mode.LOCAL:
            raise SecretStoreError("local mode generates its keys per session; nothing is stored")

    def load(self, profile: str, mode: Mode) -> ApiKeys | None:
        self._check_mode(mode)
        backend = self.backend()
        try:
            text = backend.get_password(SERVICE_NAME, username_for(profile, mode))
        except Exception as exc:
            raise SecretStoreError(f"the keyring could not be read: {type(exc).__name__}: {exc}") from None
        if text is None:
            return None
        keys = ApiKeys.from_json(text)
        self._notify(keys)
        return keys

    def save(self, profile: str, mode: Mode, keys: ApiKeys) -> None:
        self._check_mode(mode)
        self._notify(keys)
        backend = self.backend()
        try:
            backend.set_password(SERVICE_NAME, username_for(profile, mode), keys.to_json())
        except Exception as exc:
            raise SecretStoreError(f"the keyring could not store the keys: {type(exc).__name__}") from None

    def delete(self, profile: str, mode: Mode) -> bool:
        """Remove the entry; returns False when there was none."""
        self._check_mode(mode)
        backend = self.backend()
        import keyring.errors

        try:
            backend.delete_password(SERVICE_NAME, username_for(profile, mode))
        except keyring.errors.PasswordDeleteError:
            return False
        except Exception as exc:
            raise SecretStoreError(f"the keyring could not delete the keys: {type(exc).__name__}") from None
        return True

    def _notify(self, keys: ApiKeys) -> None:
        if self._on_secret is not None:
            self._on_secret(keys.secret)
            self._on_secret(keys.key_id)
