"""Soak: the 2-minute version of ``python -m tests.soak`` (slow), the event-loop lag gauge it reads
(app/metrics.py), and the soak's own arithmetic (fast, no processes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.metrics import MetricsSample, MetricsServer
from tests.chaos.harness import free_port
from tests.soak.harness import judge, parse_metrics, run_soak, summarize


def test_loop_lag_gauge_reports_a_blocked_loop_and_resets_each_interval() -> None:
    async def scenario() -> tuple[float, float, float]:
        server = MetricsServer(free_port(), MetricsSample, interval=3600)  # sampled by hand below
        server.start()
        try:
            await asyncio.sleep(0.25)
            server.update()
            calm = server.loop_lag._value.get()
            time.sleep(0.4)  # the loop is blocked: the 100 ms probe fires ~0.4 s late
            await asyncio.sleep(0.25)
            server.update()
            blocked = server.loop_lag._value.get()
            await asyncio.sleep(0.25)
            server.update()
            return calm, blocked, server.loop_lag._value.get()
        finally:
            await server.stop()

    calm, blocked, after = asyncio.run(scenario())
    assert calm < 0.1
    assert blocked >= 0.3
    assert after < 0.1  # the worst value belongs to one interval only


def test_parse_metrics_reads_the_series_the_soak_uses() -> None:
    text = "\n".join(
        [
            "# HELP heron_event_loop_lag_seconds x",
            "heron_event_loop_lag_seconds 0.012",
            "heron_event_loop_tasks 13.0",
            "heron_marketdata_messages_per_second 4990.5",
            'heron_orders{status="filled"} 7.0',
            'heron_orders{status="new"} 2.0',
            'heron_trading_state{state="ACTIVE"} 1.0',
        ]
    )
    m = parse_metrics(text)
    assert m == {"loop_lag_s": 0.012, "tasks": 13.0, "msgs_per_s": 4990.5, "orders": 9.0, "active": 1.0}


Rows = list[dict[str, float]]


def _samples(rss_growth: float, lag_end: float, tasks_end: int) -> tuple[Rows, Rows]:
    fast = [
        {
            "t": float(t),
            "loop_lag_s": 0.01 if t < 60 else lag_end,
            "tasks": 13 if t < 60 else tasks_end,
            "msgs_per_s": 5000.0,
            "orders": t / 10,
        }
        for t in range(120)
    ]
    slow = [
        {
            "t": float(t),
            "rss_mb": 200 + rss_growth * t / 110,
            "threads": 11,
            "fds": 24,
            "orders_journaled": t / 10,
        }
        for t in range(0, 120, 10)
    ]
    return fast, slow


def test_judge_passes_a_flat_run_and_names_each_missed_goal() -> None:
    fast, slow = _samples(3.0, 0.01, 13)
    ok = summarize(fast, slow, 2.0, 10.0, 5000, 60)
    assert judge(ok) == []
    fast, slow = _samples(80.0, 0.2, 60)
    missed = judge(summarize(fast, slow, 2.0, 10.0, 5000, 60))
    assert any("RSS growth" in m for m in missed)
    assert any("loop lag p50 grew" in m for m in missed)  # a short run: its windows' median
    assert any("asyncio tasks grew" in m for m in missed)


def test_one_slow_second_in_a_short_run_is_not_a_growing_lag_but_a_long_runs_p99_is_judged() -> None:
    """A two-minute run's last window has some 40 samples: its p99 is its single worst second, which
    another process on the machine can decide. The median is judged there; ten-minute windows are
    judged on their p99."""
    fast, slow = _samples(3.0, 0.01, 13)
    fast[100]["loop_lag_s"] = 0.08  # one second late by 80 ms near the end
    assert judge(summarize(fast, slow, 2.0, 10.0, 5000, 60)) == []
    long_fast = [{**row, "t": float(t), "loop_lag_s": 0.01 if t < 1200 or t % 50 else 0.08}
                 for t, row in enumerate(fast[0:1] * 1800)]  # fmt: skip
    long_slow = [{**slow[0], "t": float(t), "orders_journaled": 999.0} for t in range(0, 1800, 10)]
    missed = judge(summarize(long_fast, long_slow, 30.0, 30.0, 5000, 60))
    assert missed == ["loop lag p99 grew from 10.0 ms to 80.0 ms"], missed


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_two_minute_soak_at_5000_msgs_per_second(tmp_path: Path) -> None:
    result = run_soak(2.0, 5000, tmp_path / "soak.json", work=tmp_path / "work")
    s = result["summary"]
    assert result["missed"] == [], s
    assert s["delivered_msgs_per_s"]["median"] >= 4000, s  # the terminal really received the load
    assert s["orders_journaled"] and s["orders_journaled"] > 0, s  # and the strategy really traded
