"""End to end: the terminal's real services on the local exchange (a child process), the main
window with the trading panels (offscreen, in-process on a qasync loop), an order placed through
the ticket, acknowledged and filled in the blotter, and the position shown."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

from app.qt.preview import start_local_services, stop_services
from services.domain.enums import Mode, OrderType, TradingState
from tests.support.polling import async_wait_for


def test_ticket_order_is_acknowledged_and_filled(qapp: QApplication, tmp_path: Path) -> None:
    from app.qt.panels.trading import install
    from widgets.main_window import MainWindow

    qapp.setQuitOnLastWindowClosed(False)  # closing the window must not stop the loop mid-test
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        ctx, services = await start_local_services(tmp_path)
        try:
            assert services.engine is not None, getattr(services, "failures", {})
            await async_wait_for("trading ACTIVE", lambda: services.trading.state is TradingState.ACTIVE, 45)
            window = MainWindow(Mode.LOCAL)
            window.resize(1400, 900)
            panels = install(window, ctx, services)
            window.show()
            assert panels.missing == {}
            assert {"watchlistPanel", "orderTicket", "blotterPanel", "positionsPanel", "accountPanel"} <= set(
                window.panel_names()
            )
            assert window.centralWidget().objectName() == "chartPanel"
            ticket, blotter, positions = panels.ticket, panels.blotter, panels.positions
            assert ticket is not None and blotter is not None and positions is not None
            # First-launch layout (no saved one): the watchlist dock shows all of its columns, and
            # the blotter's Status column is within the dock without scrolling.
            watch_dock, watchlist = window.panel("watchlistPanel"), panels.watchlist
            assert watch_dock is not None and watchlist is not None
            wanted = watchlist.sizeHint().width()
            await async_wait_for(
                f"the watchlist dock at {wanted} px",
                lambda: watch_dock.width() >= wanted,
                5,
            )
            header = blotter.orders_view.horizontalHeader()
            status = blotter.orders.STATUS_COL
            assert header.sectionViewportPosition(status) + header.sectionSize(status) <= header.width()
            asked: list[str] = []
            ticket.ask = lambda title, text: asked.append(text) or True  # type: ignore[func-returns-value]
            # the watchlist selection already put a symbol in the ticket
            symbol = ctx.settings.watchlist[0]
            assert ticket.symbol_edit.text() == symbol
            ticket.amount_edit.setText("3")
            assert ticket.set_order_type(OrderType.MARKET)
            await async_wait_for(
                f"a passing pre-check: {ticket.blocked_reason}",
                lambda: ticket.run_precheck() is not None and ticket.last_report.passed,
                10,
            )  # fmt: skip
            assert ticket.submit() is True
            assert asked and f"BUY 3 {symbol}" in asked[0]  # local mode confirms by default
            await async_wait_for("the ack", lambda: ticket.last_client_order_id is not None, 15)
            cid = ticket.last_client_order_id
            assert ticket.result_label.text().startswith("ACCEPTED")

            def blotter_status() -> str | None:
                row = blotter.orders.row_of(cid)  # type: ignore[arg-type]
                return None if row is None else blotter.orders.row_at(row).cells[blotter.orders.STATUS_COL]

            await async_wait_for("the fill in the blotter", lambda: blotter_status() == "filled", 30)
            row = blotter.orders.row_at(blotter.orders.row_of(cid))  # type: ignore[arg-type]
            assert row.cells[1] == symbol and row.cells[6] == "3" and row.cells[13] == "manual"
            await async_wait_for("the fills tab", lambda: blotter.fills.rowCount() >= 1, 5)
            assert (
                sum(Decimal(blotter.fills.row_at(i).cells[3]) for i in range(blotter.fills.rowCount())) == 3
            )
            await async_wait_for("the position", lambda: positions.model.row_of(symbol) is not None, 5)
            prow = positions.model.row_at(positions.model.row_of(symbol))  # type: ignore[arg-type]
            assert prow.cells[1] == "3" and prow.cells[3] != "—"
            seen["position"] = prow.cells
            window.close()
        finally:
            await stop_services(ctx)

    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), 110))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        qapp.setQuitOnLastWindowClosed(True)
    assert seen["position"]
