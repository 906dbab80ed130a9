"""Where sweeps run: a Dask cluster, local by default, any scheduler by address.

- No address: a ``LocalCluster`` of ``max(1, cores - 1)`` worker *processes* with one thread each
  (the backtest is pure Python: threads would share one GIL), listening on 127.0.0.1 only, started on
  the first sweep and reused by later ones until :meth:`Cluster.close`.
- An address: ``tls://`` with the user's CA, certificate and key (a Dask scheduler has no other
  authentication); plain ``tcp://`` only on a loopback address, unless the user insists
  (``allow_insecure_tcp``): anyone who reaches an open scheduler runs code on its workers.

On connect, every worker's Python, dask, distributed, cloudpickle and Heron code version are compared
with the coordinator's; a mismatch is refused with :class:`ClusterError` naming the worker and the
versions. The client is synchronous (Dask's asynchronous client does not run on the GUI's qasync
loop): use it from the coordinator thread.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from distributed.diagnostics.plugin import WorkerPlugin

from services.domain.hosts import is_loopback
from services.lab import versions

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
#: What Dask may take beyond its own connect timeout (its greeting, registering the client) (s).
CONNECT_GRACE_S: Final = 5.0
#: How long a sweep waits for a first worker (a local cluster's workers start in about a second).
WORKERS_TIMEOUT_S: Final = 30.0


class ClusterError(RuntimeError):
    """The cluster cannot be used (refused address, unreachable scheduler, version mismatch)."""


@dataclass(frozen=True, slots=True)
class LabSettings:
    scheduler: str | None = None  # None: a local cluster
    workers: int | None = None  # local cluster size; None: cores - 1 (at least 1)
    allow_insecure_tcp: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def max_local_workers() -> int:
    """The most local workers: one per CPU. Each is a process (some 50 MB) running one backtest at a
    time on one core; more processes than cores only share the cores, slower for everyone (500 of
    them brought a 2-core machine to a load of 90)."""
    return max(1, os.cpu_count() or 1)


def local_workers_problem(workers: int) -> str | None:
    """Why ``workers`` local workers cannot be started, or None."""
    most = max_local_workers()
    if not 1 <= workers <= most:
        return (
            f"a local cluster takes 1 to {most} workers on this computer ({most} CPU cores, one "
            f"worker process each), got {workers}; for more, run a Dask cluster and give its "
            "scheduler address"
        )
    return None


def check_settings(settings: LabSettings) -> None:
    """Refuse an unsafe or malformed scheduler address, or a local cluster larger than this
    computer, before anything connects or starts."""
    if settings.workers is not None and settings.scheduler is None:
        problem = local_workers_problem(settings.workers)
        if problem is not None:
            raise ClusterError(problem)
    address = settings.scheduler
    if address is None:
        return
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tls", "tcp") or not parts.hostname or port is None:
        raise ClusterError(f"scheduler address {address!r}: expected tls://HOST:PORT (or tcp:// on loopback)")
    if parts.scheme == "tls":
        missing = [
            name
            for name, path in (
                ("CA", settings.tls_ca),
                ("certificate", settings.tls_cert),
                ("key", settings.tls_key),
            )
            if path is None or not Path(path).is_file()
        ]
        if missing:
            raise ClusterError(f"scheduler {address}: tls:// needs the {', '.join(missing)} file(s)")
    elif not is_loopback(parts.hostname) and not settings.allow_insecure_tcp:
        raise ClusterError(
            f"scheduler {address}: a plain tcp:// scheduler has no authentication, so anyone who reaches "
            "it runs code on its workers; use tls:// with certificates, or pass --allow-insecure-tcp (in the "
            "window: Settings → Strategy lab, 'Allow a plain tcp:// scheduler') to accept that"
        )


def refusal(address: str) -> str | None:
    """Why nothing can answer at ``address`` when its host says so at once (nothing listens on the
    port: connection refused), else None. Dask's client keeps retrying a refused connection until its
    timeout; a person who typed a wrong port or forgot to start the scheduler is told in a moment."""
    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        return None
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S):
            return None
    except ConnectionRefusedError:
        return (
            f"nothing is listening at {address} (connection refused): start the scheduler there "
            "(`dask scheduler`), or check the host and port"
        )
    except OSError:
        return None  # unreachable or slow: Dask's own connection says how


class ConnectCancelled(ClusterError):
    """The sweep was cancelled while its scheduler was being connected to."""


def connect_bounded(address: str, security: Any, cancelled: Callable[[], bool] | None) -> Any:
    """A client of the scheduler at ``address``, or :class:`ClusterError` within CONNECT_TIMEOUT_S
    plus a grace, whatever answers there. Dask's own connect can wait for ever on a server that is
    not a Dask scheduler (an HTTP server reads the greeting and waits for more) and then the sweep
    neither fails nor hears a cancel; it runs on a thread of its own here, and a late success is
    closed."""
    from distributed import Client

    box: dict[str, Any] = {}
    lock = threading.Lock()

    def connect() -> None:
        try:
            client = Client(address, security=security, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except BaseException as exc:  # whatever the peer made Dask raise (MemoryError on garbage)
            box["error"] = exc
            return
        with lock:
            if box.get("abandoned"):
                client.close()
                return
            box["client"] = client

    thread = threading.Thread(target=connect, name="heron-dask-connect", daemon=True)
    thread.start()
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + CONNECT_GRACE_S
    while True:
        thread.join(0.1)
        with lock:
            if "client" in box or "error" in box:
                break
            if cancelled is not None and cancelled():
                box["abandoned"] = True
                raise ConnectCancelled(f"cancelled while connecting to {address}")
            if time.monotonic() > deadline:
                box["abandoned"] = True
                waited = CONNECT_TIMEOUT_S + CONNECT_GRACE_S
                raise ClusterError(
                    f"no Dask scheduler answered at {address} within {waited:g} s: something listens "
                    "there, but it does not speak Dask's protocol (a wrong port?)"
                )
    error = box.get("error")
    if isinstance(error, (OSError, TimeoutError)):
        raise ClusterError(f"cannot reach the Dask scheduler {address}: {error}")
    if error is not None:
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise ClusterError(
            f"{address} did not answer as a Dask scheduler ({detail}); check the host and port"
        )
    return box["client"]


def code_hint() -> str:
    """How to give a Dask scheduler and its workers Heron's code (they unpickle its tasks)."""
    repo = Path(__file__).resolve().parents[2]
    return (
        "start the scheduler and workers from Heron's folder with PYTHONPATH set to it "
        f"(cd {repo} && PYTHONPATH={repo} uv run dask scheduler / dask worker ...)"
    )


class IgnoreInterrupt(WorkerPlugin):
    """Local workers share Heron's terminal: a Ctrl-C there is for Heron (which cancels the sweep
    and closes the cluster), not for each worker process to die of with a traceback."""

    name = "heron-ignore-interrupt"

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm() -> None:
    """Import what a point needs on a worker once, at connect, rather than inside the first point."""
    import services.lab.tasks
    import services.strategies.builtin  # noqa: F401


class Cluster:
    """Owns the synchronous Dask client (and the local cluster it may have started). Thread-safe."""

    def __init__(self, settings: LabSettings) -> None:
        check_settings(settings)
        self.settings = settings
        self._lock = threading.Lock()
        self._client: Any = None
        self._local: Any = None

    @property
    def is_local(self) -> bool:
        return self.settings.scheduler is None

    def client(self, cancelled: Callable[[], bool] | None = None) -> Any:
        """The connected client (starting the local cluster on first use), versions checked.
        ``cancelled()`` true while connecting to a scheduler: :class:`ConnectCancelled`."""
        with self._lock:
            if self._client is not None and self._client.status == "running":
                self._check_versions(self._client)
                return self._client
            self._drop()
            self._close_local()  # a local cluster whose client died is not reused
            client = self._connect(cancelled)
            try:
                self._check_versions(client)
            except ClusterError:
                self._client = client
                raise
            client.run(_warm, on_error="ignore")
            self._client = client
            return client

    def _connect(self, cancelled: Callable[[], bool] | None = None) -> Any:
        from distributed import Client, LocalCluster

        # Dask's INFO lines are its own bookkeeping (each connection, plugin and key cancelled: dozens
        # a second in the Log panel during a sweep); importing it set them to INFO. Warnings show.
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)

        if self.settings.scheduler is None:
            n = self.settings.workers or default_workers()
            log.info("starting a local Dask cluster of %d worker process(es) on 127.0.0.1", n)
            import dask

            # one task per worker thread at a time: a point queued behind another on a worker that
            # dies would be blamed for the death (KilledWorker) without having run
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                self._local = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    # the scheduler's HTTP endpoint (and dashboard, with bokeh) on a free loopback
                    # port: "None" still means the default 8787, shared by every Dask on the machine
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            client = Client(self._local, set_as_default=False)
            client.register_plugin(IgnoreInterrupt())
            return client
        refused = refusal(self.settings.scheduler)
        if refused is not None:
            raise ClusterError(refused)
        return connect_bounded(self.settings.scheduler, self._security(), cancelled)

    def _security(self) -> Any:
        if not (self.settings.scheduler or "").startswith("tls://"):
            return None
        from distributed.security import Security

        return Security(
            tls_ca_file=str(self.settings.tls_ca),
            tls_client_cert=str(self.settings.tls_cert),
            tls_client_key=str(self.settings.tls_key),
            require_encryption=True,
        )

    @staticmethod
    def _check_versions(client: Any) -> None:
        here = versions.versions()
        try:  # the scheduler unpickles every task, so it needs Heron's code importable too
            scheduler = client.run_on_scheduler(versions.versions)
        except Exception as exc:
            raise ClusterError(
                f"the Dask scheduler cannot run Heron's code ({type(exc).__name__}: {exc}); {code_hint()}"
            ) from None
        try:  # a worker being restarted by its nanny is back within seconds
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler has had no worker for {WORKERS_TIMEOUT_S:g} s") from None
        # a worker that dies while asked (its nanny restarts it) is left out, not a failed sweep
        from distributed.comm.core import CommClosedError

        answers = client.run(versions.versions, on_error="return")
        theirs = {w: v for w, v in answers.items() if not isinstance(v, BaseException)}
        failed = {w: v for w, v in answers.items() if isinstance(v, BaseException)}
        broken = {w: v for w, v in failed.items() if not isinstance(v, (CommClosedError, OSError))}
        if broken:  # a worker that cannot even report its versions (no Heron code there...)
            raise ClusterError(
                "workers could not report their versions: "
                + "; ".join(f"{w}: {type(e).__name__}: {e}" for w, e in sorted(broken.items()))
                + f"; {code_hint()}"
            )
        if failed:
            log.info("version check: %d worker(s) went away while asked", len(failed))
        if not theirs:
            raise ClusterError("the Dask scheduler has no workers")
        problems = [
            line.replace("worker scheduler", "the scheduler", 1)
            for line in versions.mismatches(here, {"scheduler": scheduler})
        ] + versions.mismatches(here, theirs)
        if problems:
            raise ClusterError(
                "workers run other versions than this Heron (results would not be comparable): "
                + "; ".join(problems)
            )

    def worker_count(self) -> int:
        client = self._client
        if client is None:
            return 0
        try:
            return len(client.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            return 0

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception as exc:  # closing a client whose scheduler died
                log.debug("closing the Dask client: %s", exc)

    def close(self) -> None:
        """Close the client, and the local cluster if this started one."""
        with self._lock:
            self._drop()
            self._close_local()

    def _close_local(self) -> None:
        local, self._local = self._local, None
        if local is not None:
            try:
                local.close(timeout=10)
            except Exception as exc:
                log.warning("the local Dask cluster did not close cleanly: %s", exc)
