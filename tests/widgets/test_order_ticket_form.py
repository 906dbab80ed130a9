"""The ticket's form as data (no widget): OCO exits of a short, legs on their own fields, and the
times in force offered. Sources as in test_order_ticket_desk.py ([ORD "OCO Orders"], [ORD
"Threshold on stop price of stop-loss orders"], [ORD "Time in Force"])."""

from __future__ import annotations

from decimal import Decimal

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from widgets.order_ticket.form import AmountKind, FormValues, Market, read, tif_choices

MARKET = Market(Decimal("99.90"), Decimal("100.10"), Decimal("100.00"))


def oco(side: OrderSide, tp: str, sl: str, qty: str = "5") -> FormValues:
    return FormValues("AAPL", side, AmountKind.QTY, qty, OrderType.LIMIT, TimeInForce.GTC,
                      OrderClass.OCO, take_profit=tp, stop_loss=sl)  # fmt: skip


def test_oco_exit_of_a_short_buys_with_the_take_profit_below() -> None:
    state = read(oco(OrderSide.BUY, "95", "105"), MARKET, Decimal(-5))
    req = state.request
    assert req is not None and req.side is OrderSide.BUY and req.limit_price is None
    assert req.take_profit.limit_price == Decimal(95) and req.stop_loss.stop_price == Decimal(105)  # type: ignore[union-attr]
    wrong = read(oco(OrderSide.BUY, "105", "95"), MARKET, Decimal(-5)).errors
    assert wrong["take_profit"] == "the take-profit must be below the market (100)"
    assert wrong["stop_loss"] == "the stop-loss must be above the market (100)"
    assert read(oco(OrderSide.SELL, "95", "105"), MARKET, Decimal(-5)).errors["side"] == (
        "an OCO exits the short position: buy"
    )
    assert read(oco(OrderSide.BUY, "95", "105", qty="6"), MARKET, Decimal(-5)).errors["amount"] == (
        "more than the 5 held"
    )


def test_oco_stop_at_least_a_cent_from_the_take_profit() -> None:
    """The take-profit's limit is an OCO's base price; with no market known only that applies."""
    errors = read(oco(OrderSide.SELL, "100.00", "99.995"), None, Decimal(5)).errors
    assert errors == {"stop_loss": "the stop-loss must be at least 0.01 below the take-profit"}


def test_times_in_force_offered() -> None:
    assert tif_choices(True, OrderType.LIMIT, OrderClass.SIMPLE, False) == [TimeInForce.GTC, TimeInForce.IOC]
    assert tif_choices(False, OrderType.MARKET, OrderClass.SIMPLE, False) == list(TimeInForce)
    assert tif_choices(False, OrderType.LIMIT, OrderClass.BRACKET, False) == [
        TimeInForce.DAY,
        TimeInForce.GTC,
    ]
    assert tif_choices(False, OrderType.LIMIT, OrderClass.SIMPLE, True) == [TimeInForce.DAY]
