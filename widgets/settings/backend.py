"""What the settings dialog needs from outside the widgets, as small protocols: the settings files
(check, save atomically, create a profile; the risk keys and themes they know) and the keyring.
The composition root implements them (``app/qt/settings_access.py``); tests may too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from services.domain.enums import Mode
from widgets import theme
from widgets.theme import DARK

#: ``validator(key_id, secret, environment)`` → the account's identity, or raises a clear error.
Validator = Callable[[str, str, str], Awaitable[Any]]

ERROR_COLOR = DARK["down"]
MUTED_COLOR = DARK["muted"]
OK_COLOR = DARK["up"]
#: A connection test under way.
PENDING_COLOR = theme.PENDING


class Keys(Protocol):
    """An API key pair (the secret is never shown)."""

    @property
    def key_id(self) -> str: ...

    @property
    def secret(self) -> str: ...


class KeyStore(Protocol):
    """The OS keyring, one entry per profile and mode. Blocking: called off the GUI thread."""

    def load(self, profile: str, mode: Mode) -> Keys | None: ...

    def save(self, profile: str, mode: Mode, keys: Any) -> None:
        """``keys`` as made by :meth:`SettingsBackend.keys`."""

    def delete(self, profile: str, mode: Mode) -> bool: ...


class SettingsBackend(Protocol):
    """The settings files behind the dialog."""

    @property
    def themes(self) -> Sequence[str]: ...

    @property
    def int_risk_keys(self) -> Sequence[str]:
        """Risk limits that are whole numbers."""

    @property
    def list_risk_keys(self) -> Sequence[str]:
        """Risk limits that are lists of symbols."""

    def keys(self, key_id: str, secret: str) -> Keys:
        """A key pair to store; raises ValueError when either part is empty."""

    def save(self, data: dict[str, Any], path: Path) -> tuple[Any | None, str | None]:
        """Check the whole settings document and write it atomically: ``(settings, None)``, or
        ``(None, why)`` when nothing was saved."""

    def create_profile(self, name: str, data_root: Path) -> str | None:
        """Create the profile ``name`` with default settings; None, or why it could not be."""
