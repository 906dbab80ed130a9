"""Order ticket: its layout holds whatever is typed (a long symbol, a long message), and the lines it
shows belong to the order on screen now (no leftovers from another symbol or side)."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QPushButton

from services.domain.enums import OrderClass, OrderSide, OrderType
from services.domain.symbols import normalize_symbol
from tests.support.polling import qt_pump
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig
from widgets.main_window import PanelScroll
from widgets.order_ticket import OrderTicket
from widgets.order_ticket.layout import MAX_SYMBOL_CHARS
from widgets.order_ticket.summary import number_text

qloop = trading_rig.qloop
rig = trading_rig.rig
DOCK_WIDTH = 290  # the ticket dock's default width (app/qt/panels/trading.py)


def make(qtbot, rig: Rig, *, own: bool = True) -> OrderTicket:  # type: ignore[no-untyped-def]
    t = OrderTicket(rig.engine)
    if own:  # a docked ticket belongs to its frame
        qtbot.addWidget(t)
    t._assets["AAPL"] = rig.broker._assets["AAPL"]
    t._assets["MSFT"] = rig.broker._assets["MSFT"]
    return t


def docked(qtbot, t: OrderTicket) -> PanelScroll:  # type: ignore[no-untyped-def]
    """The ticket in the frame its dock gives it, at the dock's default width."""
    frame = PanelScroll(QSize(600, 2000))
    qtbot.addWidget(frame)
    frame.setWidget(t)
    frame.resize(DOCK_WIDTH, 1000)
    frame.show()
    qtbot.waitExposed(frame)
    return frame


def inside(t: OrderTicket, button: QPushButton) -> bool:
    top_left = button.mapTo(t, button.rect().topLeft())
    return t.rect().contains(QRect(top_left, button.size()))


def test_the_longest_symbols_fit_the_symbol_box() -> None:
    # Heron's spelling caps a stock symbol at 10 characters and a crypto pair at 10/5 (symbols.py);
    # Alpaca's pairs are BASE/QUOTE with quote USD, USDT, USDC or BTC (docs/alpaca-rules.md, Symbols).
    for longest in ("ABCDEFGHIJ", "ABCDEFGHIJ/USDT"):
        assert normalize_symbol(longest) == longest and len(longest) <= MAX_SYMBOL_CHARS


def test_a_500_character_symbol_keeps_the_ticket_layout(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, own=False)
    frame = docked(qtbot, t)
    assert not frame.horizontalScrollBar().isVisible()
    t.symbol_edit.setFocus()
    t.symbol_edit.selectAll()
    qtbot.keyClicks(t.symbol_edit, "ABCDEFGHIJ" * 50)
    t.run_precheck()
    assert len(t.symbol_edit.text()) == MAX_SYMBOL_CHARS  # the box stops taking characters
    assert "not a valid symbol" in t.errors["symbol"].text()
    # nothing asks for more width than the dock has: no horizontal scrollbar
    qtbot.waitUntil(lambda: t.width() <= frame.viewport().width())
    assert not frame.horizontalScrollBar().isVisible()
    # Buy and Sell side by side, inside the ticket, each with room for its label
    qtbot.waitUntil(lambda: t.sell_button.isVisible() and inside(t, t.sell_button))
    assert inside(t, t.buy_button) and t.buy_button.x() < t.sell_button.x()
    assert abs(t.buy_button.width() - t.sell_button.width()) <= 2
    assert inside(t, t.submit_button) and t.submit_button.text()


def test_a_long_unbroken_error_wraps_in_the_ticket(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig, own=False)
    frame = docked(qtbot, t)
    t.symbol_edit.setMaxLength(32767)  # a pasted or programmatic text still cannot widen the ticket
    t.symbol_edit.setText("X" * 500)
    t.run_precheck()
    assert t.errors["symbol"].isVisible()
    qt_pump(qtbot)(0.2)
    assert t.width() <= frame.viewport().width() and not frame.horizontalScrollBar().isVisible()


# --- lines that belong to the order on screen -------------------------------------------------------
def test_a_staged_line_goes_when_the_side_changes(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.stage("MSFT", OrderSide.SELL, OrderType.LIMIT, Decimal("199.90"))
    assert t.result_label.text().startswith("staged: sell MSFT")
    qtbot.mouseClick(t.buy_button, Qt.MouseButton.LeftButton)
    assert t.side() is OrderSide.BUY and t.result_label.text() == ""


def test_a_blocked_submit_line_goes_when_the_symbol_changes(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.ask = lambda title, text: True
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("20000")  # over the default 10,000-share limit per order (RiskLimits)
    assert not t.submit()
    assert "max_order_qty" in t.result_label.text()
    # the amount's note says what the limit is, not just which check
    assert "quantity 20000 is over the limit of 10000 per order" in t.errors["amount"].text()
    t.symbol_edit.setText("MSFT")
    assert t.result_label.text() == ""  # AAPL's block is not MSFT's


def test_untouched_oco_legs_stay_quiet_after_a_symbol_change(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("5")
    assert t.set_order_class(OrderClass.OCO)
    assert not t.submit()  # a submit attempt shows every error, the legs' included
    assert t.errors["take_profit"].isVisibleTo(t) and t.errors["stop_loss"].isVisibleTo(t)
    t.symbol_edit.setText("MSFT")
    t.run_precheck()
    # another symbol is another order: no red on fields the user has not typed in yet
    assert not t.errors["take_profit"].isVisibleTo(t) and not t.errors["stop_loss"].isVisibleTo(t)
    assert t.errors["take_profit"].text() == "" and t.errors["stop_loss"].text() == ""


def test_one_share_is_singular(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("1")
    t.run_precheck()
    assert t.summary_label.text().startswith("Buy 1 share ·")
    t.amount_edit.setText("2")
    t.run_precheck()
    assert t.summary_label.text().startswith("Buy 2 shares ·")


def test_band_bounds_round_to_the_tick_inside_the_band() -> None:
    # 0.01 at $1.00 and above, 0.0001 below (docs/alpaca-rules.md, "Prices": sub-penny rule)
    assert number_text("max", "185.7135", "AAPL", None) == "185.71"
    assert number_text("min", "185.7135", "AAPL", None) == "185.72"
    assert number_text("max", "0.512345", "PENNY", None) == "0.5123"
    assert number_text("limit_price", "185.71", "AAPL", None) == "185.71"


def test_the_blocked_reason_rounds_like_the_precheck_list(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    t = make(qtbot, rig)
    t.symbol_edit.setText("AAPL")
    t.amount_edit.setText("10")
    t.limit_edit.setText("150")  # 50% through the 100.10 ask: the band's bound is 105.105
    t.run_precheck()
    assert "max=105.10" in t.blocked_reason and "105.105" not in t.blocked_reason
