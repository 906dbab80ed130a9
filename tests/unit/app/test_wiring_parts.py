"""Unit tests of the composition root's small parts: interval bars, crash points, order scripts,
risk-limit mapping, CLI flags and the strategy spec check."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.bootstrap import check_strategy_specs, risk_limits_from_settings
from app.cli import parse_args, parse_strategy_spec
from app.crashpoints import CrashPoint, from_env
from app.fastbars import IntervalBarBuilder
from app.script import ScriptError, load_script
from app.settings import DEFAULT_RISK
from services.domain.models import Bar
from services.marketdata.coalescer import TradeStats


def _stats(last: float, high: float, low: float, volume: float) -> TradeStats:
    return TradeStats(last, high, low, volume, 1, 0)


def test_interval_bars_close_on_the_next_bucket_with_exact_high_low_volume() -> None:
    out: list[Bar] = []
    b = IntervalBarBuilder(5, [out.extend], wall=lambda: 0.0)
    b.add("AAPL", _stats(10.0, 10.5, 9.5, 3), 100.0)
    b.add("AAPL", _stats(11.0, 11.2, 10.8, 2), 103.0)
    assert out == []
    b.add("AAPL", _stats(12.0, 12.0, 12.0, 1), 105.0)  # next 5-second bucket
    (bar,) = out
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("10.0"), Decimal("11.2"), Decimal("9.5"), Decimal("11.0"), Decimal("5")
    )
    assert bar.ts.timestamp() == 100.0
    b.close_due(111.0)
    assert len(out) == 2 and out[1].open == Decimal("11.0")  # opens at the previous close


@pytest.mark.expected_log(r"^app\.fastbars: a bar consumer failed; the others still")
def test_a_failing_bar_consumer_does_not_starve_the_others() -> None:
    got: list[Bar] = []

    def boom(_: list[Bar]) -> None:
        raise RuntimeError("x")

    b = IntervalBarBuilder(1, [boom, got.extend])
    b.add("MSFT", _stats(1.0, 1.0, 1.0, 1), 10.0)
    b.close_due(12.0)
    assert len(got) == 1


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
    good.write_text(json.dumps([
        {"symbol": "aapl", "side": "buy", "qty": "5"},
        {"symbol": "BTC/USD", "side": "sell", "qty": 0.5, "type": "limit", "limit_price": {"offset_pct": 3}},
    ]))
    a, b = load_script(good)
    assert a.symbol == "AAPL" and a.qty == Decimal("5") and a.time_in_force.value == "day"
    assert b.time_in_force.value == "gtc" and b.offset_pct == Decimal("3")
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", "qty": "-1"}]))
    with pytest.raises(ScriptError, match="entry 1 qty"):
        load_script(bad)


def test_order_script_replace_and_cancel_entries(tmp_path: Path) -> None:
    good = tmp_path / "s.json"
    good.write_text(json.dumps([
        {"symbol": "AAPL", "side": "buy", "qty": "3", "type": "limit", "limit_price": {"offset_pct": -5}},
        {"action": "replace", "qty": "2", "limit_price": {"offset_pct": -4}},
        {"action": "replace", "qty": "1"},
        {"action": "cancel", "delay": 0.5},
    ]))
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
    args = parse_args(["--mode", "alpaca-live", "--headless", "--confirm-live", "LIVE", "--bar-seconds", "5",
                       "--on-exit", "cancel-all"])
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
