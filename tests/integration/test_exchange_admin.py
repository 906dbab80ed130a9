"""Admin fault injection and the CLI contract of ``python -m services.exchange``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from tests.support.exchange import REPO, ExchangeProcess


def _client(ex: ExchangeProcess) -> TradingClient:
    c = TradingClient(ex.key_id, ex.secret, url_override=ex.url)
    c._retry = 0
    return c


def test_rest_faults_429_5xx_latency_then_reset(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean
    client = _client(ex)
    ex.admin("/rest/429", {"count": 2})
    for _ in range(2):
        with pytest.raises(APIError) as err:
            client.get_clock()
        assert err.value.status_code == 429 and err.value.code == 42910000
    assert client.get_clock() is not None
    ex.admin("/rest/5xx", {"count": 4, "statuses": [500, 502, 503, 504]})
    seen = []
    for _ in range(4):
        with pytest.raises(APIError) as err:
            client.get_account()
        seen.append(err.value.status_code)
        assert isinstance(err.value.code, int)  # always a JSON body
    assert seen == [500, 502, 503, 504]
    ex.admin("/rest/latency", {"ms": 300})
    started = time.monotonic()
    client.get_clock()
    assert time.monotonic() - started >= 0.3
    state = ex.admin("/reset", {})
    assert state["rest"]["latency_ms"] == 0
    started = time.monotonic()
    client.get_clock()
    assert time.monotonic() - started < 0.3
    stats = ex.admin("/stats")
    assert stats["faults"]["rest"]["injected_429"] >= 2 and stats["faults"]["rest"]["injected_5xx"] >= 4


def test_admin_rejects_bad_bodies_and_halts_symbols(module_exchange_clean: ExchangeProcess) -> None:
    ex = module_exchange_clean
    status, body = ex.request("POST", "/_heron/admin/rest/429", {"count": "many"})
    assert status == 400 and body["code"] == 40010000
    status, body = ex.request("POST", "/_heron/admin/halt", {"symbol": "NOPE"})
    assert status == 400
    state = ex.admin("/halt", {"symbol": "AAPL", "halted": True})
    assert state["halted"] == ["AAPL"]
    assert ex.admin("/stats")["market"]["halted"] == ["AAPL"]
    ex.admin("/halt", {"symbol": "AAPL", "halted": False})
    state = ex.admin("/trade-updates", {"drop_next": 2, "kill_after": 5})
    assert state["trade_updates"]["drop_next"] == 2 and state["trade_updates"]["kill_after"] == 5
    assert ex.admin("/matching", {"paused": True})["matching_paused"] is True
    ex.admin("/reset", {})
    # Admin routes need the key too.
    status, body = ex.request("GET", "/_heron/admin/stats", auth=False)
    assert status == 401 and body["code"] == 40110000


def test_rate_limit_headers_and_429() -> None:
    with ExchangeProcess.start(rate_limit=5, admin=False) as ex:
        statuses = [ex.request("GET", "/v2/clock")[0] for _ in range(7)]
        assert statuses[:5] == [200] * 5 and statuses[-1] == 429
        # Without --admin the admin prefix does not exist.
        status, body = ex.request("GET", "/_heron/admin/stats")
        assert status == 404 and body["code"] == 40410000


def _run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.exchange", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "70000"], "--port"),
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--rate", "-1"], "--rate"),
        (["--symbols", "bad symbol!"], "symbol"),
        (["--key-id", "only-id"], "--secret"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(
    tmp_path: os.PathLike[str], args: list[str], needle: str
) -> None:
    proc = _run_cli("--data-dir", str(tmp_path), *args)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_generated_keys_are_private_and_sigterm_is_clean(tmp_path: os.PathLike[str]) -> None:
    data = os.path.join(tmp_path, "d")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.exchange", "--data-dir", data, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        keys_path = os.path.join(data, "keys.json")
        mode = stat.S_IMODE(os.stat(keys_path).st_mode)
        assert mode == 0o600
        with open(keys_path) as fh:
            secret = json.load(fh)["secret"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert secret not in out + err + line
        assert "keys.json" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_restart_and_crash_keep_venue_state(exchange: ExchangeProcess) -> None:
    client = _client(exchange)
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    order = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1.0
        )
    )
    exchange.kill()
    exchange.restart()
    again = _client(exchange).get_order_by_id(order.id)  # type: ignore[union-attr]
    assert again.id == order.id  # type: ignore[union-attr]
