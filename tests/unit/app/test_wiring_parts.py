"""Unit tests of the composition root's small parts: crash points, order scripts,
risk-limit mapping, CLI flags and the strategy spec check."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.cli import parse_args, parse_strategy_spec
from app.crashpoints import CrashPoint, from_env
from app.script import ScriptError, load_script
from app.settings import DEFAULT_RISK
from app.subsystems.orders import risk_limits_from_settings
from app.subsystems.strategies import check_strategy_specs


def test_crash_point_fires_only_at_its_point_and_count() -> None:
    died: list[str] = []
    cp = CrashPoint("after_post", after=2, die=died.append)
    cp.reached("after_journal")
    cp.reached("after_post")
    assert died == []
    cp.reached("after_post")
    assert died == ["after_post"]
    assert from_env({}) is None
    with pytest.raises(ValueError):
        from_env({"HERON_CRASH_AT": "nowhere"})


def test_order_script_parses_and_refuses_bad_entries(tmp_path: Path) -> None:
    good = tmp_path / "s.json"
    good.write_text(
        json.dumps(
            [
                {"symbol": "aapl", "side": "buy", "qty": "5"},
                {
                    "symbol": "BTC/USD",
                    "side": "sell",
                    "qty": 0.5,
                    "type": "limit",
                    "limit_price": {"offset_pct": 3},
                },
            ]
        )
    )
    a, b = load_script(good)
    assert a.symbol == "AAPL" and a.qty == Decimal("5") and a.time_in_force.value == "day"
    assert b.time_in_force.value == "gtc" and b.offset_pct == Decimal("3")
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", "qty": "-1"}]))
    with pytest.raises(ScriptError, match="entry 1 qty"):
        load_script(bad)


def test_order_script_replace_and_cancel_entries(tmp_path: Path) -> None:
    good = tmp_path / "s.json"
    good.write_text(
        json.dumps(
            [
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "3",
                    "type": "limit",
                    "limit_price": {"offset_pct": -5},
                },
                {"action": "replace", "qty": "2", "limit_price": {"offset_pct": -4}},
                {"action": "replace", "qty": "1"},
                {"action": "cancel", "delay": 0.5},
            ]
        )
    )
    _, rep, rep_qty, can = load_script(good)
    assert (rep.action, rep.replace_qty, rep.offset_pct) == ("replace", Decimal(2), Decimal(-4))
    assert (rep_qty.replace_qty, rep_qty.offset_pct, rep_qty.limit_price) == (Decimal(1), None, None)
    assert (can.action, can.delay) == ("cancel", 0.5)
    for entries, why in (
        ([{"action": "replace"}], "needs limit_price or qty"),
        ([{"action": "replace", "qty": "0"}], "positive"),
        ([{"action": "amend"}], "action must be one of"),
    ):
        bad = tmp_path / "b.json"
        bad.write_text(json.dumps(entries))
        with pytest.raises(ScriptError, match=why):
            load_script(bad)


def test_settings_risk_maps_onto_the_risk_layer() -> None:
    limits = risk_limits_from_settings(dict(DEFAULT_RISK, symbol_deny=["GME"], daily_loss_limit="750"))
    assert limits.max_daily_loss == Decimal("750")
    assert limits.deny_symbols == frozenset({"GME"})
    assert limits.max_order_qty == Decimal("1000")
    off = risk_limits_from_settings(dict(DEFAULT_RISK, max_order_qty=None))
    assert off.max_order_qty > Decimal("1e9")


def test_cli_live_confirmation_and_new_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(
        [
            "--mode",
            "alpaca-live",
            "--headless",
            "--confirm-live",
            "LIVE",
            "--bar-seconds",
            "5",
            "--on-exit",
            "cancel-all",
        ]
    )
    assert args.confirm_live == "LIVE" and args.bar_seconds == 5 and args.on_exit == "cancel-all"
    with pytest.raises(SystemExit):
        parse_args(["--mode", "alpaca-live", "--confirm-live", "yes"])
    with pytest.raises(SystemExit):
        parse_args(["--confirm-live", "LIVE"])  # not live mode
    assert "--confirm-live" in capsys.readouterr().err


def test_strategy_specs_are_checked_before_start() -> None:
    assert check_strategy_specs([parse_strategy_spec("sma_crossover:fast=2,slow=5")]) is None
    assert "unknown strategy" in (check_strategy_specs([parse_strategy_spec("nope")]) or "")
    assert "fast" in (check_strategy_specs([parse_strategy_spec("sma_crossover:fast=9,slow=3")]) or "")
