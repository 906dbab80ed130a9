from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from app import settings as S
from services.domain.enums import Mode

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_missing_file_creates_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    loaded = S.load(path)
    assert loaded.mode is Mode.LOCAL and loaded.local_exchange.always_open is True
    assert json.loads(path.read_text())["schema_version"] == S.SCHEMA_VERSION


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = S.Settings(mode=Mode.PAPER, watchlist=["AAPL", "BTC/USD"])
    original.ui.confirm_orders = False
    original.ui.theme = "light"
    original.local_exchange.seed = 42
    original.risk["max_order_qty"] = "12.5"
    original.risk["daily_loss_limit"] = None
    S.save(original, path)
    again = S.load(path)
    assert again == original
    assert again.risk_decimal("max_order_qty") == Decimal("12.5")
    assert again.risk_decimal("daily_loss_limit") is None


def test_migrates_v0_flat_file_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    v0 = {"mode": "alpaca-paper", "confirm_orders": False, "theme": "dark", "symbols": ["msft", "AAPL"]}
    path.write_text(json.dumps(v0))
    loaded = S.load(path)
    assert loaded.mode is Mode.PAPER
    assert loaded.ui.confirm_orders is False
    assert loaded.watchlist == ["MSFT", "AAPL"]
    assert loaded.risk == S.DEFAULT_RISK
    assert json.loads(path.read_text())["schema_version"] == S.SCHEMA_VERSION
    assert json.loads((tmp_path / "settings.json.bak-v0").read_text()) == v0


def test_migrates_v1_comma_symbols_and_adds_risk(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    v1 = {
        "schema_version": 1,
        "mode": "local",
        "ui": {"confirm_orders": True, "theme": "dark"},
        "local_exchange": {"always_open": False, "symbols": "AAPL, SPY", "seed": 7},
        "watchlist": ["SPY"],
    }
    path.write_text(json.dumps(v1))
    loaded = S.load(path)
    assert loaded.local_exchange.symbols == ["AAPL", "SPY"]
    assert loaded.local_exchange.always_open is False and loaded.local_exchange.seed == 7
    assert loaded.risk["max_open_orders"] == 50
    assert (tmp_path / "settings.json.bak-v1").exists()


def test_corrupt_json_is_moved_aside_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"mode": "local",')
    with pytest.raises(S.SettingsError) as err:
        S.load(path, now=lambda: FIXED_NOW)
    aside = tmp_path / "settings.json.corrupt-20260102T030405Z"
    assert "not valid JSON" in str(err.value) and aside.name in str(err.value)
    assert aside.read_text() == '{"mode": "local",'
    assert not path.exists()  # nothing silently rewritten


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"mode": "alpaca-demo"}, "mode must be one of"),
        ({"ui": {"theme": "pink"}}, "ui.theme"),
        ({"ui": {"time_zone": "EST"}}, "ui.time_zone"),
        ({"ui": {"confirm_orders": "yes"}}, "ui.confirm_orders must be true or false"),
        ({"risk": {"max_order_qty": 100}}, "risk.max_order_qty must be a decimal string"),
        ({"risk": {"max_order_qty": "-1"}}, "zero or positive"),
        ({"risk": {"price_band_pct": "250"}}, "at most 100"),
        ({"risk": {"max_ordr_qty": "1"}}, "unknown limit"),
        ({"risk": {"max_open_orders": True}}, "risk.max_open_orders"),
        ({"local_exchange": {"seed": -3}}, "local_exchange.seed"),
        ({"watchlist": "AAPL"}, "watchlist must be a list"),
        ({"broker": {"secret": "abc"}}, "never hold secrets"),
        ({"colour": "blue"}, "unknown setting"),
        ({"chart": {"indicators": {"SMA": {"on": "yes"}}}}, "chart.indicators.SMA.on must be true or false"),
        (
            {"chart": {"indicators": {"SMA": {"period": True}}}},
            "chart.indicators.SMA.period must be a number",
        ),
        ({"chart": {"indicators": ["SMA"]}}, "chart.indicators must be an object"),
        ({"chart": {"zoom": 2}}, "chart has unknown setting"),
    ],
)
def test_invalid_values_are_refused_and_the_file_kept(tmp_path: Path, patch: dict, fragment: str) -> None:
    path = tmp_path / "settings.json"
    data = S.Settings().to_dict()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(S.SettingsError, match=fragment):
        S.load(path, now=lambda: FIXED_NOW)
    assert (tmp_path / "settings.json.corrupt-20260102T030405Z").exists()


def test_newer_schema_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": S.SCHEMA_VERSION + 1}))
    with pytest.raises(S.SettingsTooNewError, match="newer Heron"):
        S.load(path)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


def test_atomic_write_leaves_no_temporary_file_and_sets_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    S.atomic_write_text(path, "one", mode=0o600)
    S.atomic_write_text(path, "two", mode=0o600)
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    assert os.stat(path).st_mode & 0o777 == 0o600
