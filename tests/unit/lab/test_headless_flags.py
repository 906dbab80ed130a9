"""The headless sweep's flags and its refusal of a bad SPEC: exit 2, one line naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import parse_args

REPO = Path(__file__).resolve().parents[3]


def test_sweep_flags_parse(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    args = parse_args(["--headless", "--sweep", str(spec), "--sweep-report", str(tmp_path / "out.json"),
                       "--scheduler", "tls://dask.example:8786", "--tls-ca", "ca.pem"])  # fmt: skip
    assert args.sweep == spec and args.scheduler == "tls://dask.example:8786"
    assert (
        parse_args(
            ["--headless", "--sweep", str(spec), "--sweep-report", "out.json", "--workers", "1"]
        ).workers
        == 1
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--sweep-report", "out.json"], "--sweep-report goes with --sweep"),
        (["--sweep", "SPEC", "--sweep-report", "out.json", "--no-headless"], "add --headless"),
        (["--sweep", "SPEC"], "needs --sweep-report"),
        (["--sweep", "missing.json", "--sweep-report", "out.json"], "no such file"),
        (["--sweep", "SPEC", "--sweep-report", "out.json", "--workers", "0"], "a local cluster takes 1 to"),
        (
            ["--sweep", "SPEC", "--sweep-report", "out.json", "--workers", "500"],
            "for more, run a Dask cluster",
        ),
        (["--sweep", "SPEC", "--sweep-report", "out.json", "--scheduler", "http://x:1"], "tls://HOST:PORT"),
        (
            [
                "--sweep",
                "SPEC",
                "--sweep-report",
                "out.json",
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--workers",
                "2",
            ],
            "brings its own workers",
        ),
        (["--sweep", "SPEC", "--sweep-report", "out.json", "--script", "SPEC"], "runs no trading services"),
    ],
)
def test_bad_sweep_flags_exit_2_with_one_line(
    extra: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    argv = [str(spec) if a == "SPEC" else a for a in extra]
    argv = ["--headless", *argv] if "--no-headless" not in argv else [a for a in argv if a != "--no-headless"]
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def _alpaca_paper_sweep(
    tmp_path: Path, space: dict[str, list[int]]
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A headless sma_crossover sweep of AAPL over 5 days in alpaca-paper mode (no keys, no candles
    stored): the SPEC file written and the finished process."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 5, "space": space}))
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--headless", "--mode", "alpaca-paper", "--data-dir",
         str(tmp_path / "data"), "--sweep", str(spec), "--sweep-report", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    return spec, done


def test_a_bad_spec_is_refused_at_start_naming_the_field(tmp_path: Path) -> None:
    spec, done = _alpaca_paper_sweep(tmp_path, {"fast": [2, 3], "slow": [0]})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"heron: --sweep {spec}: space.slow: parameter 'slow' must be >= 2, got 0"
    ]
    assert not (tmp_path / "out.json").exists()


def test_missing_history_in_an_alpaca_mode_is_named_and_exits_1(tmp_path: Path) -> None:
    _, done = _alpaca_paper_sweep(tmp_path, {"fast": [2, 3], "slow": [10]})
    assert done.returncode == 1
    assert "the candle store has no 1Min bars of AAPL from " in done.stderr
    assert "open its chart over that range in alpaca-paper mode" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_a_space_the_strategy_refuses_whole_exits_2_naming_space_before_anything_starts(
    tmp_path: Path,
) -> None:
    spec, done = _alpaca_paper_sweep(tmp_path, {"fast": [20, 30], "slow": [10, 20]})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"heron: --sweep {spec}: space: the strategy refuses every one of its 4 combinations"
    )
    assert "candle store" not in done.stderr  # refused before the history was looked at
    assert not (tmp_path / "out.json").exists()


def test_a_completed_sweep_in_which_no_point_succeeded_is_a_failure_naming_the_first_error() -> None:
    from app.sweep import verdict
    from services.lab.model import PointResult, SweepOutcome, SweepState

    failed = [
        PointResult("k1", {"fast": 2, "slow": 10}, None, error="RuntimeError: boom"),
        PointResult("k2", {"fast": 3, "slow": 10}, None, error="RuntimeError: bang"),
    ]
    outcome = SweepOutcome("s1", SweepState.COMPLETED, 2, 2, 2, 1, 1.0, None)
    why = verdict(outcome, failed)
    assert why is not None and "no point succeeded" in why
    assert "{'fast': 2, 'slow': 10}: RuntimeError: boom" in why
    good = PointResult("k3", {"fast": 4, "slow": 10}, {"sharpe": 1.0})
    assert verdict(SweepOutcome("s1", SweepState.COMPLETED, 3, 3, 2, 1, 1.0, good), [*failed, good]) is None
    cancelled = verdict(SweepOutcome("s1", SweepState.CANCELLED, 3, 1, 0, 1, 1.0, good), [good])
    assert cancelled is not None and cancelled.startswith("sweep s1 did not complete: cancelled; ")
    assert "running the same SPEC again resumes it" in cancelled
    ends_now = verdict(
        SweepOutcome("s1", SweepState.FAILED, 3, 1, 0, 1, 1.0, good, "lost"), [good], resumable=False
    )
    assert ends_now == (
        "sweep s1 did not complete: failed (lost); its range ends now, so running it again starts afresh: "
        "give the SPEC an end to resume it"
    )


def test_a_spec_naming_a_key_twice_is_refused_not_read_as_its_last_value(tmp_path: Path) -> None:
    """JSON keeps the last of two equal keys without a word: a SPEC with "slow" twice would sweep a
    space its author did not see. It is refused, naming the key."""
    from app.sweep import load_spec
    from services.lab.spec import SpecError
    from services.strategies.builtin import builtin_registry

    spec = tmp_path / "spec.json"
    spec.write_text('{"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 5,'
                    ' "space": {"fast": [2, 3], "slow": [20], "slow": [30]}}')  # fmt: skip
    with pytest.raises(SpecError) as refused:
        load_spec(spec, builtin_registry())
    assert "the key 'slow' is given twice in one object" in str(refused.value)
    spec.write_text('{"strategy": "sma_crossover", "symbols": ["AAPL"], "days": 5,'
                    ' "space": {"fast": [2, 3], "slow": [20]}}')  # fmt: skip
    assert list(load_spec(spec, builtin_registry()).space["slow"]) == [20]
