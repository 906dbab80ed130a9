"""Which scheduler addresses a sweep accepts, and how a version mismatch is worded."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from services.lab.cluster import ClusterError, LabSettings, check_settings
from services.lab.versions import mismatches, versions


def test_loopback_tcp_and_complete_tls_are_accepted(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    check_settings(LabSettings())
    check_settings(LabSettings(scheduler="tcp://127.0.0.1:8786"))
    check_settings(LabSettings(scheduler="tcp://localhost:8786"))
    check_settings(LabSettings(scheduler="tcp://[::1]:8786"))
    check_settings(LabSettings(scheduler="tcp://10.1.2.3:8786", allow_insecure_tcp=True))
    check_settings(LabSettings(scheduler="tls://dask.example:8786", tls_ca=tmp_path / "ca.pem",
                               tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem"))  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (LabSettings(scheduler="tcp://10.1.2.3:8786"), "no authentication"),
        (LabSettings(scheduler="tcp://dask.example:8786"), "no authentication"),
        (LabSettings(scheduler="tls://dask.example:8786"), "needs the CA, certificate, key file(s)"),
        (LabSettings(scheduler="http://127.0.0.1:8786"), "expected tls://HOST:PORT"),
        (LabSettings(scheduler="tcp://127.0.0.1"), "expected tls://HOST:PORT"),
        (LabSettings(workers=0), "a local cluster takes 1 to"),
        # one worker process per CPU at most: 500 of them brought a 2-core machine to a load of 90
        (LabSettings(workers=(os.cpu_count() or 1) + 1), "for more, run a Dask cluster"),
    ],
)
def test_unsafe_or_malformed_settings_are_refused(settings: LabSettings, needle: str) -> None:
    with pytest.raises(ClusterError, match=re.escape(needle)):
        check_settings(settings)


def test_a_mismatch_names_the_worker_and_each_differing_version() -> None:
    here = versions()
    assert set(here) == {"python", "dask", "distributed", "cloudpickle", "heron"}
    theirs = {
        "tcp://10.0.0.9:4000": {**here, "heron": "abc", "dask": "1.0"},
        "tcp://10.0.0.8:4000": dict(here),
    }
    assert mismatches(here, theirs) == [
        f"worker tcp://10.0.0.9:4000 runs dask 1.0 (here {here['dask']}), heron abc (here {here['heron']})"
    ]
