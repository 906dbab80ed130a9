from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import StrategySpec, parse_args, parse_strategy_spec

REPO = Path(__file__).resolve().parents[3]


def test_defaults() -> None:
    args = parse_args([])
    assert args.mode is None and args.profile == "default" and args.start_strategy == []
    assert not args.headless and args.quit_after is None


def test_strategy_specs_are_parsed_and_repeatable() -> None:
    args = parse_args(["--start-strategy", "sma_crossover:fast=5,slow=20", "--start-strategy", "noop"])
    assert args.start_strategy == [
        StrategySpec("sma_crossover", {"fast": "5", "slow": "20"}),
        StrategySpec("noop", {}),
    ]


def test_screenshot_gets_a_default_delay(tmp_path: Path) -> None:
    args = parse_args(["--screenshot", str(tmp_path / "x.png")])
    assert args.quit_after == 3.0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--mode", "demo"], "invalid choice"),
        (["--profile", "../etc"], "invalid profile name"),
        (["--quit-after", "-1"], "positive"),
        (["--quit-after", "nan"], "positive"),
        (["--metrics-port", "70000"], "between 1 and 65535"),
        (["--exchange-url", "http://127.0.0.1:1"], "must be given together"),
        (["--exchange-url", "ftp://x", "--exchange-keys", "k"], "invalid exchange URL"),
        (["--db", "heron.db"], "invalid database URL"),
        (["--screenshot", "x.jpg"], "ending in .png"),
        (["--screenshot", "x.png", "--headless"], "cannot be combined with --headless"),
        (["--start-strategy", "sma:fast"], "expected key=value"),
        (["--start-strategy", "9bad"], "invalid strategy"),
        (["--start-strategy", "s:a=1,a=2"], "given twice"),
        # an operator's reason is journaled and logged: a newline forged a log line, 120 KB was kept
        (["--accept-journal-rollback", "ok\n2026-12-05 ERROR heron.app forged"], "control characters"),
        (["--release-halt", "checked\x1b[31m"], "control characters"),
        (["--accept-journal-rollback", "x" * 120_000], "at most 500 are journaled"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_strategy_spec_value_may_contain_equals_and_spaces() -> None:
    assert parse_strategy_spec("s: a = x=y ").params == {"a": "x=y"}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--mode", "nope"], "invalid choice"),
        (
            ["--exchange-url", "http://127.0.0.1:9", "--exchange-keys", "/nonexistent/keys.json"],
            "no such file",
        ),
    ],
)
def test_main_py_rejects_bad_arguments_without_a_traceback(argv: list[str], fragment: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *argv], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr


def test_main_py_explains_a_missing_display() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py")], capture_output=True, text=True, timeout=30, cwd=REPO, env=env
    )
    assert proc.returncode == 1
    assert "QT_QPA_PLATFORM=offscreen" in proc.stderr and "--headless" in proc.stderr


def test_pyside_version_check() -> None:
    sys.path.insert(0, str(REPO))
    try:
        import main
    finally:
        sys.path.remove(str(REPO))
    assert main._version_tuple("6.12.0") >= (6, 12) > main._version_tuple("6.11.3")
    assert main.check_python_and_qt(need_qt=True) is None  # the pinned 6.11 in this venv is fine


@pytest.mark.expected_log(r"^heron\.app: stopped by SIGTERM during start\-up")
def test_a_signal_while_the_exchange_module_is_half_imported_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM 30-90 ms after launch landed while app.local_exchange was still being imported: the
    early handler died on AttributeError (no stop_children_now yet) with a traceback and exit 1."""
    import signal
    import types

    import main

    half = types.ModuleType("app.local_exchange")  # in sys.modules, its functions not defined yet
    monkeypatch.setitem(sys.modules, "app.local_exchange", half)
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(main.os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        main._on_early_signal(signal.SIGTERM, None)
    assert codes == [128 + signal.SIGTERM]
    assert "heron: stopped by SIGTERM during start-up" in capsys.readouterr().err
