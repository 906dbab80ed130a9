"""The idle benchmark reports, with its figures, how fast the machine ran the same fixed work
before and after the window (the terminal's and the exchange's CPU rise and fall with it)."""

from __future__ import annotations

from tests.bench import idle_window


def test_figures_carry_the_calibration_taken_around_the_window() -> None:
    res = {"cpu_pct": 3.04, "rss_mb": 235.4, "window_s": 60.0, "calibration_ms_before": 24.04,
           "calibration_ms_after": 31.96, "gui_thread_pct": 2.2}  # fmt: skip
    cpu = idle_window.figures(res)["idle_cpu_pct"]
    assert cpu["value"] == 3.0 and cpu["calibration_ms"] == [24.0, 32.0]
    assert idle_window.figures({"error": "not live"})["idle_cpu_pct"]["calibration_ms"] == []


def test_calibration_is_the_cpu_time_of_a_fixed_loop() -> None:
    small, large = idle_window.calibrate(rounds=3, n=20_000), idle_window.calibrate(rounds=3, n=400_000)
    assert 0 < small < large
