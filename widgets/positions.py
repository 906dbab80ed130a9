"""Positions panel (``positionsPanel``): quantity, average price, last, market value, P&L.

Rows come from the OrderStore's positions (built from fills) marked with the QuoteBook; the day
P&L column shows the broker's figure, re-marked at the last price, when a position report
(``PositionsEvent``) has arrived (see :mod:`widgets.models.positions_model`).
Fills re-read the affected symbol at the next frame; market data re-marks open positions at the
window's display pace (:mod:`widgets.pacer`, with the watchlist, the chart and the ticket), or, on a
panel given no pacer, at a pace of its own, at most every :data:`MARK_INTERVAL_S`. Close
(optional quantity) and flatten all ask first and go through the ExecutionEngine; the confirmation
names the working orders they cancel first (``working``, from the order store), and each failure
(a cancel refused, a close refused, a position still open) is said in a message box and in the
log at ERROR.

Signals:
    symbolSelected(str)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from PySide6.QtCore import QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.bus import EventBus, Subscription
from services.domain.events import FillEvent, PositionsEvent
from services.domain.models import Position
from services.domain.money import InvalidNumberError, decimal_str, to_decimal
from services.marketdata.pipeline import MarketDataBatchEvent
from services.orders.close_results import CloseReport, SymbolCloseResult
from services.orders.working import WorkingOrders
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.message_label import MessageLabel
from widgets.models.common import confirm
from widgets.models.positions_model import Marks, PositionSource, PositionsTableModel, position_view
from widgets.models.row_view import RowTableView
from widgets.models.table import SORT_ROLE, Row
from widgets.pacer import DisplayPacer
from widgets.protocols import EngineLike
from widgets.tasks import run_async

MARK_INTERVAL_S = 0.25

log = logging.getLogger("heron.positions")


def cancels_first(working: WorkingOrders | None, what: str) -> str:
    """The confirmation's paragraph naming the working orders a close cancels first."""
    if working is None:
        return ""
    lines = working.lines()
    if not lines:
        return f"\n\nNo working order of {what} is known; any the broker lists is canceled first."
    shown = "\n".join(f"  • {line}" for line in lines[:20])
    more = f"\n  … and {len(lines) - 20} more" if len(lines) > 20 else ""
    n = len(working.orders)
    these = "this working order" if n == 1 else f"these {n} working orders"
    verb = "is" if n == 1 else "are"
    return f"\n\nFirst {these} of {what} {verb} canceled (and any other the broker lists):\n{shown}{more}"


def positions_to_close(local: Mapping[str, Any], broker: Mapping[str, Position] | None) -> tuple[str, str]:
    """The confirmation's paragraph naming the positions a flatten closes (symbol, side, qty) and
    where that list comes from: the broker's last position report when one arrived (a flatten closes
    what the broker holds, drift included), else Heron's book."""
    if broker is not None:
        held = {s: p.qty for s, p in broker.items() if p.qty != 0}
        source = "as the broker last reported them"
    else:
        held = {s: p.qty for s, p in local.items() if p.qty != 0}
        source = "in Heron's book; the broker's positions are read again when closing"
    if not held:
        return "", f"No open position ({source})."
    lines = [f"  • {s} {'long' if q > 0 else 'short'} {decimal_str(abs(q))}" for s, q in sorted(held.items())]
    shown = "\n".join(lines[:20]) + (f"\n  … and {len(lines) - 20} more" if len(lines) > 20 else "")
    these = "This position is" if len(lines) == 1 else f"These {len(lines)} positions are"
    return shown, f"{these} closed with market orders ({source}):"


class PositionsPanel(QWidget):
    """See the module docstring. GUI thread; bus handlers run on the loop (= GUI) thread."""

    symbolSelected = Signal(str)

    def __init__(
        self,
        store: PositionSource,
        marks: Marks,
        engine: EngineLike | None = None,
        bus: EventBus | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        working: Callable[[str | None], WorkingOrders] | None = None,
        pacer: DisplayPacer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("positionsPanel")
        self.store = store
        self.marks = marks
        self.engine = engine
        self._to_mark: set[str] = set()  # open positions quoted or traded since the last pass
        if pacer is None:
            pacer = DisplayPacer(MARK_INTERVAL_S, clock=clock, parent=self)
        self._mark_soon = pacer.bind(self, self._mark_due)
        self.broker_positions: dict[str, Position] = {}
        self._broker_reported = False  # a PositionsEvent arrived: broker_positions is the broker's
        self.ask: Callable[[str, str], bool] = lambda title, text: confirm(self, title, text)
        #: ``working(symbol or None)``: the working orders a close / flatten cancels first
        self.working = working
        #: ``show_error(title, text)``: a failure the trader must see (a message box by default)
        self.show_error: Callable[[str, str], None] = self._message_box
        #: ``close_qty(symbol, qty) -> Decimal | None | False``: None closes all, False cancels
        self.close_qty: Callable[[str, Decimal], Decimal | bool | None] = self._ask_qty
        self.model = PositionsTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setSourceModel(self.model)

        self.view = self._build_view()

        self.close_button = QPushButton("Close…", self)
        self.close_button.setObjectName("positionsClose")
        self.close_button.clicked.connect(self.close_selected)
        self.flatten_button = QPushButton("Flatten all", self)
        self.flatten_button.setObjectName("positionsFlatten")
        self.flatten_button.clicked.connect(self.flatten_all)
        self.status_label = MessageLabel("", self, elide=True)
        self.status_label.setObjectName("positionsStatus")
        bar = QHBoxLayout()
        bar.addWidget(self.status_label, 1)
        bar.addWidget(self.close_button)
        bar.addWidget(self.flatten_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view, 1)
        layout.addLayout(bar)

        self.refresh()
        self._subs: list[Subscription] = []
        if bus is not None:
            self._subs.append(bus.subscribe(FillEvent, self.on_fill))
            self._subs.append(bus.subscribe(PositionsEvent, self.on_positions))
            self._subs.append(bus.subscribe(MarketDataBatchEvent, self.on_batch))
        cancel_on_destroy(self, self._subs)

    def _build_view(self) -> RowTableView:
        """The table: sorted by symbol, one selected row at most, columns fitted to typical values."""
        view = RowTableView(self)
        view.setObjectName("positionsTable")
        view.setModel(self.proxy)
        view.set_row_source(self._row_for_view, self.model.NUMERIC)
        view.setSortingEnabled(True)
        view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        view.show_as_list()
        # every header whole (with its sort arrow) and typical values whole; tooltips say the rest
        money = "+1,234,567.89"
        view.fit_columns({0: "BTC/USD", 1: "12,345", 2: "12,345.67", 3: "12,345.67", 4: money,
                          5: money, 6: money, 7: money})  # fmt: skip
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._context_menu)
        view.clicked.connect(lambda ix: self._emit_symbol(ix.row()))
        return view

    # -- adaptation ---------------------------------------------------------------------------------
    def _row_for_view(self, view_row: int) -> Row | None:
        src = self.proxy.mapToSource(self.proxy.index(view_row, 0)).row()
        return None if src < 0 else self.model.row_at(src)

    def _stage(self, symbols: Any) -> None:
        for sym in symbols:
            view = position_view(self.store, self.marks, sym, self.broker_positions)
            if view is not None:
                self.model.stage(sym, view)

    def refresh(self) -> None:
        self._stage(list(self.store.positions))
        self.model.flush()

    def on_fill(self, event: FillEvent) -> None:
        """Bus handler: the store booked a fill; that symbol's row changes at the next frame."""
        self._stage([event.fill.symbol])

    def on_positions(self, event: PositionsEvent) -> None:
        """Bus handler: the broker's position report (for the day P&L column)."""
        self.broker_positions = {p.symbol: p for p in event.positions}
        self._broker_reported = True
        self._stage(list(self.store.positions))

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, once per market-data frame: re-mark open positions at the display pace."""
        batch = event.batch
        touched = [s for s, p in self.store.positions.items()
                   if p.qty != 0 and (s in batch.quotes or s in batch.trades)]  # fmt: skip
        if touched:
            self._to_mark.update(touched)
            self._mark_soon()

    def _mark_due(self) -> None:
        """A pass of the display pace: the touched rows, marked at the book's newest prices."""
        due, self._to_mark = self._to_mark, set()
        self._stage(due)
        self.model.flush()  # in this pass: the same repaint as the other panels

    # -- actions ------------------------------------------------------------------------------------
    def selected_symbol(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        src = self.proxy.mapToSource(rows[0])
        return self.model.row_at(src.row()).key

    def _emit_symbol(self, proxy_row: int) -> None:
        src = self.proxy.mapToSource(self.proxy.index(proxy_row, 0))
        if src.isValid():
            self.symbolSelected.emit(self.model.row_at(src.row()).key)

    def close_selected(self) -> bool:
        sym = self.selected_symbol()
        if sym is None:
            self.status_label.setText("select a position to close")
            return False
        return self.close_symbol(sym)

    def close_symbol(self, symbol: str) -> bool:
        """Ask for the quantity (all by default) and a confirmation, then send the closing order."""
        if self.engine is None:
            return False
        pos = self.store.positions.get(symbol)
        held = abs(pos.qty) if pos is not None else Decimal(0)
        if held == 0:
            self.status_label.setText(f"no open {symbol} position")
            return False
        qty = self.close_qty(symbol, held)
        if qty is False:
            return False
        amount = held if qty is None or qty is True else qty
        if not isinstance(amount, Decimal) or amount <= 0 or amount > held:
            self.status_label.setText(f"close quantity must be between 0 and {decimal_str(held)}")
            return False
        question = f"Close {decimal_str(amount)} of {symbol} with a market order?"
        if not self.ask("Close position", question + self._cancels_first(symbol)):
            return False
        self.status_label.setText(f"closing {symbol}: its working orders are canceled first…")
        run_async(
            self.engine.close_position(symbol, qty=None if amount == held else amount, source="manual"),
            lambda r, e: self._closed(f"close {symbol}", [r] if r is not None else [], e),
            log_errors=False,  # said by _closed, in one line
        )
        return True

    def flatten_all(self) -> bool:
        if self.engine is None:
            return False
        listing, head = positions_to_close(
            self.store.positions, self.broker_positions if self._broker_reported else None
        )
        question = f"Close EVERY position with market orders?\n\n{head}" + (f"\n{listing}" if listing else "")
        if not self.ask("Flatten all positions", question + self._cancels_first(None)):
            return False
        self.status_label.setText("closing every position: working orders are canceled first…")
        run_async(
            self.engine.flatten_all(source="manual"),
            lambda r, e: self._closed("flatten all", list(r.results) if r is not None else [], e, r),
            log_errors=False,
        )
        return True

    def _message_box(self, title: str, text: str) -> None:
        QMessageBox.critical(self, title, text)

    def _cancels_first(self, symbol: str | None) -> str:
        if self.working is None:
            return ""
        return cancels_first(self.working(symbol), symbol or "any symbol")

    def _closed(
        self,
        what: str,
        results: list[SymbolCloseResult],
        error: BaseException | None,
        report: CloseReport | None = None,
    ) -> None:
        """The outcome: the status line always; a message box and an ERROR log line for each failure
        (the engine raised, a position is still open, a cancel was refused)."""
        if isinstance(error, asyncio.CancelledError):
            return  # the terminal is shutting down; the closer itself reports what is still open
        failures: list[str] = []
        if error is not None:
            failures.append(f"{what} failed: {error}")
        if report is not None and report.error:
            failures.append(report.error)
        failures += [r.message for r in results if not r.complete or r.cancel_refused]
        done = "; ".join(r.message for r in results) or (str(report) if report is not None else "")
        self.status_label.setText(f"{what}: " + ("; ".join(failures) if failures else done or "sent"))
        if failures:
            for line in failures:
                log.error("%s: %s", what, line)
            self.show_error(what[:1].upper() + what[1:], "\n".join(failures))

    def _ask_qty(self, symbol: str, held: Decimal) -> Decimal | bool | None:
        text, ok = QInputDialog.getText(
            self, "Close position", f"Quantity of {symbol} to close (held {decimal_str(held)}):",
            text=decimal_str(held) or "",
        )  # fmt: skip
        if not ok:
            return False
        try:
            return to_decimal(text, field="quantity")
        except InvalidNumberError as exc:
            self.status_label.setText(str(exc))
            return False

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        self.view.selectRow(index.row())
        menu = QMenu(self)
        act = menu.addAction("Close…")
        act.triggered.connect(self.close_selected)
        act = menu.addAction("Flatten all…")
        act.triggered.connect(self.flatten_all)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def close_subscriptions(self) -> None:
        """Stop following the bus (also done when the panel is destroyed)."""
        cancel_subscriptions(self._subs)
