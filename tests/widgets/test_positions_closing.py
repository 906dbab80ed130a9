"""Close and Flatten name the working orders they cancel first, and each failure is said loudly:
a message box and the log at ERROR, never only a status line.

Alpaca: closing cancels the symbol's working orders first, since they hold the shares a closing order
needs (alpaca-trade-api-python #129, "insufficient qty available for order"); a cancel can be refused
with 422 (Alpaca API reference, "Cancel an Open Order")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.broker.base import BrokerRejected
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from services.orders.working import known_working_orders
from tests.widgets import trading_rig
from tests.widgets.test_positions import buy
from tests.widgets.trading_rig import Rig, settle_until
from widgets.positions import PositionsPanel

qloop = trading_rig.qloop
rig = trading_rig.rig


def working_sell(rig: Rig, qloop, qty: str, price: str) -> None:  # type: ignore[no-untyped-def]
    res = qloop.run_until_complete(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(qty), limit_price=Decimal(price)
    )))  # fmt: skip
    assert res.accepted, res.message


def panel(qtbot, rig: Rig) -> PositionsPanel:  # type: ignore[no-untyped-def]
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus,
                       working=lambda sym: known_working_orders(rig.store, sym))  # fmt: skip
    qtbot.addWidget(p)
    return p


def test_close_confirmation_names_the_orders_it_cancels_first(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    working_sell(rig, qloop, "4", "110.25")
    p = panel(qtbot, rig)
    asked: list[str] = []
    p.close_qty = lambda sym, held: None
    p.ask = lambda title, text: asked.append(text) or False  # type: ignore[func-returns-value]
    assert p.close_symbol("AAPL") is False
    assert asked == [
        "Close 10 of AAPL with a market order?\n\nFirst this working order of AAPL is canceled "
        "(and any other the broker lists):\n  • AAPL sell 4 limit 110.25"
    ]
    assert p.flatten_all() is False
    assert "  • AAPL sell 4 limit 110.25" in asked[-1] and "of any symbol" in asked[-1]


@pytest.mark.expected_log(r"was refused|STILL OPEN|close AAPL")
def test_a_refused_cancel_is_a_message_box_and_an_error_line(qtbot, rig: Rig, qloop, caplog) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    working_sell(rig, qloop, "10", "110")

    async def refused(order_id: str) -> None:
        raise BrokerRejected("order is no longer cancelable", status=422)

    rig.broker.cancel_order = refused  # type: ignore[method-assign]
    rig.engine.closer.deadline_s = 2
    p = panel(qtbot, rig)
    boxes: list[tuple[str, str]] = []
    p.show_error = lambda title, text: boxes.append((title, text))
    p.close_qty = lambda sym, held: None
    p.ask = lambda title, text: True
    assert p.close_symbol("AAPL") is True
    settle_until(qloop, "the close answered", lambda: boxes)
    assert boxes[0][0] == "Close AAPL"
    assert "STILL OPEN" in boxes[0][1] and "cancel REFUSED" in boxes[0][1]
    assert "STILL OPEN" in p.status_label.text()
    panel_errors = [r.getMessage() for r in caplog.records if r.name == "heron.positions"]
    assert any(m.startswith("close AAPL: AAPL STILL OPEN") for m in panel_errors)
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback


@pytest.mark.expected_log(r"close AAPL failed")
def test_an_engine_error_is_a_message_box_without_a_traceback(qtbot, rig: Rig, qloop, caplog) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)

    async def broken(symbol: str, *, qty: Decimal | None = None, source: str = "manual") -> None:
        raise RuntimeError("the database refused the write")

    rig.engine.close_position = broken  # type: ignore[method-assign]
    p = panel(qtbot, rig)
    boxes: list[tuple[str, str]] = []
    p.show_error = lambda title, text: boxes.append((title, text))
    p.close_qty = lambda sym, held: None
    p.ask = lambda title, text: True
    p.close_symbol("AAPL")
    settle_until(qloop, "the close failed", lambda: boxes)
    assert boxes == [("Close AAPL", "close AAPL failed: the database refused the write")]
    assert all(r.exc_info is None for r in caplog.records)


def test_flatten_confirmation_names_the_positions_it_closes(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """The broker's positions when it reported them (a flatten closes what the broker holds: NVDA
    bought in another app is closed too), else Heron's book, each with side and quantity."""
    from services.domain.events import PositionsEvent
    from services.domain.models import Position

    buy(rig, qloop)
    p = panel(qtbot, rig)
    asked: list[str] = []
    p.ask = lambda title, text: asked.append(text) or False  # type: ignore[func-returns-value]
    assert p.flatten_all() is False
    assert "This position is closed with market orders (in Heron's book" in asked[-1]
    assert "  • AAPL long 10" in asked[-1]
    held = (Position("AAPL", Decimal(10), Decimal(100)), Position("NVDA", Decimal(-3), Decimal(120)))
    p.on_positions(PositionsEvent(rig.clock(), held))
    assert p.flatten_all() is False
    assert (
        "These 2 positions are closed with market orders (as the broker last reported them):\n"
        "  • AAPL long 10\n  • NVDA short 3"
    ) in asked[-1]
