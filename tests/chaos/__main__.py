"""``uv run python -m tests.chaos --runs 200 --seed 1 --out DIR [--jobs 2]``: the full chaos run.

Each run (tests/chaos/harness.py) writes ``DIR/run-<seed>.json`` (and keeps ``DIR/run-<seed>/`` with
the terminal's logs and databases when the run failed); at the end ``DIR/summary.json`` and ``DIR/summary.md``
hold the totals. Exit status 0 only when every run is ok: 0 duplicates, 0 lost or phantom fills,
0 unreconciled divergences, 0 orphaned processes, a state report true to the exchange's account,
and every new fault (disk full, exchange child killed, second terminal, SIGTERM in start-up) both
injected and handled (tests/chaos/harness.py ``verdict``). ``--kinds`` narrows the faults drawn
(``--kinds child_kill,second_terminal --runs 3`` for a quick look at a few).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tests.chaos.harness import FAULT_KINDS, ChaosConfig, run_chaos


def summarize(figures: list[dict[str, Any]], wall: float, args: dict[str, Any]) -> dict[str, Any]:
    faults: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    not_injectable: Counter[str] = Counter()
    for f in figures:
        faults.update(f.get("faults_injected", {}))
        skipped.update(f.get("faults_skipped", {}))
        not_injectable.update((f.get("faults_not_injectable") or {}).keys())
    seconds = [s for f in figures for s in f.get("second_terminals") or []]
    kills = [k for f in figures for k in f.get("child_kills") or []]
    restarts = sorted(k["restarted_after"] for k in kills if k.get("restarted_after") is not None)
    sigterms = [s for f in figures for s in f.get("sigterm_starts") or []]
    rec = sorted(f["recovery_seconds"] for f in figures if f.get("recovery_seconds") is not None)

    def pct(p: float) -> float | None:
        return None if not rec else rec[min(len(rec) - 1, int(p * len(rec)))]

    def total(key: str) -> int:
        return sum(int(f.get(key, 0) or 0) for f in figures)

    return {
        "args": args,
        "runs": len(figures),
        "runs_ok": sum(1 for f in figures if f.get("ok")),
        "runs_failed": sorted(f["seed"] for f in figures if not f.get("ok")),
        "harness_errors": {str(f["seed"]): f["harness_error"] for f in figures if "harness_error" in f},
        "faults_injected_total": sum(faults.values()),
        "faults_injected_by_kind": {k: faults.get(k, 0) for k in FAULT_KINDS},
        "faults_skipped_by_kind": dict(skipped),
        "orders_sent": total("orders_sent"),
        "intents_journaled": total("intents"),
        "fills_at_exchange": total("fills_at_exchange"),
        "duplicates_at_exchange": total("duplicates_at_exchange"),
        "lost_fills": total("lost_fills"),
        "phantom_fills": total("phantom_fills"),
        "unreconciled_divergences": total("unreconciled_divergences"),
        "orphaned_processes": sum(len(f.get("orphans") or {}) for f in figures),
        "runs_with_orphans": sum(1 for f in figures if f.get("orphans")),
        "account_divergences": total("account_divergences"),
        "runs_local_mode": sum(1 for f in figures if f.get("mode") == "local"),
        "faults_not_injectable_by_kind": dict(not_injectable),
        "second_terminals": {
            "started": len(seconds),
            "refused_in_time": sum(
                1 for s in seconds if s["exit_code"] not in (0, None) and not s["reached_active"]
            ),
            "stayed_up": sum(1 for s in seconds if s["stayed_up"]),
            "exit_0": sum(1 for s in seconds if s["exit_code"] == 0),
            "reached_active": sum(1 for s in seconds if s["reached_active"]),
            "disturbed_the_first": sum(1 for s in seconds if s["disturbed"]),
        },
        "child_kills": {
            "killed": len(kills),
            "restarted": len(restarts),
            "restart_seconds_p50": None if not restarts else statistics.median(restarts),
            "restart_seconds_max": None if not restarts else restarts[-1],
        },
        "sigterm_startups": {
            "sent": len(sigterms),
            "hung": sum(1 for s in sigterms if s["hung"]),
            "left_an_orphan": sum(1 for s in sigterms if s["orphans"]),
        },
        "disk_fulls": sum(len(f.get("disk_fulls") or []) for f in figures),
        "hangs_at_quit": total("hangs_at_quit"),
        "task_failures": sum(len(f.get("task_failures") or []) for f in figures),
        "kill_switch_drills": sum(1 for f in figures if f.get("kill_switch_pulls")),
        "kill_switch_drills_not_run": sum(1 for f in figures if f.get("kill_switch_not_pulled")),
        "flattens_flat": sum(
            1 for f in figures if f.get("kill_switch_pulls") and not f.get("flatten_open_at_exchange")
        ),
        "flattens_reported_open": sum(1 for f in figures if f.get("flatten_reported_open")),
        "flattens_unreported": sum(1 for f in figures if f.get("flatten_unreported")),
        "flattens_cut_by_a_terminal_kill": sum(1 for f in figures if f.get("flatten_interrupted")),
        "runs_needing_second_restart_for_in_flight": sum(
            1 for f in figures if f.get("in_flight_after_first_recovery")
        ),
        "recovery_seconds": {
            "p50": None if not rec else statistics.median(rec),
            "p95": pct(0.95),
            "max": None if not rec else rec[-1],
            "measured_runs": len(rec),
        },
        "wall_seconds": round(wall, 1),
    }


def markdown(s: dict[str, Any]) -> str:
    r = s["recovery_seconds"]
    ck, st, sg = s["child_kills"], s["second_terminals"], s["sigterm_startups"]
    lines = [
        f"# Chaos run: {s['runs']} randomized fault runs (seed {s['args']['seed']})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| runs (ok / failed) | {s['runs']} ({s['runs_ok']} / {len(s['runs_failed'])}) |",
        f"| faults injected | {s['faults_injected_total']} |",
        f"| orders sent (at the exchange) | {s['orders_sent']} |",
        f"| fills at the exchange (orders with fills) | {s['fills_at_exchange']} |",
        f"| duplicate orders at the exchange | {s['duplicates_at_exchange']} |",
        f"| lost fills | {s['lost_fills']} |",
        f"| phantom fills | {s['phantom_fills']} |",
        f"| unreconciled divergences | {s['unreconciled_divergences']} |",
        f"| orphaned processes after a run (runs with any) | {s['orphaned_processes']} "
        f"({s['runs_with_orphans']}) |",
        f"| state reports untrue to the exchange's account (cash, equity, positions) | "
        f"{s['account_divergences']} |",
        f"| runs in local mode (the terminal's own child exchange) | {s['runs_local_mode']} |",
        f"| disk full for 5-15 s | {s['disk_fulls']} |",
        f"| exchange child killed / restarted by the terminal (p50 / max s) | {ck['killed']} / "
        f"{ck['restarted']} ({ck['restart_seconds_p50']} / {ck['restart_seconds_max']}) |",
        f"| second terminals: started / refused in time / stayed up / exit 0 / trading ACTIVE / "
        f"disturbed the first | {st['started']} / {st['refused_in_time']} / {st['stayed_up']} / "
        f"{st['exit_0']} / {st['reached_active']} / {st['disturbed_the_first']} |",
        f"| SIGTERM in start-up: sent / hung / left an orphan | {sg['sent']} / {sg['hung']} / "
        f"{sg['left_an_orphan']} |",
        f"| faults that could not be injected | {s['faults_not_injectable_by_kind'] or 0} |",
        f"| hangs at quit | {s['hangs_at_quit']} |",
        f"| background tasks that died | {s['task_failures']} |",
        f"| kill-switch flatten drills run (planned but not run) | {s['kill_switch_drills']} "
        f"({s['kill_switch_drills_not_run']}) |",
        f"| flattens ending flat / open and reported / open and unreported | {s['flattens_flat']} / "
        f"{s['flattens_reported_open']} / {s['flattens_unreported']} |",
        f"| flattens cut short by a SIGKILL of the terminal | {s['flattens_cut_by_a_terminal_kill']} |",
        f"| recovery (restart to ACTIVE) p50 / p95 / max | {r['p50']} / {r['p95']} / {r['max']} s |",
        f"| wall time | {s['wall_seconds']} s |",
        "",
        "| fault | injected |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in s["faults_injected_by_kind"].items()),
    ]
    if s["runs_failed"]:
        lines += ["", f"Failed runs (seeds): {s['runs_failed']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--seed", type=int, default=1, help="run i uses seed SEED*100000+i")
    p.add_argument("--out", type=Path, required=True, help="directory for per-run figures and the summary")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (each is 2-3 processes)")
    p.add_argument("--trade-seconds", type=float, default=8.0, help="length of each faulted window")
    p.add_argument(
        "--kinds",
        default=",".join(FAULT_KINDS),
        help="comma-separated fault kinds to draw from (default: all)",
    )
    p.add_argument(
        "--local-share",
        type=float,
        default=0.25,
        help="share of runs in local mode (with an exchange child kill); 0..1",
    )
    a = p.parse_args(argv)
    kinds = tuple(k.strip() for k in a.kinds.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or not kinds:
        p.error(f"--kinds: unknown fault kind(s) {unknown}; known: {', '.join(FAULT_KINDS)}")
    if not 0 <= a.local_share <= 1:
        p.error(f"--local-share must be between 0 and 1, got {a.local_share}")
    a.out.mkdir(parents=True, exist_ok=True)
    cfg = ChaosConfig(trade_seconds=a.trade_seconds, kinds=kinds, local_share=a.local_share)
    seeds = [a.seed * 100_000 + i for i in range(a.runs)]
    started = time.monotonic()
    figures: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        futures = [pool.submit(run_chaos, s, a.out, cfg) for s in seeds]
        for fut in as_completed(futures):
            f = fut.result()
            figures.append(f)
            print(
                f"[{len(figures)}/{a.runs}] seed {f['seed']}: {'ok' if f.get('ok') else 'FAILED'} "
                f"faults {f.get('faults_total')} orders {f.get('orders_sent')} "
                f"dup {f.get('duplicates_at_exchange')} lost {f.get('lost_fills')} "
                f"div {f.get('unreconciled_divergences')} orphans {len(f.get('orphans') or {})} "
                f"account {f.get('account_divergences')} recovery {f.get('recovery_seconds')} s "
                f"wall {f.get('wall_seconds')} s" + "".join(f"\n    {w}" for w in f.get("failures") or []),
                flush=True,
            )
            summary = summarize(figures, time.monotonic() - started, vars(a) | {"out": str(a.out)})
            (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
            (a.out / "summary.md").write_text(markdown(summary))
    summary = summarize(figures, time.monotonic() - started, vars(a) | {"out": str(a.out)})
    print(markdown(summary))
    return 0 if not summary["runs_failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
