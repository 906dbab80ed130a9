"""Positions: rows from the OrderStore's fills and the QuoteBook's marks, model contract,
close with quantity + confirmation, flatten all with confirmation."""

from __future__ import annotations

from decimal import Decimal

from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.pacer import DisplayPacer
from widgets.positions import PositionsPanel

qloop = trading_rig.qloop
rig = trading_rig.rig


def buy(rig: Rig, qloop, qty: str = "10", price: str = "100") -> None:  # type: ignore[no-untyped-def]
    res = qloop.run_until_complete(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(qty),
                limit_price=Decimal(price),
            )
        )
    )
    rec = rig.store.find(client_order_id=res.client_order_id)
    rig.broker.fill(rec.broker_order_id, Decimal(qty), Decimal(price))  # type: ignore[union-attr]


def test_rows_follow_fills_and_marks(qtbot, qtmodeltester, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus)
    qtbot.addWidget(p)
    assert p.model.rowCount() == 0
    buy(rig, qloop)
    qtbot.waitUntil(lambda: p.model.rowCount() == 1, timeout=1000)
    rig.trade("AAPL", "101.50")
    p.refresh()
    cells = p.model.row_at(0).cells
    # symbol, qty, avg, last, market value, unrealized, day P&L (no broker report yet), realized
    assert cells == ["AAPL", "10", "100.00", "101.50", "1,015.00", "+15.00", "—", "+0.00"]
    qtmodeltester.check(p.model)
    qtmodeltester.check(p.proxy)


def test_marks_follow_the_display_pace(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """With the window's pacer, open positions are re-marked at its passes, with the watchlist, the
    chart and the ticket: every batch in between counts (none is skipped by a rate limit), and a
    pass shows the book's newest price."""
    from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
    from widgets.pacer import DisplayPacer

    pacer = DisplayPacer(60)  # its passes are run by the test, not by time
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus, pacer=pacer)
    qtbot.addWidget(p)
    buy(rig, qloop)
    qtbot.waitUntil(lambda: p.model.rowCount() == 1, timeout=1000)
    quotes = {"AAPL": RawQuote(1, 1, 1, 1, 0)}  # the batch names the symbol; the figures are the book's
    for price in ("101.00", "101.50"):
        rig.trade("AAPL", price)
        rig.bus.publish(
            MarketDataBatchEvent(rig.clock(), MarketDataBatch(quotes, {}, (), (), (), (), 0, 1, 1))
        )
    assert p.model.row_at(0).cells[3] != "101.50" and pacer.pending()
    pacer.run_due()
    assert p.model.row_at(0).cells[3:6] == ["101.50", "1,015.00", "+15.00"]


def test_a_panel_without_a_pacer_marks_at_a_pace_of_its_own(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """Built alone (a preview, a test), the panel paces itself: at most every MARK_INTERVAL_S, with
    the book's newest price, never inside the batch."""
    from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
    from widgets.positions import MARK_INTERVAL_S

    clock = [50.0]
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus, clock=lambda: clock[0])
    qtbot.addWidget(p)
    buy(rig, qloop)
    qtbot.waitUntil(lambda: p.model.rowCount() == 1, timeout=1000)
    batch = MarketDataBatch({"AAPL": RawQuote(1, 1, 1, 1, 0)}, {}, (), (), (), (), 0, 1, 1)
    rig.trade("AAPL", "101.00")
    rig.bus.publish(MarketDataBatchEvent(rig.clock(), batch))
    assert p.model.row_at(0).cells[3] != "101.00"  # not inside the batch
    qtbot.waitUntil(lambda: p.model.row_at(0).cells[3] == "101.00", timeout=1000)
    rig.trade("AAPL", "101.50")
    rig.bus.publish(MarketDataBatchEvent(rig.clock(), batch))  # the same instant: waits its interval
    pacer = p.findChild(DisplayPacer)
    assert pacer is not None and pacer.interval_s == MARK_INTERVAL_S
    assert pacer._timer.isActive() and pacer._timer.interval() >= 249
    pacer.run_due()
    assert p.model.row_at(0).cells[3] == "101.50"


def test_close_asks_quantity_and_confirmation(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus)
    qtbot.addWidget(p)
    asked: list[str] = []
    p.close_qty = lambda sym, held: Decimal(4)
    p.ask = lambda title, text: asked.append(text) or False  # type: ignore[func-returns-value]
    submits = len(rig.broker.submits_received)
    assert p.close_symbol("AAPL") is False
    assert asked == ["Close 4 of AAPL with a market order?"]
    assert len(rig.broker.submits_received) == submits
    p.close_qty = lambda sym, held: Decimal(40)
    p.ask = lambda title, text: True
    assert p.close_symbol("AAPL") is False and "between 0 and 10" in p.status_label.text()
    p.close_qty = lambda sym, held: Decimal(4)
    assert p.close_symbol("AAPL") is True
    settle_until(qloop, "the close answered", lambda: p.status_label.text().startswith("close AAPL"))
    last = rig.broker.orders[max(rig.broker.orders)]
    assert last.side is OrderSide.SELL and last.qty == Decimal(4) and last.type is OrderType.MARKET
    assert "close AAPL" in p.status_label.text()


def test_flatten_all_needs_confirmation(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    buy(rig, qloop)
    p = PositionsPanel(rig.store, rig.book, rig.engine, rig.bus)
    qtbot.addWidget(p)
    p.ask = lambda title, text: False
    assert p.flatten_all() is False
    p.ask = lambda title, text: True
    assert p.flatten_all() is True
    settle_until(qloop, "the flatten answered", lambda: p.status_label.text().startswith("flatten"))
    assert "flatten all: AAPL flat" in p.status_label.text()
