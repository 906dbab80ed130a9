"""Every number parser refuses absurd magnitudes and exponents with a clear error.

``Decimal("1e-999999999")`` is a valid, finite Decimal; its plain-notation text (what Heron sends to
Alpaca and writes to state files) is a gigabyte. Alpaca itself takes "up to 9 decimal point values"
for qty and notional (Alpaca support, "How can I pass a fractional order?",
https://alpaca.markets/support/how-can-i-pass-a-fractional-order), so no honest value comes near the
bounds in ``services.domain.money``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.script import ScriptError, load_script
from app.settings import SettingsError, from_dict
from services.domain.money import InvalidNumberError, decimal_str, to_decimal
from services.risk.limits import RiskLimits, RiskLimitsError
from services.strategies.api import COMMON_PARAMS, Param, ParamError
from services.strategies.builtin.sma_crossover import SmaCrossover

ABSURD = ["1e-999999999", "1E+999999999", "0e-999999999", "1e16", "-12345678901234567", "9" * 200]


@pytest.mark.parametrize("text", ABSURD)
def test_to_decimal_refuses_absurd_text(text: str) -> None:
    with pytest.raises(InvalidNumberError, match="qty"):
        to_decimal(text, field="qty")


def test_to_decimal_refuses_absurd_decimal_int_and_float() -> None:
    with pytest.raises(InvalidNumberError, match="out of range"):
        to_decimal(10**5000, field="qty")
    with pytest.raises(InvalidNumberError, match="decimal places"):
        to_decimal(Decimal("1e-999999999"), field="qty")
    with pytest.raises(InvalidNumberError, match="out of range"):
        to_decimal(1e300, field="qty")
    with pytest.raises(InvalidNumberError, match="decimal places"):
        to_decimal(5e-324, field="qty")


@pytest.mark.parametrize(
    "text", ["0.000000001", "123456789012345.5", "-0", "0.30000000000000004", "1e-9", "2.5E+3", " 7 "]
)
def test_to_decimal_keeps_ordinary_values(text: str) -> None:
    value = to_decimal(text)
    assert value == Decimal(text.strip())
    assert len(decimal_str(value) or "") < 60


def test_strategy_quantity_1e_minus_999999999_is_refused() -> None:
    """The case from the field: this quantity cost 5 GB of memory and a 1 GB state file."""
    qty = next(p for p in COMMON_PARAMS if p.name == "qty")
    with pytest.raises(ParamError, match=r"qty.*decimal places"):
        qty.coerce("1e-999999999")
    with pytest.raises(ParamError, match="qty"):
        SmaCrossover({"qty": "1e-999999999"})


@pytest.mark.parametrize(
    ("kind", "text"), [(float, "1e308"), (float, "1e-999999999"), (int, "9" * 30), (Decimal, "1e999")]
)
def test_strategy_number_parameters_refuse_absurd_values(kind: type, text: str) -> None:
    param = Param("x", kind, kind(1))
    with pytest.raises(ParamError, match="'x'"):
        param.coerce(text)


def _script(tmp_path: Path, entry: dict[str, Any]) -> Path:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", **entry}]), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "entry",
    [
        {"qty": "1e-999999999"},
        {"qty": 1e300},
        {"qty": "1", "type": "limit", "limit_price": "1E+999999"},
        {"qty": "1", "type": "limit", "limit_price": {"offset_pct": "1e-999999999"}},
        {"qty": "1", "delay": 1e300},
        {"qty": "1", "delay": "soon"},
    ],
)
def test_order_script_refuses_absurd_numbers(tmp_path: Path, entry: dict[str, Any]) -> None:
    with pytest.raises(ScriptError, match="entry 1"):
        load_script(_script(tmp_path, entry))


def test_order_script_keeps_ordinary_numbers(tmp_path: Path) -> None:
    (order,) = load_script(_script(tmp_path, {"qty": "0.5", "delay": 2}))
    assert order.qty == Decimal("0.5") and order.delay == 2.0


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_order_qty", "1e-999999999"), ("max_order_notional", "1e999999"), ("max_open_orders", 10**40)],
)
def test_settings_refuse_absurd_risk_numbers(key: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"risk.{key}"):
        from_dict({"risk": {key: value}})


def test_settings_refuse_absurd_exchange_seed() -> None:
    with pytest.raises(SettingsError, match="seed"):
        from_dict({"local_exchange": {"seed": 10**40}})


@pytest.mark.parametrize(("key", "text"), [("max_order_qty", "1e-999999999"), ("max_open_orders", "9" * 30)])
def test_risk_limits_from_strings_refuse_absurd_values(key: str, text: str) -> None:
    with pytest.raises(RiskLimitsError, match=key):
        RiskLimits.from_strings({key: text})
    assert RiskLimits.from_strings({key: "12"}) is not None
