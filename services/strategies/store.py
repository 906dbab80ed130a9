"""Strategy state persistence: one JSON file in the data directory, written atomically.

Why a file and not a table: strategy state is small, changes rarely (start/stop, fills, signal
changes) and must survive even when the database is being migrated. The write is atomic
(temporary file in the same directory, fsync, ``os.replace``), so a crash leaves either the old or
the new file, never half of one. A corrupt file is moved aside (``.corrupt-<n>``) and reported, not
silently overwritten.

Blocking: ``save`` does a small synchronous write; callers on the event loop call it only on
lifecycle changes and fills, never per bar.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from services.storage.files import atomic_write_bytes, read_bounded

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Saved strategy state is small; a larger file is moved aside unread.
MAX_STATE_BYTES = 16 * 1024 * 1024


class StrategyStateError(RuntimeError):
    """The state file exists but cannot be read."""


class StrategyStateStore:
    """Reads and writes ``<data_dir>/strategies/state.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> StrategyStateStore:
        return cls(data_dir / "strategies" / "state.json")

    def load(self) -> dict[str, dict[str, Any]]:
        """Return ``{strategy name: saved record}``; empty when nothing was saved yet."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(read_bounded(self.path, MAX_STATE_BYTES, "strategy state").decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported format version {data.get('version')!r}")
            strategies = data["strategies"]
            if not isinstance(strategies, dict):
                raise ValueError("'strategies' is not an object")
            bad = [name for name, rec in strategies.items() if not isinstance(rec, dict)]
            if bad:
                # The runner reads each record as an object; one null would crash start-up.
                raise ValueError(f"the record of {bad[0]!r} is not an object")
            return strategies
        except (OSError, ValueError, KeyError) as exc:
            aside = self._move_aside()
            raise StrategyStateError(
                f"strategy state file {self.path} is unreadable ({exc}); moved to {aside}"
            ) from exc

    def save(self, strategies: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": FORMAT_VERSION, "strategies": strategies}, indent=1, sort_keys=True)
        atomic_write_bytes(self.path, payload.encode("utf-8"))

    def _move_aside(self) -> Path:
        n = 1
        while (aside := self.path.with_name(f"{self.path.name}.corrupt-{n}")).exists():
            n += 1
        try:
            os.replace(self.path, aside)
        except OSError:
            log.exception("could not move the unreadable strategy state file aside")
        return aside
