"""The runner's record of one strategy survives the state file: written, read back, equal."""

from __future__ import annotations

import json
from decimal import Decimal

from services.domain.enums import OrderSide
from services.strategies.api import Param, Signal, Strategy, StrategyPosition, StrategyState
from services.strategies.managed import ManagedStrategy, PendingOrder


class Probe(Strategy):
    KEY = "probe"
    PARAMS = (Param("symbols", tuple, ("AAPL",), "symbols"),)


def test_record_round_trip_through_json() -> None:
    m = ManagedStrategy("probe-1", Probe())
    m.state = StrategyState.PAUSED
    m.orders, m.rejected = 3, 1
    m.signals = {"AAPL": Signal.LONG}
    m.last_signal = Signal.LONG
    m.custom = {"seen": 4}
    m.positions["AAPL"] = pos = StrategyPosition()
    pos.apply_fill(OrderSide.BUY, Decimal("2.5"), Decimal("100.10"))
    m.pending["st-probe-1"] = PendingOrder("AAPL", Decimal("-1.5"))
    rec = json.loads(json.dumps(m.to_record()))
    assert rec["key"] == "probe" and rec["state"] == "paused" and rec["last_signal"] == "LONG"
    assert rec["pending"] == {"st-probe-1": {"symbol": "AAPL", "remaining": "-1.5"}}

    back = ManagedStrategy("probe-1", Probe())
    back.load_record(rec)
    assert back.restored and back.state is StrategyState.CREATED  # the lifecycle is the runner's call
    assert (back.orders, back.rejected, back.custom) == (3, 1, {"seen": 4})
    assert back.signals == {"AAPL": Signal.LONG} and back.last_signal is Signal.LONG
    assert back.positions["AAPL"].qty == Decimal("2.5") and back.positions["AAPL"].avg_price == Decimal(
        "100.10"
    )
    [(coid, pending)] = back.pending.items()
    assert coid == "st-probe-1" and (pending.symbol, pending.remaining) == ("AAPL", Decimal("-1.5"))


def test_an_empty_record_restores_defaults() -> None:
    back = ManagedStrategy("probe-2", Probe())
    back.load_record({"key": "probe"})
    assert back.restored and back.orders == 0 and back.last_signal is None
    assert back.positions == {} and back.pending == {} and back.custom == {}
