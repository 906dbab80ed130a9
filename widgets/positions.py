"""Positions panel (``positionsPanel``): quantity, average price, last, market value, P&L.

Rows come from the OrderStore's positions (built from fills) marked with the QuoteBook; the day
P&L column shows the broker's figure, re-marked at the last price, when a position report
(``PositionsEvent``) has arrived (see :mod:`widgets.models.positions_model`).
Fills re-read the affected symbol at the next frame; market data re-marks open positions at most
every :data:`MARK_INTERVAL_S`. Close (optional quantity) and flatten all ask first and go through
the ExecutionEngine.

Signals:
    symbolSelected(str)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from PySide6.QtCore import QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.bus import EventBus, Subscription
from services.domain.events import FillEvent, PositionsEvent
from services.domain.models import Position
from services.domain.money import InvalidNumberError, decimal_str, to_decimal
from services.marketdata.pipeline import MarketDataBatchEvent
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.message_label import MessageLabel
from widgets.models.common import confirm
from widgets.models.positions_model import Marks, PositionSource, PositionsTableModel, position_view
from widgets.models.row_view import RowTableView
from widgets.models.table import SORT_ROLE, Row
from widgets.protocols import EngineLike
from widgets.tasks import run_async

MARK_INTERVAL_S = 0.25


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
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("positionsPanel")
        self.store = store
        self.marks = marks
        self.engine = engine
        self._clock = clock
        self._last_mark = float("-inf")
        self.broker_positions: dict[str, Position] = {}
        self.ask: Callable[[str, str], bool] = lambda title, text: confirm(self, title, text)
        #: ``close_qty(symbol, qty) -> Decimal | None | False``: None closes all, False cancels
        self.close_qty: Callable[[str, Decimal], Decimal | bool | None] = self._ask_qty
        self.model = PositionsTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setSourceModel(self.model)

        self.view: RowTableView = RowTableView(self)
        self.view.setObjectName("positionsTable")
        self.view.setModel(self.proxy)
        self.view.set_row_source(self._row_for_view, self.model.NUMERIC)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.horizontalHeader().setStretchLastSection(True)
        # every header whole (with its sort arrow) and typical values whole; tooltips say the rest
        money = "+1,234,567.89"
        self.view.fit_columns({0: "BTC/USD", 1: "12,345", 2: "12,345.67", 3: "12,345.67", 4: money,
                               5: money, 6: money, 7: money})  # fmt: skip
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.clicked.connect(lambda ix: self._emit_symbol(ix.row()))

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
        self._stage(list(self.store.positions))

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, once per market-data frame: re-mark open positions, rate-limited."""
        now = self._clock()
        if now - self._last_mark < MARK_INTERVAL_S:
            return
        self._last_mark = now
        batch = event.batch
        self._stage([s for s, p in self.store.positions.items()
                     if p.qty != 0 and (s in batch.quotes or s in batch.trades)])  # fmt: skip

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
        if not self.ask("Close position", f"Close {decimal_str(amount)} of {symbol} with a market order?"):
            return False
        run_async(
            self.engine.close_position(symbol, qty=None if amount == held else amount, source="manual"),
            lambda r, e: self.status_label.setText(
                f"close {symbol}: " + (getattr(r, "message", "") or "sent" if e is None else f"failed: {e}")
            ),
        )
        return True

    def flatten_all(self) -> bool:
        if self.engine is None:
            return False
        if not self.ask("Flatten all positions", "Close EVERY position with market orders?"):
            return False
        run_async(
            self.engine.flatten_all(source="manual"),
            lambda n, e: self.status_label.setText(
                f"flatten all: {n}" if e is None else f"flatten failed: {e}"
            ),
        )
        return True

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
