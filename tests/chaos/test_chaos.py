"""Chaos: faults while a strategy and scripted manual orders trade, then a clean restart that must
reconcile with nothing duplicated, lost or left diverging (tests/chaos/harness.py).

The three fixed-plan runs cover every fault kind and run in CI (about 30-60 s each; the process run
is a local-mode run: the terminal's own child exchange, killed under it); the randomized
sweep is ``slow`` (``HERON_CHAOS_RUNS`` runs, default 20). The full 200-run sweep with figures is
``uv run python -m tests.chaos --runs 200 --seed 1 --out DIR --jobs 2``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.__main__ import markdown, summarize
from tests.chaos.harness import (
    FAULT_KINDS,
    LOCAL_KINDS,
    ChaosConfig,
    Fault,
    db_path,
    fill_disk,
    is_local_plan,
    kill_processes,
    measure,
    measure_account,
    mount_tmpfs,
    plan_faults,
    processes_naming,
    run_chaos,
    unmount,
    verdict,
)
from tests.support.exchange import ExchangeProcess
from tests.support.polling import wait_for

PROCESS_FAULTS = [  # local mode: the terminal starts its own exchange child
    Fault(0.3, "terminal_kill", {"down_seconds": 0.3}),
    Fault(1.0, "sigterm_startup", {"after": 0.8}),  # started again, it trades before what follows
    Fault(1.5, "second_terminal", {}),
    Fault(2.0, "child_kill", {}),
    Fault(2.5, "db_lock", {"seconds": 4.0}),
    Fault(6.9, "disk_full", {"seconds": 5.0}),  # a child restart it delays gets 10 s once space is back
]
WIRE_FAULTS = [
    Fault(0.2, "db_lock", {"seconds": 6.0}),  # longer than the terminal's SQLite busy timeout
    Fault(0.3, "tu_drop", {"n": 2}),
    Fault(0.6, "tu_duplicate", {"n": 2}),
    Fault(1.0, "tu_reorder", {"n": 3}),
    Fault(1.5, "rest_5xx", {"count": 8}),
    Fault(2.5, "latency_spike", {"ms": 1500, "jitter_ms": 200, "seconds": 1.5}),
    Fault(3.0, "external_cancel", {}),
    Fault(3.5, "ws_kill", {"which": "all"}),
    Fault(4.5, "rest_429", {"count": 10}),
    Fault(5.0, "matching_pause", {"seconds": 1.5}),
    Fault(6.5, "ws_kill", {"which": "trading"}),
    Fault(6.7, "exchange_kill", {"down_seconds": 1.0}),  # last: the admin routes are down with it
]

TRADING_FAULTS = [  # a kill-switch flatten over an exit order held in pending_cancel, replace races
    Fault(0.2, "flatten_pending_cancel", {"seconds": 3.0}),  # and answers Heron cannot read
    Fault(0.5, "replace_race", {"count": 2}),
    Fault(1.0, "garbled_answer", {"count": 3}),
]


def _assert_clean(figures: dict[str, object]) -> None:
    detail = {
        k: figures.get(k)
        for k in (
            "harness_error",
            "divergence_detail",
            "lost_fill_detail",
            "phantom_fill_detail",
            "recovery_exit_code",
            "task_failures",
            "kill_switch_not_pulled",
            "failures",
            "orphans",
            "account_detail",
            "second_terminals",
            "child_kills",
            "sigterm_starts",
            "faults_not_injectable",
            "stderr_tail",
        )
    }
    assert figures["duplicates_at_exchange"] == 0, detail
    assert figures["lost_fills"] == 0, detail
    assert figures["phantom_fills"] == 0, detail
    assert figures["unreconciled_divergences"] == 0, detail
    assert figures["task_failures"] == [], detail
    assert figures["orphans"] == {}, detail
    assert figures["account_divergences"] == 0, detail
    assert figures["faults_not_injectable"] == {}, detail
    assert figures["failures"] == [], detail
    assert figures["ok"] is True, detail
    assert figures["recovery_seconds"] is not None


def test_every_fault_kind_is_in_the_ci_sample() -> None:
    assert {f.kind for f in PROCESS_FAULTS + WIRE_FAULTS + TRADING_FAULTS} == set(FAULT_KINDS)
    assert is_local_plan(PROCESS_FAULTS) and {f.kind for f in PROCESS_FAULTS} <= LOCAL_KINDS


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("seed", "plan"),
    [(11, PROCESS_FAULTS), (12, WIRE_FAULTS), (13, TRADING_FAULTS)],
    ids=["process", "wire", "trading"],
)
def test_ci_sample_faults_then_restart_reconcile_clean(tmp_path: Path, seed: int, plan: list[Fault]) -> None:
    planted: dict[str, Any] = {}

    def plant(ex: ExchangeProcess, data_dir: Path, report: dict[str, Any] | None) -> None:
        """The figures must be able to fail: a state report whose cash is not the exchange's, a
        fill lost locally and an order invented at the exchange, then measure again."""
        false_cash = {**(report or {}), "account": {**((report or {}).get("account") or {}), "cash": "1"}}
        planted["account"] = measure_account(ex, false_cash)
        with sqlite3.connect(db_path(data_dir)) as conn:
            conn.execute("DELETE FROM order_fills WHERE rowid = (SELECT min(rowid) FROM order_fills)")
        status, body = ex.request(
            "POST",
            "/v2/orders",
            {
                "symbol": "NVDA",
                "qty": "1",
                "side": "buy",
                "type": "limit",
                "limit_price": "1",
                "time_in_force": "day",
                "client_order_id": "hr-x-script-planted-1",
            },
        )
        # a symbol the chaos scripts never trade: no position or working order there can refuse it
        assert status == 200, body
        planted.update(measure(ex, data_dir, report, len(plan)))

    figures = run_chaos(seed, tmp_path, ChaosConfig(trade_seconds=7.0), plan=plan, after=plant)
    _assert_clean(figures)
    assert planted["account"]["account_divergences"] >= 1, planted["account"]
    assert planted["lost_fills"] == (1 if figures["fills_at_exchange"] else 0)
    assert planted["unreconciled_divergences"] >= 1
    assert any("hr-x-script-planted-1" in d for d in planted["divergence_detail"])
    assert figures["orders_sent"] > 0  # something really traded through the faults
    assert figures["faults_total"] >= len(plan) - 1  # at most one skipped (e.g. nothing open to cancel)
    if is_local_plan(plan):
        assert figures["mode"] == "local" and figures["child_kills"]
        assert [s["exit_code"] for s in figures["second_terminals"]] not in ([], [0], [None])
        assert figures["disk_fulls"] and figures["disk_fulls"][0]["filled_bytes"] > 0
        assert figures["sigterm_starts"]


def test_fault_plans_are_seeded_sorted_and_inside_the_window() -> None:
    cfg = ChaosConfig(trade_seconds=8.0)
    a = plan_faults(random.Random(5), cfg)
    assert a == plan_faults(random.Random(5), cfg)
    assert [f.at for f in a] == sorted(f.at for f in a)
    assert all(0 < f.at <= cfg.trade_seconds and f.kind in FAULT_KINDS for f in a)
    assert cfg.faults_min <= len(a) <= cfg.faults_max
    plans = [plan_faults(random.Random(s), cfg) for s in range(200)]
    assert {f.kind for p in plans for f in p} == set(FAULT_KINDS)
    local = [p for p in plans if is_local_plan(p)]
    assert 20 <= len(local) <= 80  # about a quarter run in local mode
    assert all({f.kind for f in p} <= LOCAL_KINDS for p in local)  # nothing that needs admin routes
    assert all(5 <= f.params["seconds"] <= 15 for p in plans for f in p if f.kind == "disk_full")
    assert all(0 <= f.params["after"] <= 1.5 for p in plans for f in p if f.kind == "sigterm_startup")


def test_orphan_scan_finds_what_names_the_run_dir_and_kills_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-1"
    inside = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(run_dir / "heron")])
    beside = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "run-10")])
    try:
        # a child between fork and exec still shows pytest's command line: scan once both run theirs
        def started(pid: int) -> bool:
            try:
                return b"time.sleep(60)" in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return False

        wait_for(
            "both children running their own command", lambda: started(inside.pid) and started(beside.pid)
        )
        found = processes_naming([run_dir])
        assert inside.pid in found and beside.pid not in found
        kill_processes(list(found))
        inside.wait(10)
        assert processes_naming([run_dir]) == {}
    finally:
        for p in (inside, beside):
            p.kill()
            p.wait(10)


def test_disk_full_fills_a_small_tmpfs_and_it_is_unmounted(tmp_path: Path) -> None:
    mount = tmp_path / "data"
    problem = mount_tmpfs(mount, 4)
    assert problem is None, f"disk_full cannot be injected on this machine: {problem}"
    try:
        written = fill_disk(mount / "filler")
        assert written >= 3 * (1 << 20)
        with pytest.raises(OSError):
            (mount / "one-more").write_bytes(b"x" * 8192)
        (mount / "filler").unlink()
        (mount / "one-more").write_bytes(b"x" * 8192)
    finally:
        assert unmount(mount) is None
    assert not (mount / "one-more").exists()


def test_verdict_fails_a_run_for_each_new_fault_that_went_wrong() -> None:
    clean: dict[str, Any] = {
        "duplicates_at_exchange": 0,
        "lost_fills": 0,
        "phantom_fills": 0,
        "unreconciled_divergences": 0,
        "account_divergences": 0,
        "recovery_exit_code": 0,
        "task_failures": [],
        "orphans": {},
        "faults_not_injectable": {},
        "second_terminals": [],
        "child_kills": [],
        "sigterm_starts": [],
    }
    assert verdict(clean) == []
    second = {"tag": "second0", "exit_code": 1, "stayed_up": False, "reached_active": False, "disturbed": []}
    assert verdict(clean | {"second_terminals": [second]}) == []
    # a child whose terminal another fault stopped 2 s after the kill had no time to be restarted
    assert (
        verdict(
            clean
            | {"child_kills": [{"at": 1.0, "pid": 5, "restarted_after": None, "owner_stopped_after": 2.0}]}
        )
        == []
    )
    # killed on a full disk (3-15 s): its terminal gets 10 s from when space is back, stopped at 14 s
    on_full = {"at": 4.0, "pid": 5, "restarted_after": None, "owner_stopped_after": 10.0}
    full = [{"at": 3.0, "full_seconds": 12.0}]
    assert verdict(clean | {"child_kills": [on_full], "disk_fulls": full}) == []
    assert verdict(clean | {"child_kills": [on_full | {"owner_stopped_after": 22.0}], "disk_fulls": full})
    bad: list[dict[str, Any]] = [
        {"second_terminals": [second | {"exit_code": None, "stayed_up": True}]},
        {"second_terminals": [second | {"exit_code": 0}]},
        {"second_terminals": [second | {"reached_active": True}]},
        {"second_terminals": [second | {"disturbed": ["the first terminal exited (0)"]}]},
        {"child_kills": [{"at": 1.0, "pid": 5, "restarted_after": None}]},
        {"sigterm_starts": [{"after": 0.5, "exit_code": None, "hung": True, "orphans": []}]},
        {"orphans": {"123": {"cmd": "python -m services.exchange", "seen": "at the end of the run"}}},
        {"account_divergences": 1},
        {"phantom_fills": 1},
        {"faults_not_injectable": {"disk_full": "mount exit 32: permission denied"}},
    ]
    for change in bad:
        assert verdict(clean | change), change


def test_summary_adds_up_runs_and_lists_failures() -> None:
    runs = [
        {
            "seed": 1,
            "ok": True,
            "faults_injected": {"ws_kill": 2},
            "orders_sent": 4,
            "intents": 4,
            "duplicates_at_exchange": 0,
            "lost_fills": 0,
            "unreconciled_divergences": 0,
            "recovery_seconds": 3.0,
        },
        {
            "seed": 2,
            "ok": False,
            "faults_injected": {"db_lock": 1, "ws_kill": 1},
            "orders_sent": 3,
            "intents": 3,
            "duplicates_at_exchange": 1,
            "lost_fills": 2,
            "unreconciled_divergences": 1,
            "recovery_seconds": 5.0,
        },
    ]
    s = summarize(runs, 10.0, {"seed": 1})
    assert s["runs_failed"] == [2]
    assert s["faults_injected_by_kind"]["ws_kill"] == 3 and s["faults_injected_total"] == 4
    assert (s["duplicates_at_exchange"], s["lost_fills"], s["unreconciled_divergences"]) == (1, 2, 1)
    assert s["recovery_seconds"]["max"] == 5.0
    runs[1] |= {
        "mode": "local",
        "orphans": {"7": {"cmd": "x", "seen": "at the end of the run"}},
        "account_divergences": 1,
        "child_kills": [{"at": 1, "pid": 7, "restarted_after": None}],
        "second_terminals": [
            {"tag": "second0", "exit_code": None, "stayed_up": True, "reached_active": True, "disturbed": []}
        ],
        "sigterm_starts": [{"after": 0.3, "exit_code": 0, "hung": False, "orphans": [7]}],
        "faults_not_injectable": {"disk_full": "mount failed"},
    }
    s = summarize(runs, 10.0, {"seed": 1})
    assert (s["orphaned_processes"], s["runs_with_orphans"], s["account_divergences"]) == (1, 1, 1)
    assert s["runs_local_mode"] == 1
    assert (s["child_kills"]["killed"], s["child_kills"]["restarted"]) == (1, 0)
    assert s["second_terminals"]["stayed_up"] == 1 and s["second_terminals"]["refused_in_time"] == 0
    assert s["sigterm_startups"]["left_an_orphan"] == 1
    assert s["faults_not_injectable_by_kind"] == {"disk_full": 1}
    assert "orphaned processes" in markdown(s)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_randomized_chaos_sweep(tmp_path: Path) -> None:
    n = int(os.environ.get("HERON_CHAOS_RUNS", "20"))
    runs = [run_chaos(7_000_000 + i, tmp_path) for i in range(n)]
    s = summarize(runs, 0.0, {"seed": 70})
    assert (s["duplicates_at_exchange"], s["lost_fills"], s["unreconciled_divergences"]) == (0, 0, 0), s
    assert s["runs_failed"] == [], s
