"""Watchlist panel (``watchlistPanel``): bid, ask, last, spread, change % and volume per symbol.

Fed by the market-data pipeline's coalesced batches (``MarketDataBatchEvent``, 12.5 a second in
the app): the rows of the watched symbols a batch touched change on screen at the display pace
(:mod:`widgets.pacer`, 5 times a second, with the chart and the ticket; a batch in between is shown
at the next pass with the book's newest figures, never dropped), and the model announces only the
cells whose shown text changed (one ``dataChanged`` per run of changed columns). Symbols
are validated with :func:`normalize_symbol`; the list is handed to ``on_symbols_changed`` (the app
persists it in the settings) and ``subscribe`` (the stream).

A symbol is added only when the broker lists it (``assets``, the broker's asset list): an unknown
symbol is refused with a message and the typed text is kept. Clicking a row's Bid cell asks for a
sell limit at the bid, its Ask cell for a buy limit at the ask (``quoteClicked``).

The highlighted row is the symbol the ticket and the chart show (:meth:`follow`), or none when that
symbol is not listed. A right-click opens the row's menu without selecting the row (it is not the
user choosing a symbol), and removing a row never selects another one on the user's behalf, so
the chart and the ticket stay where they were and no other row looks chosen.

Signals:
    symbolSelected(str): the user selected a row (drives the chart and the order ticket).
    quoteClicked(str, str, str): symbol, side ("sell" at the bid, "buy" at the ask) and the price.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from PySide6.QtCore import QEvent, QItemSelection, QModelIndex, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.broker.assets import AssetDirectory, not_listed
from services.domain.bus import EventBus, Subscription
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from services.marketdata.pipeline import MarketDataBatchEvent
from widgets import theme
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.message_label import MessageLabel
from widgets.models.common import log
from widgets.models.row_view import RowTableView
from widgets.models.table import Row
from widgets.models.watchlist_model import WatchlistTableModel
from widgets.pacer import DisplayPacer
from widgets.protocols import BookLike
from widgets.tasks import run_async


class WatchlistPanel(QWidget):
    """See the module docstring. GUI thread only; bus handlers run on the loop (= GUI) thread."""

    symbolSelected = Signal(str)
    quoteClicked = Signal(str, str, str)
    BID_COLUMN, ASK_COLUMN = 1, 2

    def __init__(
        self,
        book: BookLike,
        bus: EventBus | None = None,
        symbols: Iterable[str] = (),
        *,
        on_symbols_changed: Callable[[list[str]], None] | None = None,
        subscribe: Callable[[list[str]], Awaitable[None]] | None = None,
        assets: AssetDirectory | None = None,
        pacer: DisplayPacer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("watchlistPanel")
        self.book = book
        self._on_symbols_changed = on_symbols_changed
        self._subscribe = subscribe
        self.model = WatchlistTableModel(self)
        self._watched: set[str] = set()
        self.assets = assets
        self._removing = False
        self._current: str | None = None  # the symbol the ticket and the chart show
        # Symbols changed by a batch but not shown yet; shown at the display pace (at once without a
        # pacer: a watchlist on its own, in tests)
        self._dirty: set[str] = set()
        self._show_soon = self._show_dirty if pacer is None else pacer.bind(self, self._show_dirty)

        self.add_edit = QLineEdit(self)
        self.add_edit.setObjectName("watchlistAddEdit")
        self.add_edit.setPlaceholderText("Add symbol (AAPL, BTC/USD)…")
        self.add_edit.returnPressed.connect(self._add_from_edit)
        self.add_button = QPushButton("Add", self)
        self.add_button.setObjectName("watchlistAddButton")
        self.add_button.clicked.connect(self._add_from_edit)
        self.error_label = MessageLabel("", self)
        self.error_label.setObjectName("watchlistError")
        self.error_label.setStyleSheet(f"color: {theme.DOWN}")
        self.error_label.setWordWrap(True)  # a long refusal wraps: it never widens the dock
        self.error_label.setVisible(False)

        self.view = self._build_view()

        top = QHBoxLayout()
        top.addWidget(self.add_edit, 1)
        top.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.error_label)
        layout.addWidget(self.view, 1)

        for s in symbols:
            self._insert(s)
        self.refresh()
        self._subs: list[Subscription] = []
        if bus is not None:
            self._subs.append(bus.subscribe(MarketDataBatchEvent, self.on_batch))
        cancel_on_destroy(self, self._subs)

    def _build_view(self) -> RowTableView:
        """The table: one selected row at most, columns fitted to typical values, the row menu."""
        view = self.view = RowTableView(self)
        self.view.setObjectName("watchlistTable")
        self.view.setModel(self.model)
        # paints each exposed row from the row's cached texts (no per-cell data() round trips)
        self.view.set_row_source(self._row_for_view, self.model.NUMERIC)
        self.view.show_as_list()
        header = self.view.horizontalHeader()
        header.setMinimumSectionSize(36)
        # Columns as wide as typical values; the panel's size hint is their sum, so a first-launch
        # dock shows every column. The user can still drag them.
        price = "65,505.00"
        self.view.fit_columns({0: "BTC/USD", 1: price, 2: price, 3: price, 4: "10.00", 5: "+10.00%",
                               6: "20,845.527921"})  # fmt: skip
        self._columns_width = sum(header.sectionSize(c) for c in range(header.count()))
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.viewport().installEventFilter(self)  # a right-click opens the menu, never selects
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.doubleClicked.connect(self._activated)
        self.view.clicked.connect(self._clicked)
        remove = QAction("Remove symbol", self.view)
        remove.setShortcut(QKeySequence.StandardKey.Delete)
        remove.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        remove.triggered.connect(self.remove_selected)
        self.view.addAction(remove)
        return view

    def sizeHint(self) -> QSize:
        """Wide enough for every column and a vertical scroll bar."""
        hint = super().sizeHint()
        chrome = 2 * self.view.frameWidth() + self.view.verticalScrollBar().sizeHint().width()
        layout = self.layout()
        margins = layout.contentsMargins().left() + layout.contentsMargins().right() if layout else 0
        return QSize(self._columns_width + chrome + margins, hint.height())

    # -- data ---------------------------------------------------------------------------------------
    def _row_for_view(self, view_row: int) -> Row | None:
        return self.model.row_at(view_row) if 0 <= view_row < self.model.rowCount() else None

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, loop (GUI) thread, once per frame: the touched watched rows change at the
        next pass of the display pace."""
        batch = event.batch
        quotes, trades = batch.quotes, batch.trades
        touched = [s for s in self._watched if s in quotes or s in trades]
        if touched:
            self._dirty.update(touched)
            self._show_soon()

    def _show_dirty(self) -> None:
        """The changed rows, read from the book as they are now."""
        dirty, self._dirty = self._dirty, set()
        touched = [s for s in dirty if s in self._watched]
        if touched:
            self.model.stage_many((s, self.book.entry(s)) for s in touched)
            self.model.flush()

    def refresh(self) -> None:
        """Re-read every watched symbol from the book (after adding symbols, at start)."""
        known = set(self.book.symbols())
        self.model.stage_many((s, self.book.entry(s) if s in known else None) for s in self.symbols())
        self.model.flush()

    def symbols(self) -> list[str]:
        return self.model.symbols()

    # -- editing ------------------------------------------------------------------------------------
    def _insert(self, text: str) -> str:
        sym = normalize_symbol(text)
        if sym in self._watched:
            raise InvalidSymbolError(f"{sym} is already in the watchlist")
        self._watched.add(sym)
        self.model.stage(sym, None)
        self.model.flush()
        return sym

    def add_symbol(self, text: str) -> str | None:
        """Validate and add; on a bad or unknown symbol the error is shown and the typed text is kept.

        With an asset list not loaded yet, it is loaded first and the add is done (or refused) then:
        None is returned meanwhile and :attr:`error_label` says the symbol is being checked."""
        try:
            sym = normalize_symbol(text)
            if sym in self._watched:
                raise InvalidSymbolError(f"{sym} is already in the watchlist")
        except InvalidSymbolError as exc:
            self._show_error(str(exc))
            return None
        if self.assets is not None:
            if not self.assets.loaded:
                self._show_error(f"checking {sym} against the broker's asset list…")
                run_async(self.assets.load(), partial(self._assets_loaded, text), log_errors=False)
                return None
            if self.assets.get(sym) is None:
                self._show_error(not_listed(sym))
                return None
        self._insert(sym)
        self.error_label.setVisible(False)
        self.refresh()
        self._changed([sym])
        return sym

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setToolTip(message)
        self.error_label.setVisible(True)

    def _assets_loaded(self, text: str, _assets: object, error: BaseException | None) -> None:
        if error is not None:
            self._show_error(f"cannot check the symbol: {error}")
            log.warning("watchlist: %s", error)
            return
        if self.add_symbol(text) is not None and self.add_edit.text() == text:
            self.add_edit.clear()

    def _add_from_edit(self) -> None:
        if self.add_symbol(self.add_edit.text()) is not None:
            self.add_edit.clear()

    def remove_symbol(self, symbol: str) -> bool:
        # Removing the selected row makes the view select its neighbour: that is not the user
        # choosing a symbol, so it must neither move the chart or the ticket nor look chosen.
        self._removing = True
        try:
            self.view.clearSelection()
            removed = self.model.remove_key(symbol)
            self.view.selectionModel().clear()
            if self._current is not None and self._current != symbol:
                self.select_symbol(self._current)  # the ticket's symbol stays highlighted
        finally:
            self._removing = False
        if not removed:
            return False
        self._watched.discard(symbol)
        self._changed([])
        return True

    def remove_selected(self) -> None:
        sym = self.selected_symbol()
        if sym is not None:
            self.remove_symbol(sym)

    def _changed(self, added: list[str]) -> None:
        if self._on_symbols_changed is not None:
            self._on_symbols_changed(self.symbols())
        if added and self._subscribe is not None:
            run_async(self._subscribe(added), self._subscribed)

    def _subscribed(self, _result: object, error: BaseException | None) -> None:
        if error is not None:
            self.error_label.setText(f"subscribe failed: {error}")
            self.error_label.setVisible(True)
            log.warning("watchlist subscribe failed: %s", error)

    # -- selection ----------------------------------------------------------------------------------
    def selected_symbol(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row_at(rows[0].row()).key

    def select_symbol(self, symbol: str) -> bool:
        row = self.model.row_of(symbol)
        if row is None:
            return False
        self._current = symbol
        self.view.selectRow(row)
        return True

    def follow(self, symbol: str) -> None:
        """The ticket and the chart now show ``symbol`` (picked anywhere): highlight its row, or no
        row when it is not listed. Emits nothing."""
        self._current = symbol
        if self.selected_symbol() == symbol:
            return
        self._removing = True  # not a pick by the user: nothing is emitted
        try:
            self.view.selectionModel().clear()
            self.select_symbol(symbol)
        finally:
            self._removing = False

    def _selection_changed(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        if self._removing:
            return
        sym = self.selected_symbol()
        if sym is not None:
            self._current = sym
            self.symbolSelected.emit(sym)

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self._current = self.model.row_at(index.row()).key
            self.symbolSelected.emit(self._current)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A right button press on the table is the menu's, not a selection."""
        if (
            watched is self.view.viewport()
            and event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick)
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.RightButton
        ):
            return True
        return super().eventFilter(watched, event)

    def _clicked(self, index: QModelIndex) -> None:
        """A click on the Bid cell: sell at the bid; on the Ask cell: buy at the ask."""
        if not index.isValid() or index.column() not in (self.BID_COLUMN, self.ASK_COLUMN):
            return
        row = self.model.row_at(index.row())
        entry = row.payload
        bid = index.column() == self.BID_COLUMN
        price = None if entry is None else (entry.bid if bid else entry.ask)
        if price is not None:
            self.quoteClicked.emit(row.key, "sell" if bid else "buy", str(price))

    def context_menu(self, pos: QPoint) -> QMenu:
        """The menu of the row under ``pos`` (viewport coordinates): it acts on that row, which
        stays unselected."""
        index = self.view.indexAt(pos)
        sym = self.model.row_at(index.row()).key if index.isValid() else None
        menu = QMenu(self)
        menu.setObjectName("watchlistMenu")
        act = menu.addAction(f"Remove {sym}" if sym else "Remove symbol")
        act.setEnabled(sym is not None)
        if sym is not None:
            act.triggered.connect(lambda _c=False, s=sym: self.remove_symbol(s))
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        menu = self.context_menu(pos)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def close_subscriptions(self) -> None:
        """Stop following the bus (also done when the panel is destroyed)."""
        cancel_subscriptions(self._subs)
