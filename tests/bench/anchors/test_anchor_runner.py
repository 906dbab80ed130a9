"""The anchor runner's aggregation and its refusal to run outside the scratch environment.

No Qt, no finplot, no vnpy: only the runner's own logic (the anchors themselves are measurements,
run by hand in the scratch environment, see README.md here).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.bench.anchors.__main__ import ANCHORS, combine, main


def test_combine_reports_the_median_every_run_and_the_loads() -> None:
    runs = [
        {"a_ms": {"value": 30.0, "unit": "ms", "version": "x 1", "load_avg_1m": 5.0, "cpu_ms": 9.0},
         "b_mb": {"value": 10.0, "unit": "MB"}},
        {"a_ms": {"value": 10.0, "unit": "ms", "version": "x 1", "load_avg_1m": 6.0, "cpu_ms": 3.0},
         "b_mb": {"value": 12.0, "unit": "MB"}},
        {"a_ms": {"value": 20.0, "unit": "ms", "version": "x 1", "load_avg_1m": 7.0, "cpu_ms": 4.0},
         "b_mb": {"value": 11.0, "unit": "MB"}},
    ]  # fmt: skip
    out = combine(runs, [(1.0, 2.0), (2.0, 3.0), (3.0, 4.5)])
    assert out["a_ms"]["value"] == 20.0
    assert out["a_ms"]["runs"] == [30.0, 10.0, 20.0]
    assert out["a_ms"]["version"] == "x 1"
    assert out["a_ms"]["cpu_ms"] == 4.0  # side fields are medians too, not the first run's
    assert "load_avg_1m" not in out["a_ms"]
    assert out["a_ms"]["load_avg_1m_before_after_runs"] == [[1.0, 2.0], [2.0, 3.0], [3.0, 4.5]]
    assert out["b_mb"]["value"] == 11.0


def test_combine_skips_missing_values() -> None:
    runs = [{"a": {"value": None, "unit": "s"}}, {"a": {"value": 4.0, "unit": "s"}}]
    out = combine(runs, [(0.0, 0.0), (0.0, 0.0)])
    assert out["a"]["value"] == 4.0
    assert out["a"]["runs"] == [4.0]


def test_unknown_anchor_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "unknown anchor" in capsys.readouterr().err


@pytest.mark.skipif(
    all(importlib.util.find_spec(pkg) is not None for _, pkg in ANCHORS.values()),
    reason="running inside the scratch environment",
)
def test_outside_the_scratch_env_the_runner_says_how_to_build_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--runs", "1"])
    assert "scratch_env.sh" in capsys.readouterr().err
