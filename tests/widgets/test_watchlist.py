"""Watchlist: model contract, rows from the QuoteBook per coalesced batch (one dataChanged),
add/remove with validation and persistence callback, selection signal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.domain.bus import EventBus
from services.domain.models import Quote, Trade
from services.marketdata.book import QuoteBook
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
from widgets.watchlist import WatchlistPanel

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def book() -> QuoteBook:
    b = QuoteBook(now=lambda: NOW)
    b.on_quote(Quote("AAPL", Decimal("187.10"), Decimal("187.14"), Decimal(1), Decimal(2), NOW), NOW)
    b.on_trade(Trade("AAPL", Decimal("187.12"), Decimal(300), NOW), NOW)
    b.set_prev_close("AAPL", Decimal("185"))
    return b


def batch(*symbols: str) -> MarketDataBatchEvent:
    quotes = {s: RawQuote(1, 1, 1, 1, 0) for s in symbols}
    return MarketDataBatchEvent(NOW, MarketDataBatch(quotes, {}, (), (), (), (), 0, 1, len(symbols)))


def test_rows_from_book_and_model_contract(qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    w = WatchlistPanel(book(), EventBus(), ["AAPL", "msft"])
    qtbot.addWidget(w)
    assert w.symbols() == ["AAPL", "MSFT"]
    cells = w.model.row_at(0).cells
    assert cells == ["AAPL", "187.10", "187.14", "187.12", "0.04", "+1.15%", "300"]
    assert w.model.row_at(1).cells[1] == "—"  # no data yet: dashes, never invented numbers
    qtmodeltester.check(w.model)


def test_batches_update_the_changed_cells_of_watched_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    b = book()
    bus = EventBus()
    w = WatchlistPanel(b, bus, ["AAPL", "MSFT", "TSLA"])
    qtbot.addWidget(w)
    spans: list[tuple[int, int, int, int]] = []
    w.model.dataChanged.connect(lambda a, z, *_: spans.append((a.row(), z.row(), a.column(), z.column())))
    b.on_quote(Quote("AAPL", Decimal("188.00"), Decimal("188.02"), Decimal(1), Decimal(1), NOW), NOW)
    b.on_quote(Quote("TSLA", Decimal("250.00"), Decimal("250.10"), Decimal(1), Decimal(1), NOW), NOW)
    bus.publish(batch("AAPL", "TSLA", "NVDA"))  # NVDA is not watched: ignored
    # each touched row announces its changed cells (never the symbol); MSFT's row is not touched
    assert {r for r, *_ in spans} == {0, 2}
    assert all(r == z and 1 <= a <= c <= 6 for r, z, a, c in spans)
    assert w.model.row_at(0).cells[1] == "188.00" and w.model.row_at(2).cells[2] == "250.10"


def test_add_remove_validates_and_persists(qtbot) -> None:  # type: ignore[no-untyped-def]
    saved: list[list[str]] = []
    subscribed: list[list[str]] = []

    async def subscribe(symbols: list[str]) -> None:
        subscribed.append(symbols)

    w = WatchlistPanel(book(), None, ["AAPL"], on_symbols_changed=saved.append)
    qtbot.addWidget(w)
    w.add_edit.setText("not a symbol!")
    w.add_button.click()
    assert "not a valid symbol" in w.error_label.text()
    assert w.add_edit.text() == "not a symbol!"  # kept for correction
    assert saved == []
    w.add_edit.setText("btcusd")
    w.add_button.click()
    assert w.symbols() == ["AAPL", "BTC/USD"] and saved[-1] == ["AAPL", "BTC/USD"]
    assert w.add_edit.text() == ""
    assert w.add_symbol("aapl") is None and "already" in w.error_label.text()
    assert w.remove_symbol("AAPL")
    assert saved[-1] == ["BTC/USD"] and w.model.rowCount() == 1
    assert subscribed == []  # no subscribe callback given


def test_selection_emits_symbol(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = WatchlistPanel(book(), None, ["AAPL", "MSFT"])
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.symbolSelected, timeout=1000) as sig:
        w.select_symbol("MSFT")
    assert sig.args == ["MSFT"]


def test_view_paints_rows_from_the_row_cache(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = WatchlistPanel(book(), None, ["AAPL", "MSFT"])
    qtbot.addWidget(w)
    w.resize(600, 300)
    w.show()
    before = w.view.paints  # type: ignore[attr-defined]
    image = w.view.viewport().grab().toImage()
    assert w.view.paints > before  # type: ignore[attr-defined]
    row = w.model.row_at(0)
    assert row.static is not None and [s.text() for s in row.static] == row.cells
    # the Bid cell (right-aligned) has text pixels near its right edge, not at its left edge
    y = w.view.rowViewportPosition(0) + w.view.rowHeight(0) // 2
    x0 = w.view.columnViewportPosition(1)
    x1 = x0 + w.view.columnWidth(1)
    right = {image.pixel(x, y) for x in range(x1 - 40, x1 - 2)}
    assert len(right) > 1


def test_quantities_group_thousands_and_keep_every_decimal() -> None:
    from decimal import Decimal

    from widgets.models.common import fmt_qty

    assert fmt_qty(Decimal("15645627")) == "15,645,627"
    assert fmt_qty(Decimal("1325.434855")) == "1,325.434855"  # a crypto day volume
    assert fmt_qty(Decimal("-1325.50")) == "-1,325.5"
    assert fmt_qty(Decimal("999.125")) == "999.125"
    assert fmt_qty(Decimal("1E+3")) == "1,000"
    assert fmt_qty(None) == "—"


# --- the desk: bid/ask clicks, removal, unknown symbols -------------------------------------------
def _cell_centre(w: WatchlistPanel, row: int, column: int):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint

    x = w.view.columnViewportPosition(column) + w.view.columnWidth(column) // 2
    y = w.view.rowViewportPosition(row) + w.view.rowHeight(row) // 2
    return QPoint(x, y)


def test_clicking_bid_or_ask_asks_for_a_sell_at_the_bid_or_a_buy_at_the_ask(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    w = WatchlistPanel(book(), None, ["AAPL", "MSFT"])
    qtbot.addWidget(w)
    w.resize(700, 300)
    w.show()
    qtbot.waitExposed(w)
    got: list[tuple[str, str, str]] = []
    w.quoteClicked.connect(lambda *a: got.append(a))
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=_cell_centre(w, 0, 1))
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=_cell_centre(w, 0, 2))
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=_cell_centre(w, 0, 3))  # Last
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=_cell_centre(w, 1, 1))  # no quote
    assert [(s, side, Decimal(p)) for s, side, p in got] == [
        ("AAPL", "sell", Decimal("187.10")),
        ("AAPL", "buy", Decimal("187.14")),
    ]


def test_removing_a_row_never_selects_another_symbol(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = WatchlistPanel(book(), None, ["AAPL", "MSFT", "TSLA"])
    qtbot.addWidget(w)
    w.show()
    w.select_symbol("MSFT")
    selected: list[str] = []
    w.symbolSelected.connect(selected.append)
    w.view.setFocus()
    w.remove_selected()
    assert w.symbols() == ["AAPL", "TSLA"]
    assert selected == []  # the chart and the ticket stay on MSFT until the user picks a row
    w.remove_symbol("AAPL")
    assert selected == []


def test_add_refuses_symbols_the_broker_does_not_list(qtbot) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from services.broker.assets import AssetDirectory
    from services.domain.models import Asset

    listed = [Asset(s, c, "X", True, True, True) for s, c in (("AAPL", "us_equity"), ("BTC/USD", "crypto"))]

    async def fetch() -> list[Asset]:
        return listed

    assets = AssetDirectory(fetch)
    asyncio.run(assets.load())
    w = WatchlistPanel(book(), None, [], assets=assets)
    qtbot.addWidget(w)
    narrowest = w.minimumSizeHint().width()
    w.add_edit.setText("ZZZQ")
    w.add_button.click()
    assert w.symbols() == [] and w.add_edit.text() == "ZZZQ"
    assert "ZZZQ is not an asset the broker lists" in w.error_label.text()
    assert w.minimumSizeHint().width() == narrowest  # the message wraps, the dock keeps its width
    w.add_edit.setText("btcusd")
    w.add_button.click()
    assert w.symbols() == ["BTC/USD"] and not w.error_label.isVisible()


@pytest.mark.expected_log(r"asset list could not be loaded: connection refused")
def test_add_waits_for_the_asset_list_and_says_when_it_cannot_be_had(qtbot, qapp) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import qasync

    from services.broker.assets import AssetDirectory
    from services.domain.models import Asset
    from tests.support.polling import loop_pump, wait_for

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        answers: list[object] = [
            OSError("connection refused"),
            [Asset("AAPL", "us_equity", "X", True, True, True)],
        ]

        async def fetch() -> list[Asset]:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[return-value]

        w = WatchlistPanel(book(), None, [], assets=AssetDirectory(fetch))
        qtbot.addWidget(w)
        w.add_edit.setText("AAPL")
        w.add_button.click()
        assert "checking AAPL" in w.error_label.text() and w.symbols() == []
        wait_for("the refusal", lambda: "cannot check" in w.error_label.text(), pump=loop_pump(loop))
        assert "connection refused" in w.error_label.text() and w.symbols() == []
        w.add_button.click()  # tried again: this time the list comes
        wait_for("the add", lambda: w.symbols() == ["AAPL"], pump=loop_pump(loop))
        assert w.add_edit.text() == ""
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


def row_point(w: WatchlistPanel, symbol: str):  # type: ignore[no-untyped-def]
    row = w.model.row_of(symbol)
    assert row is not None
    return w.view.visualRect(w.model.index(row, 0)).center()


def test_right_click_opens_the_rows_menu_without_selecting_it(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    w = WatchlistPanel(book(), None, ["AAPL", "MSFT", "TSLA"])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.select_symbol("AAPL")
    selected: list[str] = []
    w.symbolSelected.connect(selected.append)
    qtbot.mousePress(w.view.viewport(), Qt.MouseButton.RightButton, pos=row_point(w, "MSFT"))
    qtbot.mouseRelease(w.view.viewport(), Qt.MouseButton.RightButton, pos=row_point(w, "MSFT"))
    assert selected == [] and w.selected_symbol() == "AAPL"  # the ticket and the chart stay on AAPL
    menu = w.context_menu(row_point(w, "MSFT"))
    (remove,) = menu.actions()
    assert remove.text() == "Remove MSFT" and remove.isEnabled()
    remove.trigger()
    assert w.symbols() == ["AAPL", "TSLA"]
    assert selected == [] and w.selected_symbol() == "AAPL"  # still the ticket's symbol highlighted


def test_after_removing_the_shown_symbol_no_row_looks_selected(qtbot) -> None:  # type: ignore[no-untyped-def]
    w = WatchlistPanel(book(), None, ["AAPL", "MSFT", "TSLA"])
    qtbot.addWidget(w)
    w.show()
    w.select_symbol("MSFT")
    w.context_menu(row_point(w, "MSFT")).actions()[0].trigger()
    assert w.symbols() == ["AAPL", "TSLA"]
    assert not w.view.selectionModel().hasSelection()  # TSLA is not the ticket's symbol
    # a symbol picked elsewhere (blotter, chart) highlights its row, or none when it is not listed
    w.follow("TSLA")
    assert w.selected_symbol() == "TSLA"
    w.follow("NVDA")
    assert not w.view.selectionModel().hasSelection()


def test_rows_change_at_the_display_pace_and_show_the_newest_quote(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Every change of the rows repaints every changed row, and at the frame rate (12.5 a second)
    that was the window's largest cost at idle: with the window's pacer the rows change at its
    passes. A batch in between is shown at the next pass with the book's newest figures (nothing
    is dropped). (A pacer of a minute here, so its next pass is run by the test, not by time.)"""
    from widgets.pacer import DisplayPacer

    pacer = DisplayPacer(60)
    b = book()
    bus = EventBus()
    w = WatchlistPanel(b, bus, ["AAPL"], pacer=pacer)
    qtbot.addWidget(w)

    def quote(bid: str) -> None:
        b.on_quote(Quote("AAPL", Decimal(bid), Decimal("187.14"), Decimal(1), Decimal(2), NOW), NOW)
        bus.publish(batch("AAPL"))

    quote("187.00")  # after a quiet spell: at the next turn of the loop, not inside the batch
    assert w.model.row_at(0).cells[1] != "187.00"
    qtbot.waitUntil(lambda: w.model.row_at(0).cells[1] == "187.00", timeout=1000)
    flushes, passes = w.model.flushes, pacer.passes
    for bid in ["187.01", "187.02", "187.03"]:  # before the next pass
        quote(bid)
    qtbot.wait(20)
    assert w.model.row_at(0).cells[1] == "187.00" and w.model.flushes == flushes and pacer.pending()
    pacer.run_due()  # the next pass
    assert w.model.row_at(0).cells[1] == "187.03"  # the newest
    assert w.model.flushes == flushes + 1 and pacer.passes == passes + 1  # three batches, one change
