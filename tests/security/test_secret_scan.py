"""Secret scan: drive the main flows with known fake keys, then grep everything Heron wrote for them.

Searched: log files, database files (raw bytes), settings files, anything else in the data directory
(crash reports included: Heron writes unhandled errors to its log), the state report, the process's
stdout/stderr, and ``/proc/<pid>/cmdline`` of the terminal and of the exchange child while running.
Allowed: the local exchange's own ``session.json`` (mode 0600), which docs/DESIGN.md §3 permits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError

from app import settings as app_settings
from app.logging_setup import MASK, LogHub, SecretRedactor, setup_logging
from app.secrets import ApiKeys, SecretStore
from services.broker.credentials import CredentialsError, validate_credentials
from services.broker.errors import classify
from services.domain.enums import Mode
from tests.security.support import (
    FAKE_LIVE,
    FAKE_PAPER,
    REPO,
    SCAN_PROFILE,
    MemoryKeyring,
    RefusingProxy,
    descendants,
    files_containing,
    proc_cmdline,
)
from tests.support.exchange import ExchangeProcess

FAKE_NEEDLES = [FAKE_PAPER.key_id, FAKE_PAPER.secret, FAKE_LIVE.key_id, FAKE_LIVE.secret]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


@pytest.mark.expected_log(
    r"^heron\.security\.scan: settings refused: the settings file \S+ is",
    r"^heron\.security\.scan: account check failed: the keys were refused",
    r"^heron\.security\.scan: broker error: GET \S+ broker error",
    r"^heron\.security\.scan: unexpected error with ApiKeys\(",
)
def test_in_process_flows_mask_the_keys_everywhere(tmp_path: Path) -> None:
    """Keyring save/load, settings load/save, a refused-keys check and logged API errors."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    redactor = SecretRedactor()
    handle = setup_logging(
        redactor=redactor, hub=LogHub(), log_dir=log_dir, level=logging.DEBUG, console_level=None
    )
    log = logging.getLogger("heron.security.scan")
    try:
        store = SecretStore(MemoryKeyring(), on_secret=redactor.register)
        store.save(SCAN_PROFILE, Mode.PAPER, FAKE_PAPER)
        store.save(SCAN_PROFILE, Mode.LIVE, FAKE_LIVE)
        assert store.load(SCAN_PROFILE, Mode.PAPER) == FAKE_PAPER
        assert FAKE_PAPER.secret not in repr(FAKE_PAPER)

        settings_file = tmp_path / "settings.json"
        loaded = app_settings.load(settings_file)
        app_settings.save(loaded, settings_file)
        assert app_settings.load(settings_file) == loaded
        # A settings file that tries to hold a key is refused without echoing the value. (It is the
        # person's own file, kept aside untouched, so it lives outside the scanned folder.)
        own = tmp_path.parent / f"{tmp_path.name}-own" / "settings.json"
        own.parent.mkdir()
        own.write_text(json.dumps({"schema_version": 2, "secret": FAKE_PAPER.secret}))
        with pytest.raises(app_settings.SettingsError) as refused:
            app_settings.load(own)
        assert FAKE_PAPER.secret not in str(refused.value)
        log.error("settings refused: %s", refused.value)

        # The keys against a real exchange that does not know them: a refusal, logged.
        with ExchangeProcess.start(admin=False) as ex, pytest.raises(CredentialsError) as denied:
            asyncio.run(
                validate_credentials(
                    FAKE_PAPER.key_id, FAKE_PAPER.secret, environment="local", base_url=ex.url
                )
            )
        assert FAKE_PAPER.secret not in denied.value.message
        log.error("account check failed: %s", denied.value.message)

        # An API error whose body echoes the keys (a proxy or a buggy server could), logged with the
        # traceback and the request headers, the way a careless handler would.
        body = json.dumps({"code": 40110000, "message": f"bad key {FAKE_PAPER.key_id}/{FAKE_PAPER.secret}"})
        failure = classify(APIError(body), "GET /v2/account")
        log.warning("broker error: %s", failure.error)
        try:
            raise RuntimeError(
                f"request failed; headers={{'APCA-API-KEY-ID': '{FAKE_PAPER.key_id}', "
                f"'APCA-API-SECRET-KEY': '{FAKE_PAPER.secret}'}}"
            )
        except RuntimeError:
            log.exception("unexpected error with %s", FAKE_LIVE)
        log.debug("raw body %r", body)
    finally:
        handle.close()

    text = (log_dir / "heron.log").read_text()
    assert MASK in text and "account check failed" in text and "broker error" in text  # the flows ran
    assert files_containing(tmp_path, FAKE_NEEDLES) == []
    assert stat.S_IMODE((log_dir / "heron.log").stat().st_mode) == 0o600


def _run_terminal(
    args: list[str], env: dict[str, str], until: float
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start main.py and collect the command lines of it and its children until it exits."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cmdlines: list[str] = []
    deadline = time.monotonic() + until
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in [proc.pid, *descendants(proc.pid)]:
            line = proc_cmdline(pid)
            if line and line not in cmdlines:
                cmdlines.append(line)
        time.sleep(0.1)
    return proc, cmdlines


def test_headless_local_run_keeps_the_session_secret_out_of_files_and_command_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    report = tmp_path / "state.json"
    script = tmp_path / "orders.json"
    script.write_text(json.dumps([{"symbol": "BTC/USD", "side": "buy", "qty": "0.01", "type": "market"}]))
    session_file = data / "profiles" / SCAN_PROFILE / "exchange" / "session.json"
    args = ["--headless", "--mode", "local", "--profile", SCAN_PROFILE, "--data-dir", str(data),
            "--quit-after", "5", "--state-report", str(report), "--script", str(script)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    session: dict[str, object] = {}
    cmdlines: list[str] = []
    mode = None
    deadline = time.monotonic() + 40
    while proc.poll() is None and time.monotonic() < deadline:
        for pid in [proc.pid, *descendants(proc.pid)]:
            line = proc_cmdline(pid)
            if line and line not in cmdlines:
                cmdlines.append(line)
        if "url" not in session and session_file.exists():
            try:
                session = json.loads(session_file.read_text())
                mode = stat.S_IMODE(session_file.stat().st_mode)
            except (OSError, ValueError):
                session = {}
        time.sleep(0.1)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "url" in session, "the terminal never wrote the exchange session"
    assert mode == 0o600
    secret, key_id = str(session["secret"]), str(session["key_id"])
    assert any("services.exchange" in c for c in cmdlines), cmdlines  # the child was seen
    assert [c for c in cmdlines if secret in c or key_id in c] == []
    needles = [secret, *FAKE_NEEDLES]
    skip = frozenset({session_file})
    assert files_containing(data, needles, skip=skip) == []
    assert secret not in report.read_text() and secret not in out and secret not in err
    # The flows really ran: the database and the log exist and the scripted order reached the venue.
    profile = data / "profiles" / SCAN_PROFILE
    assert (profile / "heron.db").stat().st_size > 0 and (profile / "logs" / "heron.log").stat().st_size > 0
    state = json.loads(report.read_text())
    assert state["mode"] == "local"
    assert sum(state["orders"]["by_status"].values()) + len(state["orders"]["open"]) >= 1, state["orders"]


def test_headless_paper_run_with_keyring_keys_never_writes_or_passes_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RefusingProxy() as proxy:
        env = _env(
            PYTHON_KEYRING_BACKEND="tests.security.support.PreloadedKeyring",
            HTTPS_PROXY=proxy.url,
            HTTP_PROXY=proxy.url,
        )
        args = ["--headless", "--mode", "alpaca-paper", "--profile", SCAN_PROFILE, "--data-dir", str(data),
                "--quit-after", "3"]  # fmt: skip
        proc, cmdlines = _run_terminal(args, env, until=40)
        out, err = proc.communicate(timeout=30)
    # The keys were loaded from the keyring and used: the account check went out (to our proxy).
    assert any("paper-api.alpaca.markets" in r for r in proxy.requests), proxy.requests
    assert cmdlines and [c for c in cmdlines if any(n in c for n in FAKE_NEEDLES)] == []
    assert files_containing(data, FAKE_NEEDLES) == []
    assert not any(n in out or n in err for n in FAKE_NEEDLES)
    log_text = (data / "profiles" / SCAN_PROFILE / "logs" / "heron.log").read_text()
    assert "account check failed" in log_text or "could not check the keys" in log_text, log_text[-2000:]
    assert proc.returncode is not None


def test_api_keys_repr_and_json_are_the_only_ways_out() -> None:
    keys = ApiKeys("PKREPRTEST", "repr-secret-value")
    assert "repr-secret-value" not in repr(keys) and "repr-secret-value" not in str(keys)
