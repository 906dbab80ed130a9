"""Command-line arguments: any argv either parses and validates or exits 2 with one clear line."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

from app.cli import MODES, parse_args
from tests.fuzz.budget import fuzz_pair

REPO = Path(__file__).resolve().parents[2]
OPTIONS = [
    "--mode", "--profile", "--data-dir", "--db", "--exchange-url", "--exchange-keys", "--screenshot",
    "--quit-after", "--headless", "--start-strategy", "--state-report", "--metrics-port", "--confirm-live",
    "--bar-seconds", "--on-exit", "--script", "--help-me", "-x", "--",
]  # fmt: skip
SAMPLES = [
    *MODES, "LIVE", "0", "-1", "nan", "inf", "1e309", "65536", "http://127.0.0.1:1", "http://[::1",
    "sqlite:///x.db", "a" * 70, "x.png", "/nonexistent/dir/x.png", "sma_crossover:fast=5,slow=20",
    "sma:=1", "sma:a=1,a=2", "1:2", "", " ", "\x00", "é",
]  # fmt: skip
VALUES = st.one_of(st.sampled_from(SAMPLES), st.text(max_size=20))
argv = st.lists(st.one_of(st.sampled_from(OPTIONS), VALUES), max_size=8)


def prop_cli(args: list[str]) -> None:
    if any("\x00" in a for a in args):
        return  # the OS cannot pass NUL in argv
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = parse_args(args)
        except SystemExit as exc:
            text = err.getvalue()
            assert exc.code == 2, (exc.code, text)
            # One message (it may quote an argument that itself holds a line break).
            assert text.startswith("main.py: error: ") and text.endswith(" (see --help)\n"), text
            assert "Traceback" not in text
            return
    assert parsed.mode in (None, *MODES)


test_cli, test_cli_deep = fuzz_pair(argv, examples=250)(prop_cli)


@pytest.mark.parametrize(
    "args",
    [
        ["--mode", "paper"],
        ["--quit-after", "nan"],
        ["--exchange-url", "http://127.0.0.1:1"],
        ["--start-strategy", "1bad"],
        ["--screenshot", "x.jpg"],
        ["--metrics-port", "99999"],
        ["--db", "no-scheme"],
    ],
)
def test_main_py_rejects_bad_arguments_with_exit_2_and_one_line(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("main.py: error:") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
