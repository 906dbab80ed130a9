"""Order ticket: its layout holds whatever is typed (a long symbol, a long message), and the lines it
shows belong to the order on screen now (no leftovers from another symbol or side)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtWidgets import QPushButton

from services.domain.symbols import normalize_symbol
from tests.support.polling import qt_pump
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig
from widgets.main_window import PanelScroll
from widgets.order_ticket import OrderTicket
from widgets.order_ticket.layout import MAX_SYMBOL_CHARS

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
