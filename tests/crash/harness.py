"""Crash harness: the terminal headless as a subprocess against a separately started exchange.

:func:`run_terminal` starts ``main.py --headless --exchange-url URL --exchange-keys FILE`` with a
data dir that survives between runs; ``crash_at`` arms the TEST-ONLY crash point
(``HERON_CRASH_AT``, see app/crashpoints.py), which kills the process with SIGKILL. After a crash
:func:`run_terminal` is called again (no script, no crash point) against the same exchange and data
dir, and :func:`check_invariants` compares what the terminal believes with the exchange:

- zero duplicate orders at the exchange (client_order_id unique, at most one per scripted intent:
  an order, or a replace, which makes one new order at the broker);
- zero lost fills: per broker order, the exchange's FILL activities add up to the terminal's
  booked fills (quantities; the terminal may book a catch-up fill inferred from a snapshot as one
  fill where the exchange had several executions, so quantities are compared, not counts);
- local positions == broker positions;
- the state report says reconciliation is clean.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.domain.symbols import crypto_pair
from tests.support.exchange import ExchangeProcess

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    returncode: int
    stderr: str
    report: dict[str, Any] | None


def run_terminal(
    ex: ExchangeProcess,
    data_dir: Path,
    *,
    quit_after: float,
    script: list[dict[str, Any]] | None = None,
    crash_at: str | None = None,
    crash_after: int = 1,
    extra: tuple[str, ...] = (),
    timeout: float = 90.0,
) -> Run:
    data_dir.mkdir(parents=True, exist_ok=True)
    report = data_dir / "report.json"
    report.unlink(missing_ok=True)
    args = [
        sys.executable,
        str(REPO / "main.py"),
        "--headless",
        "--data-dir",
        str(data_dir),
        "--exchange-url",
        ex.url,
        "--exchange-keys",
        str(ex.keys_file),
        "--quit-after",
        str(quit_after),
        "--state-report",
        str(report),
        *extra,
    ]
    if script is not None:
        path = data_dir / "script.json"
        path.write_text(json.dumps(script))
        args += ["--script", str(path)]
    env = dict(os.environ)
    env.pop("HERON_CRASH_AT", None)
    if crash_at is not None:
        env["HERON_CRASH_AT"] = crash_at
        env["HERON_CRASH_AFTER"] = str(crash_after)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    data = json.loads(report.read_text()) if report.exists() else None
    return Run(proc.returncode, proc.stderr, data)


def exchange_orders(ex: ExchangeProcess) -> list[dict[str, Any]]:
    status, body = ex.request("GET", "/v2/orders?status=all&limit=500&nested=false")
    assert status == 200, body
    return list(body)


def exchange_fill_qty(ex: ExchangeProcess) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for r in exchange_fills(ex):
        out[r["order_id"]] = out.get(r["order_id"], Decimal(0)) + Decimal(str(r["qty"]))
    return out


def exchange_fills(ex: ExchangeProcess) -> list[dict[str, Any]]:
    """Every FILL activity at the exchange, oldest first."""
    status, body = ex.request("GET", "/v2/account/activities/FILL?direction=asc&page_size=100")
    assert status == 200, body
    rows = list(body)
    while len(body) == 100:
        status, body = ex.request(
            "GET", f"/v2/account/activities/FILL?direction=asc&page_size=100&page_token={rows[-1]['id']}"
        )
        rows += body
    return rows


def exchange_positions(ex: ExchangeProcess) -> dict[str, str]:
    """The exchange's positions keyed as Heron keys them: a crypto position, listed as ``BTCUSD``
    like Alpaca lists it (alpaca-py #179, #537), under its pair ``BTC/USD``."""
    status, body = ex.request("GET", "/v2/positions")
    assert status == 200, body
    return {
        crypto_pair(p["symbol"]) if p["asset_class"] == "crypto" else p["symbol"]: _norm(p["qty"])
        for p in body
        if Decimal(str(p["qty"])) != 0
    }


def local_fill_qty(data_dir: Path) -> dict[str, Decimal]:
    db = data_dir / "profiles" / "default" / "heron.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT order_id, qty FROM order_fills WHERE logical_id != 'adjustment'"
        ).fetchall()
    out: dict[str, Decimal] = {}
    for order_id, qty in rows:
        out[order_id] = out.get(order_id, Decimal(0)) + Decimal(str(qty))
    return out


def _norm(q: Any) -> str:
    d = Decimal(str(q))
    text = format(d.normalize(), "f")
    return text


def check_invariants(ex: ExchangeProcess, data_dir: Path, report: dict[str, Any], intents: int) -> None:
    orders = [o for o in exchange_orders(ex) if o["client_order_id"].startswith("hr-")]
    coids = [o["client_order_id"] for o in orders]
    assert len(coids) == len(set(coids)), f"duplicate client_order_ids at the exchange: {coids}"
    assert len(orders) <= intents, f"{len(orders)} orders at the exchange for {intents} intents"
    broker_fills = exchange_fill_qty(ex)
    local_fills = local_fill_qty(data_dir)
    assert broker_fills == local_fills, f"fills differ: broker {broker_fills} local {local_fills}"
    broker_pos = exchange_positions(ex)
    local_pos = {s: _norm(q) for s, q in report["positions"]["local"].items()}
    assert local_pos == broker_pos, f"positions differ: local {local_pos} broker {broker_pos}"
    assert {s: _norm(q) for s, q in report["positions"]["broker"].items()} == broker_pos
    assert report["reconciliation"]["clean"] is True, report["reconciliation"]
    assert report["reconciliation"]["open_incidents"] == []


def random_script(rng: random.Random, n: int, *, ensure: str | None = None) -> list[dict[str, Any]]:
    """Market orders (some large enough for seeded partial fills), resting limits, and replaces
    and cancels of the newest resting limit (a replace works a new qty at a new price).

    ``ensure`` ("replace" or "cancel"): the script has at least one such entry, so a crash point
    on that path is reached."""
    out: list[dict[str, Any]] = []
    resting = 0  # resting limits placed and not canceled by the script
    for _ in range(n):
        symbol = rng.choice(["AAPL", "MSFT", "SPY"])
        kind = rng.random()
        if resting and kind < 0.35:
            delay = round(rng.uniform(0.1, 0.5), 2)
            if rng.random() < 0.6:
                out.append(
                    {
                        "action": "replace",
                        "qty": str(rng.choice([1, 2, 4])),
                        "limit_price": {"offset_pct": rng.choice([-4, -6])},
                        "delay": delay,
                    }
                )
            else:
                out.append({"action": "cancel", "delay": delay})
                resting -= 1
            continue
        if kind < 0.6:
            qty = str(rng.choice([1, 5, 50, 200]))
            out.append(
                {
                    "symbol": symbol,
                    "side": rng.choice(["buy", "sell"]),
                    "qty": qty,
                    "type": "market",
                    "delay": round(rng.uniform(0, 0.4), 2),
                }
            )
        else:
            out.append(
                {
                    "symbol": symbol,
                    "side": "buy",
                    "qty": "3",
                    "type": "limit",
                    "limit_price": {"offset_pct": -5},
                    "time_in_force": "gtc",
                    "delay": round(rng.uniform(0, 0.4), 2),
                }
            )
            resting += 1
    if ensure is not None and not any(e.get("action") == ensure for e in out):
        if not resting:
            out.append(
                {
                    "symbol": rng.choice(["AAPL", "MSFT", "SPY"]),
                    "side": "buy",
                    "qty": "3",
                    "type": "limit",
                    "limit_price": {"offset_pct": -5},
                    "time_in_force": "gtc",
                }
            )
        entry: dict[str, Any] = {"action": ensure, "delay": 0.3}
        if ensure == "replace":
            entry.update(qty=str(rng.choice([1, 2, 4])), limit_price={"offset_pct": rng.choice([-4, -6])})
        out.append(entry)
    return out
