"""The settings file's ``lab`` section: where the Strategy lab runs sweeps. Kept apart from
:mod:`app.settings`, which holds it as ``Settings.lab`` and turns this module's ValueError into its
SettingsError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Dask scheduler address schemes the lab connects to (plain tcp:// only on loopback unless
#: ``allow_insecure_tcp``: a plain Dask scheduler has no authentication)
LAB_SCHEMES = ("tcp://", "tls://")
MAX_LAB_WORKERS = 512
_TEXTS = ("scheduler", "tls_ca", "tls_cert", "tls_key")


@dataclass
class LabSettings:
    """Where the Strategy lab runs sweeps: empty ``scheduler`` is a local cluster on this computer
    of ``workers`` processes (0: cores − 1, at least 1); otherwise that Dask scheduler, with the
    TLS files a ``tls://`` one needs."""

    scheduler: str = ""
    workers: int = 0
    allow_insecure_tcp: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


def lab_from_dict(raw: dict[str, Any]) -> LabSettings:
    """The checked section; ValueError names the setting that is wrong."""
    unknown = sorted(set(raw) - {*_TEXTS, "workers", "allow_insecure_tcp"})
    if unknown:
        raise ValueError(f"lab has unknown setting(s) {unknown}")
    texts: dict[str, str] = {}
    for key in _TEXTS:
        value = raw.get(key, "")
        if not isinstance(value, str) or len(value) > 1000:
            raise ValueError(f"lab.{key} must be text, got {value!r}")
        texts[key] = value.strip()
    if texts["scheduler"] and not texts["scheduler"].startswith(LAB_SCHEMES):
        raise ValueError(
            "lab.scheduler must be empty (a local cluster) or a Dask address such as tls://host:8786, "
            f"got {texts['scheduler']!r}"
        )
    workers = raw.get("workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= MAX_LAB_WORKERS:
        raise ValueError(
            f"lab.workers must be a whole number from 0 (automatic) to {MAX_LAB_WORKERS}, got {workers!r}"
        )
    insecure = raw.get("allow_insecure_tcp", False)
    if not isinstance(insecure, bool):
        raise ValueError(f"lab.allow_insecure_tcp must be true or false, got {insecure!r}")
    return LabSettings(workers=workers, allow_insecure_tcp=insecure, **texts)
