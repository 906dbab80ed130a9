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


class _Client:
    """A Dask client whose workers have Heron's code and whose scheduler may not."""

    def __init__(self, scheduler: Exception | dict[str, str]) -> None:
        self.scheduler = scheduler

    def wait_for_workers(self, _n: int, timeout: float) -> None:
        pass

    def run_on_scheduler(self, _fn: object) -> dict[str, str]:
        if isinstance(self.scheduler, Exception):
            raise self.scheduler
        return self.scheduler

    def run(self, _fn: object, on_error: str) -> dict[str, object]:
        return {"tcp://127.0.0.1:4000": versions()}


def test_a_scheduler_without_herons_code_is_refused_at_connect_saying_how_to_start_it() -> None:
    """Every point failed with "No module named 'services'" when only the workers had Heron's code:
    the scheduler unpickles the tasks too."""
    from services.lab.cluster import Cluster

    client = _Client(ModuleNotFoundError("No module named 'services'"))
    with pytest.raises(ClusterError) as caught:
        Cluster._check_versions(client)
    text = str(caught.value)
    assert "the Dask scheduler cannot run Heron's code" in text and "No module named 'services'" in text
    repo = Path(__file__).resolve().parents[3]
    assert "start the scheduler and workers from Heron's folder with PYTHONPATH set to it" in text
    assert f"PYTHONPATH={repo}" in text
    with pytest.raises(ClusterError, match=re.escape("the scheduler runs heron abc")):
        Cluster._check_versions(_Client({**versions(), "heron": "abc"}))
    Cluster._check_versions(_Client(versions()))  # the same code everywhere: accepted


def test_the_tcp_refusal_names_the_flag_that_accepts_it() -> None:
    with pytest.raises(ClusterError) as caught:
        check_settings(LabSettings(scheduler="tcp://10.1.2.3:8786"))
    assert "--allow-insecure-tcp" in str(caught.value) and "Settings → Strategy lab" in str(caught.value)


def test_an_address_where_nothing_listens_is_refused_at_once_naming_what_to_start() -> None:
    """Dask's client retries a refused connection until its 10 s timeout; a wrong port or a
    scheduler not started yet is said as soon as the host refuses the connection."""
    import socket

    from services.lab.cluster import Cluster, ClusterError, refusal

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterError) as refused:
        Cluster(LabSettings(scheduler=f"tcp://127.0.0.1:{port}")).client()
    assert str(refused.value) == (
        f"nothing is listening at tcp://127.0.0.1:{port} (connection refused): start the scheduler "
        "there (`dask scheduler`), or check the host and port"
    )
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert refusal(f"tcp://127.0.0.1:{listening.getsockname()[1]}") is None


def test_a_server_that_is_not_a_dask_scheduler_is_refused_in_bounded_time_and_hears_a_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An HTTP server at the scheduler's address took Dask's greeting and waited for more: the sweep
    neither failed nor heard Ctrl+C (11 minutes seen). The connect is bounded, a cancel is heard
    within a tenth of a second, and the message says the address does not speak Dask's protocol."""
    import http.server
    import threading
    import time

    import services.lab.cluster as cluster_module
    from services.lab.cluster import Cluster, ConnectCancelled

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(cluster_module, "CONNECT_GRACE_S", 1.0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(ClusterError) as refused:
            Cluster(LabSettings(scheduler=address)).client()
        assert address in str(refused.value)
        assert "Dask" in str(refused.value) and not isinstance(refused.value, ConnectCancelled)
        asked = time.monotonic() + 0.3
        with pytest.raises(ConnectCancelled):
            Cluster(LabSettings(scheduler=address)).client(cancelled=lambda: time.monotonic() > asked)
    finally:
        server.shutdown()
        server.server_close()
