"""Test harness: the real local exchange (``python -m services.exchange``) as a subprocess.

Usage (tests/integration/conftest.py gives fixtures ``exchange`` and ``module_exchange``)::

    with ExchangeProcess.start() as ex:             # 127.0.0.1, free port, temp data dir
        client = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
        ex.admin("/rest/429", {"count": 2})         # fault injection (POST /_heron/admin/rest/429)
        ex.restart()                                # same port, same data dir, same keys
        ex.kill()                                   # SIGKILL (crash); restart() brings it back

Stable interface: ``url`` (``http://127.0.0.1:PORT``), ``ws_url`` (``ws://...``), ``port``,
``key_id``, ``secret``, ``keys_file``, ``data_dir``, ``admin(path, json=None, method="POST")`` →
parsed JSON, ``restart()``, ``kill()``, ``stop()``, ``running``, ``stderr_text()``.
Defaults: seed 7, ``--always-open --admin``, the keys passed through ``--keys-file`` (never argv).
``data_dir=`` opens an existing venue (e.g. the one a terminal's own child exchange kept).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEST_KEY_ID = "PKTESTHERON000000001"
TEST_SECRET = "heron-test-secret-0123456789abcdefghijkl"
ADMIN_PREFIX = "/_heron/admin"
START_TIMEOUT = 20.0


class ExchangeStartError(RuntimeError):
    """The exchange did not print ``listening on`` in time (its stderr is in the message)."""


class ExchangeProcess:
    """One exchange subprocess; see the module docstring."""

    def __init__(
        self,
        *,
        root: Path | None = None,
        seed: int = 7,
        extra_args: Sequence[str] = (),
        always_open: bool = True,
        admin: bool = True,
        rate_limit: int = 0,
        key_id: str = TEST_KEY_ID,
        secret: str = TEST_SECRET,
        data_dir: Path | None = None,
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="heron-exchange-")) if root is None else Path(root)
        self.data_dir = self.root / "data" if data_dir is None else Path(data_dir)  # venue state
        self.keys_file = self.root / "keys.json"
        self.key_id = key_id
        self.secret = secret
        self.seed = seed
        self.extra_args = list(extra_args)
        self.always_open = always_open
        self.with_admin = admin
        self.rate_limit = rate_limit
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._stderr_path = self.root / "exchange.stderr.log"
        self._stdout_lines: list[str] = []
        fd = os.open(self.keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"key_id": key_id, "secret": secret}, fh)

    # ------------------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, **kwargs: Any) -> ExchangeProcess:
        ex = cls(**kwargs)
        try:
            ex._spawn()
        except BaseException:
            ex.stop()
            raise
        return ex

    def __enter__(self) -> ExchangeProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def argv(self, port: int) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "services.exchange",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir),
            "--keys-file",
            str(self.keys_file),
            "--seed",
            str(self.seed),
            "--rate-limit",
            str(self.rate_limit),
        ]
        if self.always_open:
            args.append("--always-open")
        if self.with_admin:
            args.append("--admin")
        return args + self.extra_args

    def _spawn(self, port: int = 0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        stderr = open(self._stderr_path, "a")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                self.argv(port),
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        finally:
            stderr.close()
        ready = threading.Event()
        found: list[int] = []
        proc = self._proc

        def reader() -> None:
            assert proc.stdout is not None
            with proc.stdout:  # closed at EOF, when the exchange is gone
                for line in proc.stdout:
                    self._stdout_lines.append(line.rstrip("\n"))
                    if not found and line.startswith("listening on http://"):
                        found.append(int(line.strip().rsplit(":", 1)[1]))
                        ready.set()
            ready.set()

        self._reader = threading.Thread(target=reader, name="exchange-stdout", daemon=True)
        self._reader.start()
        if not ready.wait(START_TIMEOUT) or not found:
            code = proc.poll()
            self._terminate()
            raise ExchangeStartError(
                f"exchange did not start within {START_TIMEOUT:.0f} s (exit {code}); "
                f"stderr:\n{self.stderr_text()}"
            )
        self.port = found[0]

    def _terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)  # its pipe reaches EOF and is closed
        self._proc = None
        return proc.returncode

    def stop(self) -> int | None:
        """SIGTERM (clean shutdown) and wait; removes the temp dir if the harness created it."""
        code = self._terminate()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup. ``restart()`` starts it again on the same data dir."""
        self._terminate(signal.SIGKILL)

    def restart(self, *, same_port: bool = True) -> None:
        """Clean stop (unless already killed), then start on the same port, data dir and keys."""
        port = self.port if same_port else 0
        self._terminate()
        deadline = time.monotonic() + 5
        while True:
            try:
                self._spawn(port)
                return
            except ExchangeStartError:
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the port may still be held briefly

    # ------------------------------------------------------------------------------ helpers

    def stderr_text(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret}

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0, auth: bool = True
    ) -> tuple[int, Any]:
        """Plain HTTP (no SDK, no retries): returns (status, parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        headers = self.headers() if auth else {}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            status = exc.code
        return status, (json.loads(raw) if raw else None)

    def admin(self, path: str, json_body: Any = None, *, method: str | None = None) -> Any:
        """Call an admin route (``path`` relative to /_heron/admin); raises on a non-2xx answer."""
        method = method or (
            "GET" if json_body is None and path.rstrip("/") in ("/stats", "/faults") else "POST"
        )
        status, body = self.request(method, ADMIN_PREFIX + path, json_body if method != "GET" else None)
        if not 200 <= status < 300:
            raise RuntimeError(f"admin {path} failed: {status} {body}")
        return body
