"""Ledger: cash and average-price bookkeeping, valuation, buying power."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.exchange.contracts import NBBO
from services.exchange.ledger import Ledger

D = Decimal


def nbbo(sym: str, last: str, prev: str = "0") -> NBBO:
    p = D(last)
    return NBBO(sym, p, p, D(1), D(1), p, datetime(2025, 1, 2, tzinfo=UTC), D(prev) if prev != "0" else p)


def test_average_entry_weighted_on_increase_unchanged_on_decrease_reset_at_zero() -> None:
    led = Ledger(account_id="a", cash=D(10000))
    assert led.apply_fill("X", "buy", D(10), D(10)) == 10
    assert led.apply_fill("X", "buy", D(10), D(20)) == 20
    assert led.positions["X"].avg_entry_price == D(15)
    assert led.apply_fill("X", "sell", D(5), D(30)) == 15
    assert led.positions["X"].avg_entry_price == D(15) and led.positions["X"].cost_basis == D(225)
    assert led.apply_fill("X", "sell", D(15), D(1)) == 0
    assert "X" not in led.positions
    assert led.apply_fill("X", "sell", D(2), D(50)) == -2
    assert led.positions["X"].avg_entry_price == D(50)
    # cash + sum(signed qty * price) is the starting cash
    assert led.cash == D(10000) - 100 - 200 + 150 + 15 + 100


def test_equity_and_buying_power_with_a_short() -> None:
    led = Ledger(account_id="a", cash=D(1000))
    led.apply_fill("L", "buy", D(2), D(100))
    led.apply_fill("S", "sell", D(4), D(50))
    q = {"L": nbbo("L", "110"), "S": nbbo("S", "40")}
    assert led.cash == D(1000)
    assert led.market_values(q) == (D(220), D(-160))
    assert led.equity(q) == D(1060)
    assert led.buying_power(q, D(100)) == D(1000) - D(160) * D("1.025") - 100
    assert led.buying_power(q, D(10**6)) == 0


def test_position_json_short_is_negative_and_pl_signs_are_right() -> None:
    from services.exchange.contracts import Instrument

    led = Ledger(account_id="a", cash=D(1000))
    led.apply_fill("S", "sell", D(4), D(50), at=datetime(2025, 1, 2, 15, tzinfo=UTC))
    inst = Instrument("S", "us_equity", "NYSE", "S", D(50), D("0.01"))
    # carried from yesterday: the day's P&L is measured from yesterday's close
    j = led.position_json(led.positions["S"], inst, nbbo("S", "40", prev="45"), D(4), today=date(2025, 1, 3))
    assert j["side"] == "short" and j["qty"] == "-4" and j["market_value"] == "-160"
    assert (
        j["unrealized_pl"] == "40" and j["lastday_price"] == "45" and j["change_today"].startswith("-0.111")
    )
    assert j["unrealized_intraday_pl"] == "20"
