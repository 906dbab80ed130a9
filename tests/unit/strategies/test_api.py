from __future__ import annotations

from decimal import Decimal

import pytest

from services.domain.enums import OrderSide, OrderType
from services.strategies.api import Param, ParamError, StrategyPosition, parse_strategy_spec
from services.strategies.builtin import builtin_registry
from services.strategies.builtin.sma_crossover import SmaCrossover


def test_param_coerces_text_and_enforces_bounds() -> None:
    p = Param("fast", int, 10, minimum=1, maximum=50)
    assert p.coerce("12") == 12
    assert p.coerce(7) == 7
    with pytest.raises(ParamError, match="'fast' must be >= 1"):
        p.coerce("0")
    with pytest.raises(ParamError, match="'fast' must be <= 50"):
        p.coerce(51)
    with pytest.raises(ParamError, match="expected an integer"):
        p.coerce("1.5")
    with pytest.raises(ParamError, match="expected an integer"):
        p.coerce(True)


def test_param_types_round_trip_through_text() -> None:
    specs = [
        (Param("a", float, 1.0), "2.5", 2.5),
        (Param("b", Decimal, Decimal(1)), "0.10", Decimal("0.10")),
        (Param("c", bool, False), "yes", True),
        (Param("d", str, "long", choices=("long", "short")), "short", "short"),
        (Param("e", tuple, ("AAPL",)), "aapl;msft|btcusd", ("AAPL", "MSFT", "BTC/USD")),
    ]
    for spec, text, expected in specs:
        value = spec.coerce(text)
        assert value == expected
        assert spec.coerce(spec.to_text(value)) == expected


def test_param_rejects_bad_values_with_the_name() -> None:
    with pytest.raises(ParamError, match="'side' must be one of long, short"):
        Param("side", str, "long", choices=("long", "short")).coerce("sideways")
    with pytest.raises(ParamError, match=r"'ratio'.*finite"):
        Param("ratio", float, 1.0).coerce("nan")
    with pytest.raises(ParamError, match=r"'flag'.*true/false"):
        Param("flag", bool, False).coerce("maybe")
    with pytest.raises(ParamError, match="'symbols'"):
        Param("symbols", tuple, ("AAPL",)).coerce("not a symbol!")
    with pytest.raises(ParamError, match="'qty'"):
        Param("qty", Decimal, Decimal(1)).coerce("abc")


def test_strategy_params_validation_unknown_and_cross_field() -> None:
    s = SmaCrossover({"fast": "5", "slow": "20", "symbols": "MSFT", "qty": "3"})
    assert s.params["fast"] == 5 and s.params["slow"] == 20
    assert s.symbols == ("MSFT",) and s.params["qty"] == Decimal(3)
    with pytest.raises(ParamError, match=r"unknown parameter.*'speed'"):
        SmaCrossover({"speed": "1"})
    with pytest.raises(ParamError, match=r"fast .* must be smaller than slow"):
        SmaCrossover({"fast": 30, "slow": 10})
    assert s.params_as_text()["symbols"] == "MSFT"


def test_parse_strategy_spec() -> None:
    assert parse_strategy_spec("sma_crossover") == ("sma_crossover", {})
    assert parse_strategy_spec("sma_crossover:fast=5, slow=20,symbols=AAPL;MSFT") == (
        "sma_crossover",
        {"fast": "5", "slow": "20", "symbols": "AAPL;MSFT"},
    )
    for bad in ("", ":fast=1", "sma:fast", "sma:fast=1,fast=2"):
        with pytest.raises(ParamError):
            parse_strategy_spec(bad)


def test_registry_holds_every_builtin_and_their_params_describe() -> None:
    reg = builtin_registry()
    assert set(reg) == {
        "sma_crossover",
        "rsi_reversion",
        "vwap_reversion",
        "bollinger_reversion",
        "liquidity_sweep",
    }
    for key, cls in reg.items():
        assert key == cls.KEY
        cls({})  # defaults are valid
        described = [p.describe() for p in cls.param_specs()]
        assert {"symbols", "qty"} <= {d["name"] for d in described}


def test_position_pnl_with_reduce_and_flip() -> None:
    pos = StrategyPosition()
    pos.apply_fill(OrderSide.BUY, Decimal(10), Decimal(100))
    pos.apply_fill(OrderSide.BUY, Decimal(10), Decimal(110))
    assert pos.qty == 20 and pos.avg_price == Decimal(105)
    realized = pos.apply_fill(OrderSide.SELL, Decimal(5), Decimal(120))
    assert realized == Decimal(75) and pos.qty == 15
    pos.apply_fill(OrderSide.SELL, Decimal(20), Decimal(100))  # closes 15 (-75), opens short 5 @100
    assert pos.realized == Decimal(0)
    assert pos.qty == -5 and pos.avg_price == Decimal(100)
    pos.last_price = Decimal(90)
    assert pos.unrealized == Decimal(50)
    assert pos.pnl == Decimal(50)
    assert OrderType.MARKET.value == "market"


def test_strategy_from_cli_spec() -> None:
    from services.strategies.builtin import strategy_from_spec

    s = strategy_from_spec("sma_crossover:fast=3,slow=8,symbols=AAPL;MSFT,qty=2")
    assert isinstance(s, SmaCrossover) and s.symbols == ("AAPL", "MSFT") and s.params["slow"] == 8
    with pytest.raises(ParamError, match="unknown strategy 'nope'; available: bollinger_reversion"):
        strategy_from_spec("nope")
    with pytest.raises(ParamError, match="'fast' must be >= 1"):
        strategy_from_spec("sma_crossover:fast=0")
