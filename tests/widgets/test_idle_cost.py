"""What the window does at idle: a tick changes what it shows and nothing more (offscreen)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from PySide6 import QtCore, QtWidgets

from tests.support.polling import qt_pump, wait_for
from tests.widgets import trading_rig
from widgets.chart.panel import ChartPanel
from widgets.chart.sample import random_walk_bars

qloop = trading_rig.qloop
rig = trading_rig.rig


class _LayoutRequests(QtCore.QObject):
    """Layout requests and paints of widgets, by object name."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.painted: list[str] = []

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if not isinstance(obj, QtWidgets.QWidget):
            return False
        name = obj.objectName() or type(obj).__name__
        if event.type() == QtCore.QEvent.Type.LayoutRequest:
            self.seen.append(name)
        elif event.type() == QtCore.QEvent.Type.Paint:
            self.painted.append(name)
        return False


@contextlib.contextmanager
def layout_requests() -> Iterator[_LayoutRequests]:
    """The layout requests and paints of every widget while the block runs."""
    requests = _LayoutRequests()
    app = QtWidgets.QApplication.instance()
    assert app is not None
    app.installEventFilter(requests)
    try:
        yield requests
    finally:
        app.removeEventFilter(requests)


def test_a_live_bar_tick_changes_the_readout_without_laying_the_window_out(qtbot: Any) -> None:
    """QLabel.setText asks its window for a new layout; on every tick that was a whole-window layout
    pass (every dock measured again) for a line of text that does not change the layout."""
    window = QtWidgets.QMainWindow()
    window.setObjectName("window")
    qtbot.addWidget(window)
    panel = ChartPanel(visible_bars=100)
    window.setCentralWidget(panel)
    window.resize(1000, 600)
    window.show()
    qtbot.waitExposed(window)
    d = random_walk_bars(500, seed=3)
    panel.set_history("AAPL", "1Min", d)
    QtWidgets.QApplication.processEvents()
    with layout_requests() as requests:
        t, o, h, low, c = (
            int(d["t"][-1]),
            float(d["o"][-1]),
            float(d["h"][-1]),
            float(d["l"][-1]),
            float(d["c"][-1]),
        )
        shown = []
        for i in range(10):
            panel.update_last_bar(t, o, max(h, c + i + 1), low, c + i + 1, 1000.0 + i)
            QtWidgets.QApplication.processEvents()
            shown.append(panel.readout_text())
    assert len(set(shown)) == 10 and f"{c + 10:.2f}" in shown[-1]
    assert requests.seen == []
    # the readout is opaque: its repaint does not paint the panel and the window beneath it
    assert "chartReadout" in requests.painted
    assert "chartPanel" not in requests.painted and "window" not in requests.painted
    assert panel.readout.isVisible() and panel.readout.width() == panel.readout.parentWidget().width() > 500


def test_a_quote_whose_sizes_alone_changed_repaints_no_watchlist_row(qtbot: Any) -> None:
    """The watchlist shows prices, not sizes: a quote that changes only its sizes announces nothing
    (so nothing is repainted), yet the row holds the newest book entry for a click on bid or ask."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from services.domain.bus import EventBus
    from services.domain.models import Quote
    from services.marketdata.book import QuoteBook
    from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
    from widgets.watchlist import WatchlistPanel

    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    book, bus = QuoteBook(now=lambda: now), EventBus()

    def quote(bid: str, bid_size: int) -> None:
        book.on_quote(Quote("AAPL", Decimal(bid), Decimal("187.14"), Decimal(bid_size), Decimal(2), now), now)
        quotes = {"AAPL": RawQuote(1, 1, 1, 1, 0)}
        bus.publish(MarketDataBatchEvent(now, MarketDataBatch(quotes, {}, (), (), (), (), 0, 1, 1)))

    w = WatchlistPanel(book, bus, ["AAPL"])  # no pacer: every batch shown at once
    qtbot.addWidget(w)
    quote("187.10", 1)
    changed: list[int] = []
    w.model.dataChanged.connect(lambda a, *_: changed.append(a.row()))
    before = w.model.row_at(0).payload
    quote("187.10", 7)
    assert changed == [] and w.model.row_at(0).payload is not before
    quote("187.11", 7)
    assert set(changed) == {0} and w.model.row_at(0).cells[1] == "187.11"


def test_a_new_bid_repaints_only_the_watchlist_cells_it_changed(qtbot: Any) -> None:
    """A bid that moves changes the Bid, Spread and (before any trade, the midpoint) Last texts, not
    the row's symbol, ask, change or volume: only those cells are announced (so only they are
    repainted), and only their texts are laid out anew; the others keep theirs."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from services.domain.bus import EventBus
    from services.domain.models import Quote
    from services.marketdata.book import QuoteBook
    from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
    from widgets.watchlist import WatchlistPanel

    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    book, bus = QuoteBook(now=lambda: now), EventBus()

    def quote(bid: str) -> None:
        book.on_quote(Quote("AAPL", Decimal(bid), Decimal("187.14"), Decimal(1), Decimal(2), now), now)
        quotes = {"AAPL": RawQuote(1, 1, 1, 1, 0)}
        bus.publish(MarketDataBatchEvent(now, MarketDataBatch(quotes, {}, (), (), (), (), 0, 1, 1)))

    w = WatchlistPanel(book, bus, ["AAPL", "MSFT"])  # no pacer: every batch shown at once
    qtbot.addWidget(w)
    w.resize(700, 300)
    w.show()
    quote("187.10")
    painted = wait_for("the row painted", lambda: w.model.row_at(0).static, pump=qt_pump(qtbot))
    assert painted is not None
    announced: list[tuple[int, int, int]] = []
    w.model.dataChanged.connect(lambda a, b, *_: announced.append((a.row(), a.column(), b.column())))
    quote("187.08")
    assert announced == [(0, 1, 1), (0, 3, 4)]  # Bid, then Last and Spread; no other cell or row
    row = w.model.row_at(0)
    assert (row.cells[1], row.cells[3], row.cells[4]) == ("187.08", "187.11", "0.06")
    assert row.static is not None
    kept = [c for c in range(7) if row.static[c] is painted[c]]
    assert kept == [0, 2, 5, 6]
    static = row.static
    wait_for("the changed cells laid out on the repaint", lambda: None not in static, pump=qt_pump(qtbot))
    assert [st.text() for st in static] == row.cells


def test_a_new_quote_in_the_ticket_lays_no_window_out(qtbot: Any, rig: Any) -> None:
    """The ticket's live Bid and Ask buttons change their text on nearly every batch; a button whose
    text changes asks its window for a new layout unless its size is fixed, and on every batch that
    was a whole-window layout pass (every dock measured again) for two prices of the same width."""
    from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
    from widgets.order_ticket import OrderTicket

    window = QtWidgets.QMainWindow()
    window.setObjectName("window")
    qtbot.addWidget(window)
    ticket = OrderTicket(rig.engine, book=rig.book, bus=rig.bus)
    dock = QtWidgets.QDockWidget("Ticket", window)
    dock.setWidget(ticket)
    window.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.setCentralWidget(QtWidgets.QWidget())
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    ticket.symbol_edit.setText("AAPL")
    QtWidgets.QApplication.processEvents()
    with layout_requests() as requests:
        for i in range(5):
            rig.quote("AAPL", f"101.{i:02d}", f"101.{i + 4:02d}")
            batch = MarketDataBatch({"AAPL": RawQuote(1, 1, 1, 1, 0)}, {}, (), (), (), (), 0, 1, 1)
            rig.bus.publish(MarketDataBatchEvent(rig.clock(), batch))
            QtWidgets.QApplication.processEvents()
    assert (ticket.bid_button.text(), ticket.ask_button.text()) == ("Bid 101.04", "Ask 101.08")
    assert requests.seen == []


def test_a_live_bar_tick_does_not_paint_the_history_again(qtbot: Any) -> None:
    """The live bar's repaint exposes a sliver of the plot, over the history's candles: those come
    from a pixmap of what is on screen, not from painting every visible candle again; moving the
    view paints them anew."""
    panel = ChartPanel(visible_bars=100)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    qtbot.waitExposed(panel)
    d = random_walk_bars(500, seed=3)
    panel.set_history("AAPL", "1Min", d)
    wait_for("the history painted", lambda: panel.candles.paints, pump=qt_pump(qtbot))
    QtWidgets.QApplication.processEvents()
    before = panel.candles.paints
    t, o, h, low, c = (
        int(d["t"][-1]),
        float(d["o"][-1]),
        float(d["h"][-1]),
        float(d["l"][-1]),
        float(d["c"][-1]),
    )
    for i in range(10):
        panel.update_last_bar(t, o, h, low, c + 0.01 * (i % 3), 1000.0 + i)
        QtWidgets.QApplication.processEvents()
    assert panel.store.live is not None and panel.store.live.v == 1009.0
    assert panel.candles.paints == before
    panel.pan(-0.5)
    wait_for("the history painted after a pan", lambda: panel.candles.paints > before, pump=qt_pump(qtbot))


def _window_with_dock(qtbot: Any, widget: QtWidgets.QWidget) -> QtWidgets.QMainWindow:
    window = QtWidgets.QMainWindow()
    window.setObjectName("window")
    qtbot.addWidget(window)
    dock = QtWidgets.QDockWidget("Panel", window)
    dock.setWidget(widget)
    window.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    window.setCentralWidget(QtWidgets.QWidget())
    window.resize(1200, 700)
    window.show()
    qtbot.waitExposed(window)
    QtWidgets.QApplication.processEvents()
    return window


def test_the_reconciliation_panels_ageing_last_run_lays_nothing_out(qtbot: Any, tmp_path: Any) -> None:
    """The panel's "Last run ... (5 s ago)" changes every second while it is open: that repaints the
    line, not a whole-window layout pass (one a second at idle before it was pinned)."""
    from datetime import UTC, datetime, timedelta

    from widgets.preview_rig import reconciliation_rig
    from widgets.reconciliation import ReconciliationPanel

    rig = reconciliation_rig(tmp_path)
    now = [datetime.now(UTC)]
    panel = ReconciliationPanel(rig.reconciler, operator="tester", refresh_ms=60_000, clock=lambda: now[0])
    window = _window_with_dock(qtbot, panel)
    assert rig.reconciler.last_run is not None
    panel._tick()
    for _ in range(5):  # the window's first layout passes, posted as it was shown
        QtWidgets.QApplication.processEvents()
    shown = []
    with layout_requests() as requests:
        for _ in range(3):
            now[0] += timedelta(seconds=7)
            panel._tick()  # the panel's refresh timer
            QtWidgets.QApplication.processEvents()
            shown.append(panel.last_run.text())
    assert len(set(shown)) == 3, shown
    assert window.isVisible()
    assert requests.seen == []


def test_a_hidden_reconciliation_panel_refreshes_when_shown(qtbot: Any, tmp_path: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from widgets.preview_rig import reconciliation_rig
    from widgets.reconciliation import ReconciliationPanel

    rig = reconciliation_rig(tmp_path)
    now = [datetime.now(UTC)]
    panel = ReconciliationPanel(rig.reconciler, operator="tester", refresh_ms=60_000, clock=lambda: now[0])
    qtbot.addWidget(panel)
    before = panel.last_run.text()
    now[0] += timedelta(minutes=3)
    panel._tick()
    assert panel.last_run.text() == before  # not on screen: nothing to age
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.last_run.text() != before and "3m" in panel.last_run.text()


def test_the_status_bars_ticking_fields_lay_nothing_out(qtbot: Any) -> None:
    """Latency and message rate change every second and the clock ticks: each repaints its field,
    with no layout pass of the window (a field of free size asked for one at every new width, and a
    style sheet set again each second re-polished the labels and asked for one too)."""
    from services.domain.enums import Mode
    from widgets.status_bar import HeronStatusBar

    window = QtWidgets.QMainWindow()
    window.setObjectName("window")
    qtbot.addWidget(window)
    bar = HeronStatusBar(Mode.LOCAL)
    window.setStatusBar(bar)
    window.setCentralWidget(QtWidgets.QWidget())
    window.resize(1366, 700)
    window.show()
    qtbot.waitExposed(window)
    bar.set_message_rate(5.0)
    bar.set_latency_ms(3)
    bar.set_exchange("http://127.0.0.1:9000", True)
    for _ in range(5):
        QtWidgets.QApplication.processEvents()
    with layout_requests() as requests:
        for i in range(6):
            bar.set_message_rate([7, 180, 4_512, 12, 99_999, 1_234][i])
            bar.set_latency_ms([4, 12, 140, 7, 2_500, 9][i])
            bar.set_exchange("http://127.0.0.1:9000", True)  # the same words, re-coloured alike
            QtWidgets.QApplication.processEvents()
    assert bar.message_rate_label.text() == "Msgs/s: 1,234"
    assert not bar.message_rate_label.cut and not bar.latency_label.cut  # each value shown whole
    assert requests.seen == []


def test_a_long_latency_text_widens_its_field_and_a_short_one_gives_the_room_back(qtbot: Any) -> None:
    from services.domain.enums import Mode
    from widgets.status_bar import HeronStatusBar

    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.show()
    bar.set_latency_ms(3)
    usual = bar.latency_label.width()
    bar.latency_label.setText("Latency: 6.0 s… (waiting)")
    from widgets.pinned_line import hold_width

    hold_width(bar.latency_label, "Latency: 9,999 ms")
    assert bar.latency_label.width() > usual and not bar.latency_label.cut
    bar.set_latency_ms(4)
    assert bar.latency_label.width() == usual


def test_a_price_shown_before_is_not_laid_out_again() -> None:
    """A live price ticks back and forth over a few values: a cell returning to a text it showed
    before takes that text's layout from the shared cache (the same object, the same width) instead
    of shaping it again; a text never seen is laid out fresh."""
    from widgets.models.row_view import laid_out, static_texts
    from widgets.models.table import Row

    row = Row(key="AAPL", cells=["AAPL", "187.10"], sort=["AAPL", 187.1], payload=None)
    first = static_texts(row)[1]
    assert row.static is not None and row.static_w is not None
    row.static[1] = None  # the cell changed to another price and back
    again = static_texts(row)[1]
    assert again is first and row.static_w[1] == laid_out("187.10")[1] > 0
    fresh, width = laid_out("187.11 (never shown)")
    assert fresh.text() == "187.11 (never shown)" and width > row.static_w[1]


def test_a_quote_button_grows_for_a_text_it_showed_before_in_a_bigger_font(qtbot: Any) -> None:
    """The Bid/Ask buttons remember which texts fit so a ticking price does not ask the style for a
    size every tick; a bigger font (a setting) makes the same text wider, and the button grows."""
    from PySide6.QtGui import QFont

    from widgets.order_ticket.layout import QuoteButton

    button = QuoteButton("Bid 187.10")
    qtbot.addWidget(button)
    width = button.width()
    button.setText("Bid 187.11")
    button.setText("Bid 187.10")
    assert button.width() == width
    font = QFont(button.font())
    font.setPointSizeF(font.pointSizeF() * 2)
    button.setFont(font)
    button.setText("Bid 187.11")
    assert button.width() > width and button.width() >= button.sizeHint().width()
