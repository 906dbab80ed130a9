"""Order ticket as a trader's desk uses it: OCO as an exit with one price per leg and each problem on
its own field, prices re-seeded from the symbol's own quote, the live bid and ask, times in force
by asset class, readable names and units, side colours, a quiet form until the user types, a
Submit button that stays put, the one-line summary and its refresh on bus events, and ``stage``.

Sources (docs/alpaca-rules.md):
- [ORD "OCO Orders"] (alpacahq/alpaca-docs content/trading/orders.md): "a set of two orders with the
  same side ... currently only exit order is supported"; "The type parameter must always be
  limit, indicating the take-profit order type is a limit order"; the example sends
  ``take_profit.limit_price`` and ``stop_loss.stop_price`` and no top-level ``limit_price``
  (alpaca-py #401 and PR #489: ``limit_price`` "may be omitted for oco orders").
- [ORD "Threshold on stop price of stop-loss orders"]: the stop at least 0.01 below (a sell's) the
  take-profit's limit, the OCO's base price.
- [ORD "Time in Force"]: "For Crypto Trading, Alpaca supports ... gtc, and ioc. OPG, fok, day,
  and CLS are not supported"; opg / cls "with a market/limit order type"; [ORD "Trailing Stop
  Orders"]: "Valid time-in-force values for trailing stop are day and gtc"; [ORD "Bracket Orders"]:
  "time_in_force must be day or gtc".
- [ORD "Buying Power"]: an opening order's value comes off buying power at once; sells of a long
  "do not replenish your available buying power until they have executed".
"""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QWidget

from services.broker.alpaca import build_order_request
from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Asset, OrderRequest
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets import theme
from widgets.order_ticket import OrderTicket
from widgets.order_ticket.form import AmountKind

qloop = trading_rig.qloop
rig = trading_rig.rig
BTC = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True, min_trade_increment=Decimal("0.0001"))


def make(qtbot, rig: Rig, **kw) -> OrderTicket:  # type: ignore[no-untyped-def]
    t = OrderTicket(rig.engine, book=rig.book, bus=rig.bus, **kw)
    qtbot.addWidget(t)
    t._assets.update({s: rig.broker._assets[s] for s in ("AAPL", "MSFT")})
    t._assets["BTC/USD"] = BTC
    return t


def hold(rig: Rig, qloop, qty: str = "10", price: str = "100") -> None:  # type: ignore[no-untyped-def]
    """A long AAPL position of ``qty`` at ``price``."""
    request = OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(qty), limit_price=Decimal(price)
    )
    res = qloop.run_until_complete(rig.engine.submit(request))
    rec = rig.store.find(client_order_id=res.client_order_id)
    rig.broker.fill(rec.broker_order_id, Decimal(qty), Decimal(price))  # type: ignore[union-attr]
    settle_until(qloop, "the position booked", lambda: "AAPL" in rig.store.positions)
    rig.clock.advance(5)  # past the duplicate-order window
    rig.quote("AAPL", "99.90", "100.10")
    rig.trade("AAPL", "100.00")


# --- 1. OCO as an exit -----------------------------------------------------------------------------
def test_oco_exits_the_position_with_one_price_per_leg(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """[ORD "OCO Orders"]: both legs on the side that closes the position, type limit, the
    take-profit's limit the only limit; [ORD threshold]: stop below the take-profit and the market."""
    hold(rig, qloop)
    t = make(qtbot, rig, confirm_orders=False)
    t.symbol_edit.setText("AAPL")
    assert t.set_order_class(OrderClass.OCO)
    # the closing side and the position's size are chosen for the trader
    assert t.side() is OrderSide.SELL and t.amount_edit.text() == "10"
    assert t.order_type() is OrderType.LIMIT and not t.type_combo.isEnabled()
    assert not t._rows["limit"].isVisibleTo(t)  # no second price for the take-profit leg
    assert t._rows["take_profit"].isVisibleTo(t) and t._rows["stop_loss"].isVisibleTo(t)
    # legs on the wrong sides: each message on its own field
    t.tp_edit.setText("95")
    t.sl_stop_edit.setText("105")
    t.run_precheck()
    assert "take-profit must be above the market (100)" in t.errors["take_profit"].text()
    assert "stop-loss must be below the market (100)" in t.errors["stop_loss"].text()
    assert not t.submit_button.isEnabled()
    t.tp_edit.setText("110")
    t.sl_stop_edit.setText("95")
    report = t.run_precheck()
    req = t.last_state.request  # type: ignore[union-attr]
    assert req is not None and report is not None and report.passed, t.blocked_reason
    assert (req.side, req.type, req.order_class, req.limit_price) == (
        OrderSide.SELL, OrderType.LIMIT, OrderClass.OCO, None)  # fmt: skip
    assert req.take_profit.limit_price == Decimal(110) and req.stop_loss.stop_price == Decimal(95)  # type: ignore[union-attr]
    assert all(not e.isVisible() for e in t.errors.values())
    # what goes on the wire is Alpaca's OCO body: no top-level limit_price
    body = build_order_request(req).to_request_fields()
    assert body["order_class"] == "oco" and body["type"] == "limit" and body["side"] == "sell"
    assert "limit_price" not in body
    assert body["take_profit"] == {"limit_price": 110.0} and body["stop_loss"]["stop_price"] == 95.0
    assert t.submit() is True
    settle_until(qloop, "the OCO answered", lambda: not t.result_label.text().startswith("sending"))
    order = next(o for o in rig.broker.orders.values() if o.client_order_id == t.last_client_order_id)
    assert order.order_class is OrderClass.OCO and order.side is OrderSide.SELL and order.limit_price is None


def test_oco_needs_a_position_and_says_so_on_the_side(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("MSFT")
    t.amount_edit.setText("5")
    t.set_order_class(OrderClass.OCO)
    t.sl_stop_edit.setText("190")
    t.tp_edit.setText("210")
    t.run_precheck()
    assert "exits a position" in t.errors["side"].text()
    assert t.last_state is not None and t.last_state.request is None


def test_a_failed_risk_check_shows_on_its_field(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("10")
    t.limit_edit.setText("150")  # 50 % through the ask
    t.run_precheck()
    assert "fat finger" in t.errors["limit"].text() and t.errors["limit"].isVisibleTo(t)
    assert t.errors["amount"].text() == ""


# --- 2. symbols and prices -------------------------------------------------------------------------
def test_changing_symbol_reseeds_prices_from_its_own_quote(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    assert t.limit_edit.text() == "100.10"  # a buy at the ask
    t.set_side(OrderSide.SELL)
    assert t.limit_edit.text() == "99.90"  # still seeded: follows the side to the bid
    t.limit_edit.setText("99.5")
    t.stop_edit.setText("98")
    t.symbol_edit.setText("MSFT")
    assert t.limit_edit.text() == "199.90" and t.stop_edit.text() == ""
    assert t.bid_button.text() == "Bid 199.90" and t.ask_button.text() == "Ask 200.10"
    t.symbol_edit.setText("BTC/USD")  # no quote yet: no price at all rather than MSFT's
    assert t.limit_edit.text() == "" and t.bid_button.text() == "Bid —"


def test_ticket_shows_the_live_bid_and_ask_and_a_click_stages_at_it(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    assert (t.bid_button.text(), t.ask_button.text()) == ("Bid 99.90", "Ask 100.10")
    rig.quote("AAPL", "101.00", "101.04")
    batch = MarketDataBatch({"AAPL": RawQuote(1, 1, 1, 1, 0)}, {}, (), (), (), (), 0, 1, 1)
    rig.bus.publish(MarketDataBatchEvent(rig.clock(), batch))
    assert (t.bid_button.text(), t.ask_button.text()) == ("Bid 101.00", "Ask 101.04")
    qtbot.mouseClick(t.bid_button, Qt.MouseButton.LeftButton)
    assert (
        t.side() is OrderSide.SELL and t.order_type() is OrderType.LIMIT and t.limit_edit.text() == "101.00"
    )


def test_at_the_display_pace_the_quote_changes_at_the_pass_and_a_click_takes_it(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    """With the window's pacer the Bid and Ask change with the watchlist and the chart, at its
    passes. A click stages the price the button shows, as a watchlist click does."""
    from widgets.order_ticket import OrderTicket
    from widgets.pacer import DisplayPacer

    pacer = DisplayPacer(60)  # its passes are run by the test, not by time
    t = OrderTicket(rig.engine, book=rig.book, bus=rig.bus, pacer=pacer)
    qtbot.addWidget(t)
    t.symbol_edit.setText("AAPL")
    assert (t.bid_button.text(), t.ask_button.text()) == ("Bid 99.90", "Ask 100.10")  # a new symbol: at once
    rig.quote("AAPL", "101.00", "101.04")
    batch = MarketDataBatch({"AAPL": RawQuote(1, 1, 1, 1, 0)}, {}, (), (), (), (), 0, 1, 1)
    rig.bus.publish(MarketDataBatchEvent(rig.clock(), batch))
    assert t.bid_button.text() == "Bid 99.90" and pacer.pending()
    pacer.run_due()
    assert (t.bid_button.text(), t.ask_button.text()) == ("Bid 101.00", "Ask 101.04")
    rig.quote("AAPL", "101.02", "101.06")  # the book moves before the next pass
    qtbot.mouseClick(t.bid_button, Qt.MouseButton.LeftButton)
    assert t.side() is OrderSide.SELL and t.limit_edit.text() == "101.00"


# --- 3. choices, names, units, colours, quiet start, fixed Submit ----------------------------------
def test_time_in_force_by_asset_class_and_type(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    """[ORD "Time in Force"], [ORD "Trailing Stop Orders"], [ORD "Bracket Orders"]."""
    t = make(qtbot, rig)

    def tifs() -> list[str]:
        return [t.tif_combo.itemData(i) for i in range(t.tif_combo.count())]

    t.symbol_edit.setText("AAPL")
    t.set_order_type(OrderType.LIMIT)
    assert tifs() == ["day", "gtc", "opg", "cls", "ioc", "fok"] and t.time_in_force() is TimeInForce.DAY
    t.set_order_type(OrderType.STOP)
    assert tifs() == ["day", "gtc", "ioc", "fok"]
    t.set_order_type(OrderType.TRAILING_STOP)
    assert tifs() == ["day", "gtc"]
    t.symbol_edit.setText("BTC/USD")
    assert tifs() == ["gtc", "ioc"] and t.time_in_force() is TimeInForce.GTC
    types = [t.type_combo.itemText(i) for i in range(t.type_combo.count())]
    assert types == ["Market", "Limit", "Stop limit"]  # crypto: no stop, no trailing stop
    assert [t.class_combo.itemData(i) for i in range(t.class_combo.count())] == ["simple"]
    t.symbol_edit.setText("MSFT")
    types = [t.type_combo.itemText(i) for i in range(t.type_combo.count())]
    assert types == ["Market", "Limit", "Stop", "Stop limit", "Trailing stop"]
    assert t.time_in_force() is TimeInForce.DAY


def test_quantity_unit_is_shares_or_the_coin(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    assert t.amount_kind.itemText(0) == "shares"
    t.symbol_edit.setText("ETH/USD")
    assert t.amount_kind.itemText(0) == "ETH" and t.amount_kind.itemText(1) == "USD"


def _fill_colour(button: QWidget) -> QColor:
    image = button.grab().toImage()
    return QColor(image.pixel(4, image.height() // 2))


def test_buy_and_sell_in_the_theme_colours(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.show()
    t.set_side(OrderSide.BUY)
    assert _fill_colour(t.buy_button) == QColor(theme.UP)
    assert _fill_colour(t.submit_button) == QColor(theme.UP) or not t.submit_button.isEnabled()
    t.set_side(OrderSide.SELL)
    assert _fill_colour(t.sell_button) == QColor(theme.DOWN)
    assert _fill_colour(t.buy_button) != QColor(theme.UP)  # not chosen: outlined only


def test_no_error_before_the_user_typed_anything(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.show()
    assert all(e.text() == "" and not e.isVisible() for e in t.errors.values())
    assert "required" not in t.blocked_reason and not t.submit_button.isEnabled()
    t.symbol_edit.setText("AAPL")
    t.run_precheck()
    assert t.errors["amount"].text() == ""  # quantity not typed yet: a hint, not an error
    assert "enter the amount" in t.blocked_reason
    qtbot.keyClicks(t.amount_edit, "x")
    t.run_precheck()
    assert "not a number" in t.errors["amount"].text()


def test_submit_never_moves_as_messages_come_and_go(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.resize(360, 900)
    t.show()
    qtbot.waitExposed(t)

    def y() -> int:
        QApplication.processEvents()
        return t.submit_button.mapTo(t, QPoint(0, 0)).y()

    start = y()
    narrowest = t.minimumSizeHint().width()
    t.symbol_edit.setText("AAPL")
    qtbot.keyClicks(t.amount_edit, "ten")
    t.limit_edit.setText("-1")
    t.run_precheck()
    assert t.errors["amount"].isVisible() and t.errors["limit"].isVisible()
    assert y() == start
    t._show_result("REJECTED (rejected): " + "a long broker message " * 20, error=True)
    assert y() == start
    t.amount_edit.setText("10")
    t.limit_edit.setText("100")
    t.run_precheck()
    assert len(t.summary_label.text()) > 60  # a long summary line wraps instead of widening the dock
    t._show_result("")
    assert y() == start
    assert t.minimumSizeHint().width() == narrowest


# --- 4. summary and refresh ------------------------------------------------------------------------
def test_summary_line_with_rounded_numbers(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    bp = rig.engine.account.buying_power  # type: ignore[union-attr]
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("10")
    t.limit_edit.setText("100.05")
    t.run_precheck()
    assert t.summary_label.text() == (
        f"Buy 10 shares · est. cost $1,000.50 · buying power after ${bp - Decimal('1000.50'):,.2f}"
    )
    rig.quote("BTC/USD", "65000.00", "65000.10")
    t.symbol_edit.setText("BTC/USD")
    t.set_order_type(OrderType.MARKET)
    t.set_amount_kind(AmountKind.NOTIONAL)
    t.amount_edit.setText("1000")
    t.run_precheck()
    # 1000 / 65000.10 = 0.0153846… BTC: shown to the asset's 0.0001 increment, money to the cent
    assert t.summary_label.text().startswith("Buy 0.0153 BTC · est. cost $1,000.00 · buying power after $")
    texts = [t.precheck_list.item(i).text() for i in range(t.precheck_list.count())]
    qty_check = next(x for x in texts if "max_order_qty" in x)
    assert "qty=0.0153," in qty_check or qty_check.endswith("qty=0.0153)")
    assert "notional=1000.00" in next(x for x in texts if "buying_power" in x)


def test_precheck_follows_trading_state_and_account_events(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t._recheck.setInterval(3_600_000)  # only the events may bring the change
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("10")
    t.run_precheck()
    assert t.submit_button.isEnabled()
    rig.trading.set(TradingState.HALTED, "kill switch", source="test")
    qtbot.waitUntil(lambda: "HALTED" in t.blocked_reason, timeout=1000)
    rig.trading.set(TradingState.ACTIVE, "resumed", source="test")
    qtbot.waitUntil(lambda: t.submit_button.isEnabled(), timeout=1000)
    before = t.summary_label.text()
    rig.broker.account_cash = getattr(rig.broker, "account_cash", None)
    runs: list[int] = []
    t.precheck_list.model().rowsInserted.connect(lambda *_: runs.append(1))
    qloop.run_until_complete(rig.engine.refresh_account())  # publishes the account
    qtbot.waitUntil(lambda: bool(runs), timeout=1000)
    assert t.summary_label.text() == before  # the same account: the same numbers


# --- 5. stage ---------------------------------------------------------------------------------------
def test_stage_fills_the_ticket_without_sending(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("3")
    t.stage("MSFT", OrderSide.SELL, OrderType.STOP, Decimal("190.00"))
    assert t.symbol_edit.text() == "MSFT" and t.side() is OrderSide.SELL
    assert t.order_type() is OrderType.STOP and t.stop_edit.text() == "190.00"
    assert t.last_state is not None and t.last_state.request is not None
    assert t.last_state.request.stop_price == Decimal("190.00")
    t.stage("AAPL", OrderSide.BUY, OrderType.LIMIT, Decimal("99.50"))
    assert t.limit_edit.text() == "99.50" and t.side() is OrderSide.BUY
    assert rig.broker.submits_received == []


def test_watchlist_bid_ask_click_stages_the_ticket_and_removal_keeps_it(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    """The app's wiring: a click on a watchlist row's Ask stages a buy limit at the ask; removing
    the selected row leaves the ticket on its symbol."""
    from app.qt.panels.trading import TradingPanels, _link
    from services.domain.enums import Mode
    from widgets.main_window import MainWindow
    from widgets.watchlist import WatchlistPanel

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    w = WatchlistPanel(rig.book, rig.bus, ["AAPL", "MSFT"], parent=window)
    t = make(qtbot, rig)
    _link(window, TradingPanels(watchlist=w, ticket=t), {"symbol": ""})
    w.resize(700, 300)
    w.show()
    qtbot.waitExposed(w)
    x = w.view.columnViewportPosition(2) + w.view.columnWidth(2) // 2
    y = w.view.rowViewportPosition(1) + w.view.rowHeight(1) // 2
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    assert t.symbol_edit.text() == "MSFT" and t.side() is OrderSide.BUY
    assert t.order_type() is OrderType.LIMIT and t.limit_edit.text() == "200.10"
    assert rig.broker.submits_received == []
    w.remove_selected()
    assert w.symbols() == ["AAPL"] and t.symbol_edit.text() == "MSFT"
