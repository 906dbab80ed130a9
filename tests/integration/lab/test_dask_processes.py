"""Against a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (started here, on
free ports): the headless sweep completes and its report parses; a scheduler that dies mid-sweep
ends the sweep FAILED with the points done still stored."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.lab.cluster import LabSettings
from services.lab.coordinator import SweepRunner
from services.lab.model import SweepState
from services.lab.spec import parse_spec
from services.lab.store import SweepStore
from services.storage import Database
from tests.support.polling import wait_for
from tests.unit.lab.support import NOW, Recorder, history, loader, registry, spec_data, trace_lines

REPO = Path(__file__).resolve().parents[3]
DASK = Path(sys.executable).with_name("dask")
#: Polling bounds, not speed claims.
START_WITHIN = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DaskProcesses:
    address: str
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([str(DASK), *args], cwd=REPO, env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def start_cluster(cluster: DaskProcesses, tls: tuple[str, ...] = (), security: Any = None) -> None:
    port = cluster.address.rsplit(":", 1)[1]
    protocol = ("--protocol", "tls") if tls else ()
    cluster.start("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard", *protocol, *tls,
                  name="scheduler")  # fmt: skip
    for i in range(2):
        args = ("--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1", "--no-dashboard", *tls)
        cluster.start("worker", cluster.address, *args, "--name", f"w{i}", name=f"worker{i}")
    from distributed import Client

    def ready() -> bool:
        try:
            with Client(cluster.address, timeout=2, set_as_default=False, security=security) as client:
                return len(client.scheduler_info()["workers"]) == 2
        except OSError:
            return False

    wait_for("the scheduler and its two workers", ready, START_WITHIN, every=0.2)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskProcesses]:
    cluster = DaskProcesses(f"tcp://127.0.0.1:{free_port()}", tmp_path)
    try:
        start_cluster(cluster)
        yield cluster
    finally:
        cluster.stop()


def test_a_headless_sweep_runs_on_a_real_scheduler_and_writes_its_report(
    dask_cluster: DaskProcesses, tmp_path: Path
) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(
        {"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 3, "timeframe": "1Min", "search": "grid",
         "space": {"fast": [2, 3, 5], "slow": [10, 20]}}
    ))  # fmt: skip
    report = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--data-dir", str(tmp_path / "heron"),
         "--sweep", str(spec_file), "--sweep-report", str(report), "--scheduler", dask_cluster.address],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(report.read_text())
    assert data["strategy"] == "sma_crossover" and data["search"] == "grid"
    assert (data["total"], data["completed"], data["errors"], data["workers"]) == (6, 6, 0, 2)
    assert len(data["points"]) == 6
    assert {(p["params"]["fast"], p["params"]["slow"]) for p in data["points"]} == {
        (f, s) for f in (2, 3, 5) for s in (10, 20)
    }
    for p in data["points"]:
        assert {"total_return", "sharpe", "max_drawdown", "trades"} <= set(p["metrics"])
        assert p["worker"].startswith("tcp://127.0.0.1:")
    assert {p["worker"] for p in data["points"]} <= {w for w in _workers(dask_cluster.address)}
    best = max(
        data["points"], key=lambda p: p["metrics"]["sharpe"] if p["metrics"]["sharpe"] is not None else -1e9
    )
    assert data["best"]["params"] == best["params"]
    assert data["elapsed_s"] > 0 and isinstance(data["sweep_id"], str)


def _workers(address: str) -> list[str]:
    from distributed import Client

    with Client(address, timeout=5, set_as_default=False) as client:
        return list(client.scheduler_info()["workers"])


@pytest.mark.expected_log(r"the Dask scheduler went away")
def test_a_dead_scheduler_fails_the_sweep_and_keeps_the_points_done(
    dask_cluster: DaskProcesses, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    db = Database.open(None, tmp_path / "db")
    runner = SweepRunner(SweepStore(db), loader(history(40_000, ("BIG",))),
                         LabSettings(scheduler=dask_cluster.address), registry())  # fmt: skip
    data = spec_data(strategy="traced_sma", symbols=["BIG"], fixed={"trace": str(trace)},
                     space={"fast": [2, 3, 4, 5, 6, 7], "slow": [10, 20]})  # fmt: skip
    spec = parse_spec(data, registry(), now=NOW)
    listener = Recorder()
    try:
        handle = runner.start(spec, listener)
        wait_for("two points done", lambda: len(listener.points) >= 2, START_WITHIN)
        dask_cluster.procs[0].send_signal(signal.SIGKILL)  # the scheduler
        outcome = handle.wait(120)
    finally:
        with contextlib.suppress(Exception):
            runner.close()
        db.dispose()
    assert outcome is not None and outcome.state is SweepState.FAILED
    assert "the Dask scheduler went away" in outcome.message
    stored = SweepStore(Database.open(None, tmp_path / "db")).results(outcome.sweep_id)
    assert len(stored) == outcome.completed >= 2
    assert len(stored) < 12 and len(trace_lines(trace)) >= len(stored)


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and one certificate it signed for 127.0.0.1 (scheduler, workers and Heron share it)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    start, stop = now - dt.timedelta(minutes=1), now + dt.timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heron test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(start).not_valid_after(stop)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heron")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(start).not_valid_after(stop)
        .add_extension(names, critical=False).add_extension(usage, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return paths


def test_a_sweep_runs_on_a_tls_scheduler_with_certificates(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from distributed.security import Security

    ca, cert, key = write_certificates(tmp_path)
    security = Security(tls_ca_file=str(ca), tls_client_cert=str(cert), tls_client_key=str(key),
                        require_encryption=True)  # fmt: skip
    cluster = DaskProcesses(f"tls://127.0.0.1:{free_port()}", tmp_path)
    db = Database.open(None, tmp_path / "db")
    try:
        start_cluster(
            cluster, ("--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)), security
        )
        settings = LabSettings(scheduler=cluster.address, tls_ca=ca, tls_cert=cert, tls_key=key)
        runner = SweepRunner(SweepStore(db), loader(history(2_000)), settings, registry())
        try:
            outcome = runner.start(parse_spec(spec_data(), registry(), now=NOW), Recorder()).wait(120)
        finally:
            runner.close()
    finally:
        cluster.stop()
        db.dispose()
    assert outcome is not None and outcome.state is SweepState.COMPLETED, outcome
    assert outcome.completed == 6 and outcome.workers == 2
