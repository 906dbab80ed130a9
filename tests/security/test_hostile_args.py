"""Hostile command-line values and order scripts: every duration is bounded, and a script of any
shape is refused whole, before anything connects, naming the entry and what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import parse_args
from app.script import ScriptError, load_script

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("option", ["--bar-seconds", "--quit-after"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "1e12", "1e-9", "1e400", "five", ""])
def test_every_duration_argument_is_bounded(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([option, value, "--headless"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--bar-seconds", "0.5"), ("--bar-seconds", "86400"), ("--quit-after", "0.1"), ("--quit-after", "3600")],
)
def test_sane_durations_are_taken(option: str, value: str) -> None:
    args = parse_args([option, value, "--headless"])
    assert getattr(args, option[2:].replace("-", "_")) == float(value)


GOOD = {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "market"}


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({**GOOD, "qty": 1e30}, "qty"),
        ({**GOOD, "qty": "1e30"}, "qty"),
        ({**GOOD, "qty": "1e12"}, "qty"),
        ({**GOOD, "qty": -1}, "qty"),
        ({**GOOD, "qty": "NaN"}, "qty"),
        ({**GOOD, "qty": "Infinity"}, "qty"),
        ({**GOOD, "qty": None}, "qty"),
        ({**GOOD, "type": "limit", "limit_price": 0}, "limit_price"),
        ({**GOOD, "type": "limit", "limit_price": "1e15"}, "limit_price"),
        ({**GOOD, "type": "limit", "limit_price": {"offset_pct": 500}}, "offset_pct"),
        ({**GOOD, "type": "limit", "limit_price": {"offset_pct": -100}}, "offset_pct"),
        ({**GOOD, "symbol": ["AAPL"]}, "symbol"),
        ({**GOOD, "side": {"buy": 1}}, "side"),
        ({**GOOD, "side": None}, "side"),
        ({**GOOD, "qyt": "5"}, "unknown field"),
        ({**GOOD, "delay": 1e12}, "delay"),
        ({**GOOD, "delay": "nan"}, "delay"),
        ({"action": ["replace"]}, "action"),
        ({"action": "kill_switch", "reason": {"x": 1}}, "reason"),
        ({"action": "replace", "limit_price": {"offset_pct": "inf"}}, "offset_pct"),
        ([1, 2], "expected an object"),
        ("AAPL", "expected an object"),
    ],
)
def test_a_bad_entry_refuses_the_whole_script_naming_it(tmp_path: Path, entry: Any, fragment: str) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([GOOD, entry, GOOD]))
    with pytest.raises(ScriptError) as err:
        load_script(path)
    message = str(err.value)
    assert "orders.json entry 2" in message and fragment in message and "\n" not in message, message


def test_a_deeply_nested_script_is_refused_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ScriptError, match="order script"):
        load_script(path)


def test_a_huge_script_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    entries = json.dumps([GOOD] * 100_000)  # about 6 MB of valid orders
    path.write_text(entries)
    with pytest.raises(ScriptError, match="limit"):
        load_script(path)


def test_a_fifo_script_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    os.mkfifo(path)
    with pytest.raises(ScriptError, match="regular file"):
        load_script(path)


_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(
        [
            "buy",
            "sell",
            "AAPL",
            "BTC/USD",
            "limit",
            "market",
            "replace",
            "cancel",
            "kill_switch",
            "gtc",
            "day",
            "1",
            "1e30",
            "NaN",
            "-1",
            "0",
        ]
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["offset_pct", "x"]), c, max_size=2),
    max_leaves=8,
)
_entry = st.dictionaries(
    st.sampled_from(
        [
            "symbol",
            "side",
            "qty",
            "type",
            "limit_price",
            "delay",
            "action",
            "flatten",
            "reason",
            "time_in_force",
        ]
    ),
    _value,
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_entry | _value, max_size=4) | _value)
def test_scripts_of_any_shape_load_or_are_refused_cleanly(tmp_path_factory: Any, data: Any) -> None:
    path = tmp_path_factory.mktemp("s") / "orders.json"
    path.write_text(json.dumps(data))
    try:
        orders = load_script(path)
    except ScriptError as exc:
        assert "\n" not in str(exc) and "orders.json" in str(exc)
        return
    for order in orders:  # what loads is within bounds
        assert 0 <= order.delay <= 86_400
        if order.action == "order":
            assert 0 < order.qty <= 10**9
        if order.offset_pct is not None:
            assert -100 < order.offset_pct < 100


def test_headless_start_with_a_bad_script_refuses_before_connecting(tmp_path: Path) -> None:
    script = tmp_path / "orders.json"
    script.write_text(json.dumps([GOOD, {**GOOD, "qty": "1e30"}]))
    data = tmp_path / "data"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "main.py"),
            "--headless",
            "--mode",
            "local",
            "--data-dir",
            str(data),
            "--quit-after",
            "20",
            "--script",
            str(script),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode != 0
    assert "orders.json entry 2" in proc.stderr and "no order was sent" in proc.stderr, proc.stderr[-2000:]
    log = (data / "profiles" / "default" / "logs" / "heron.log").read_text()
    assert "orders.json entry 2" in log
    assert "database open" not in log and "connected" not in log.lower()
