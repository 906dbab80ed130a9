"""Blotter panel (``blotterPanel``): orders (open / all / by status, symbol filter) and fills.

Adapts the :class:`~services.orders.store.OrderStore`: ``OrderChangedEvent`` and ``FillEvent`` on
the bus are staged into the models and applied once per frame; the Fills tab starts with the stored
fills it is given (``fills``: after a restart the store's orders show filled, so their fills show
too). The view keeps the last
:data:`MAX_ORDERS` orders and :data:`MAX_FILLS` fills; older history stays in the database.
Context menu: cancel, replace (quantity to work / limit / stop), duplicate (pre-fills the ticket).
Cancel all asks first. CSV export writes the rows the view shows, in its order.

Signals:
    duplicateRequested(object): an :class:`Order` to pre-fill the order ticket with.
    symbolSelected(str): the symbol of the selected order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from services.domain.bus import EventBus, Subscription
from services.domain.events import FillEvent, OrderChangedEvent
from services.domain.models import Fill, Order
from services.domain.money import InvalidNumberError, decimal_str, to_decimal
from widgets import theme
from widgets.csv_export import default_path, write_csv, write_table
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.message_label import MessageLabel
from widgets.models.common import STATUS_GROUPS, confirm
from widgets.models.fills_model import FILL_CSV, MAX_FILLS, FillsFilterProxy, FillsTableModel, fill_key
from widgets.models.orders_model import (
    LEG,
    MAX_ORDERS,
    ORDER_CSV,
    OrderRow,
    OrdersFilterProxy,
    OrdersTableModel,
)
from widgets.models.row_view import RowTableView
from widgets.models.table import Row, RowFilterProxy, RowTableModel
from widgets.protocols import EngineLike, StoreLike
from widgets.tasks import run_async

__all__ = ["BlotterPanel", "ReplaceDialog", "cancel_all_question", "write_csv"]


def cancel_all_question(working: list[Order]) -> str:
    """'Cancel the 3 working orders (AAPL 2, MSFT 1)?' (legs of bracket orders count one each)."""
    if not working:
        return "No working order is shown in the blotter. Ask the broker to cancel any open order?"
    by_symbol = Counter(o.symbol for o in working)
    parts = ", ".join(f"{sym} {n}" for sym, n in sorted(by_symbol.items()))
    noun = "order" if len(working) == 1 else "orders"
    return (
        f"Cancel the {len(working)} working {noun} ({parts})?\n"
        "Orders the broker lists as open that Heron does not show are canceled too."
    )


class ReplaceDialog(QDialog):
    """Replace an open order: the quantity the replacement works, its limit and stop.

    Alpaca's replacement is a new order whose ``filled_qty`` starts at 0 and whose ``qty`` is what
    it works (PATCH /v2/orders/{order_id}). So the dialog asks for exactly that (default: what is
    left), shows what is filled so far, and states what the order and the position come to if the
    replacement is fully worked. Empty price fields keep the order's current value.
    """

    def __init__(
        self, order: Order, parent: QWidget | None = None, *, position: Decimal | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("replaceDialog")
        self.setWindowTitle(f"Replace {order.symbol} {order.side.value} order")
        self._order = order
        self._position = position
        self._leaves = None if order.qty is None else max(order.qty - order.filled_qty, Decimal(0))
        self.filled_label = QLabel(
            f"{decimal_str(order.filled_qty) or '0'} of {decimal_str(order.qty) or '?'}", self
        )
        self.filled_label.setObjectName("replaceFilled")
        self.qty_edit = QLineEdit(decimal_str(self._leaves) or "", self)
        self.qty_edit.setObjectName("replaceQty")
        self.qty_edit.setToolTip("What the replacement works; the filled part stays filled")
        self.limit_edit = QLineEdit(decimal_str(order.limit_price) or "", self)
        self.limit_edit.setObjectName("replaceLimit")
        self.stop_edit = QLineEdit(decimal_str(order.stop_price) or "", self)
        self.stop_edit.setObjectName("replaceStop")
        self.outcome = MessageLabel("", self)
        self.outcome.setObjectName("replaceOutcome")
        self.outcome.setWordWrap(True)
        self.error = MessageLabel("", self)
        self.error.setObjectName("replaceError")
        self.error.setStyleSheet(f"color: {theme.DOWN}")
        form = QFormLayout()
        form.addRow("Filled so far", self.filled_label)
        form.addRow("Quantity to work", self.qty_edit)
        form.addRow("Limit", self.limit_edit)
        form.addRow("Stop", self.stop_edit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.outcome)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.values: dict[str, Decimal | None] = {}
        self.qty_edit.textChanged.connect(self._update_outcome)
        self._update_outcome()

    def _update_outcome(self) -> None:
        """'If fully worked: buy 180 in total (60 filled + 120); AAPL position 60 → 180'."""
        try:
            work = to_decimal(self.qty_edit.text().strip(), field="quantity")
        except InvalidNumberError:
            self.outcome.setText("")
            return
        if work <= 0:
            self.outcome.setText("")
            return
        o = self._order
        filled = o.filled_qty
        text = (
            f"If fully worked: {o.side.value} {decimal_str(filled + work)} in total "
            f"({decimal_str(filled) or '0'} filled + {decimal_str(work)})"
        )
        if self._position is not None:
            before = decimal_str(self._position) or "0"
            after = decimal_str(self._position + o.side.sign * work) or "0"
            text += f"; {o.symbol} position {before} → {after}"
        self.outcome.setText(text)

    def read(self) -> dict[str, Decimal | None] | str:
        """The changed values, or an error message (the fields keep what was typed)."""
        out: dict[str, Decimal | None] = {}
        current = {"qty": self._leaves, "limit_price": self._order.limit_price,
                   "stop_price": self._order.stop_price}  # fmt: skip
        for key, edit, what in (
            ("qty", self.qty_edit, "quantity"),
            ("limit_price", self.limit_edit, "limit price"),
            ("stop_price", self.stop_edit, "stop price"),
        ):
            text = edit.text().strip()
            if not text:
                continue
            try:
                value = to_decimal(text, field=what)
            except InvalidNumberError as exc:
                return str(exc)
            if value <= 0:
                return f"{what} must be greater than zero"
            if value != current[key]:
                out[key] = value
        if not out:
            return "nothing changed"
        return out

    def _accept(self) -> None:
        result = self.read()
        if isinstance(result, str):
            self.error.setText(result)
            return
        self.values = result
        self.accept()


class BlotterPanel(QWidget):
    """See the module docstring. GUI thread; bus handlers run on the loop (= GUI) thread."""

    duplicateRequested = Signal(object)
    symbolSelected = Signal(str)

    def __init__(
        self,
        store: StoreLike,
        engine: EngineLike | None = None,
        bus: EventBus | None = None,
        *,
        max_orders: int = MAX_ORDERS,
        max_fills: int = MAX_FILLS,
        fills: Iterable[Fill] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("blotterPanel")
        self.store = store
        self.engine = engine
        self.ask: Callable[[str, str], bool] = lambda title, text: confirm(self, title, text)
        #: ``replace_values(order) -> dict | None``; the dialog by default, replaced in tests
        self.replace_values: Callable[[Order], dict[str, Decimal | None] | None] = self._replace_dialog
        self.save_path: Callable[[], str] = self._ask_save_path
        self.orders = OrdersTableModel(self, max_rows=max_orders)
        self.fills = FillsTableModel(self, max_rows=max_fills)
        self.proxy = OrdersFilterProxy(self)
        self.proxy.setSourceModel(self.orders)
        self.fills_proxy = FillsFilterProxy(self)
        self.fills_proxy.setSourceModel(self.fills)

        bar = self._build_filter_bar()
        self.note = QLabel(
            f"Showing the last {max_orders:,} orders and {max_fills:,} fills; "
            "older history is in the database.",
            self,
        )
        self.note.setObjectName("blotterNote")
        self.note.setStyleSheet(f"color: {theme.MUTED}")
        self.status_label = MessageLabel("", self, elide=True)
        self.status_label.setObjectName("blotterStatus")
        self._build_tables()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.tabs, 1)
        low = QHBoxLayout()
        low.addWidget(self.note, 1)
        low.addWidget(self.status_label)
        layout.addLayout(low)

        self.group_combo.setCurrentText("All")
        #: the orders a Cancel all is waiting on and how many requests it sent (status line)
        self._cancel_all: tuple[list[str], int] | None = None
        self.orders.dataChanged.connect(lambda *_: self._report_cancel_all())
        self._subs: list[Subscription] = []
        self.load()
        self.fills.reset_rows((fill_key(f), f) for f in fills)  # the stored ones, newest at most max_fills
        if bus is not None:
            self._subs.append(bus.subscribe(OrderChangedEvent, self.on_order_changed))
            self._subs.append(bus.subscribe(FillEvent, self.on_fill))
        cancel_on_destroy(self, self._subs)

    def _build_filter_bar(self) -> QHBoxLayout:
        """Status group and symbol filters, Cancel all, Export CSV."""
        self.group_combo = QComboBox(self)
        self.group_combo.setObjectName("blotterStatusFilter")
        self.group_combo.addItems(list(STATUS_GROUPS))
        self.group_combo.currentTextChanged.connect(self.proxy.set_group)
        self.symbol_filter = QLineEdit(self)
        self.symbol_filter.setObjectName("blotterSymbolFilter")
        self.symbol_filter.setPlaceholderText("Filter symbol…")
        self.symbol_filter.setToolTip("Shows the orders and the fills of the symbols containing this text")
        self.symbol_filter.textChanged.connect(self.proxy.set_symbol_text)
        self.symbol_filter.textChanged.connect(self.fills_proxy.set_symbol_text)
        self.cancel_all_button = QPushButton("Cancel all", self)
        self.cancel_all_button.setObjectName("blotterCancelAll")
        self.cancel_all_button.clicked.connect(self.cancel_all)
        self.export_button = QPushButton("Export CSV…", self)
        self.export_button.setObjectName("blotterExport")
        self.export_button.clicked.connect(self._export_clicked)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Status", self))
        bar.addWidget(self.group_combo)
        bar.addWidget(self.symbol_filter, 1)
        bar.addWidget(self.cancel_all_button)
        bar.addWidget(self.export_button)
        return bar

    def _build_tables(self) -> None:
        """The orders and fills tables, newest first, in their tabs."""
        self.orders_view = self._table("blotterOrdersTable", self.proxy, self.orders)
        self.orders_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.orders_view.customContextMenuRequested.connect(self._context_menu)
        self.orders_view.clicked.connect(self._clicked)
        self.orders_view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.fills_view = self._table("blotterFillsTable", self.fills_proxy, self.fills)
        self.fills_view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        # Widths that show typical values whole, and Status beside the quantities, so the columns
        # a trader scans first fit a half-width dock; the rest are a scroll away.
        stamp, price, qty = "2026-12-31 23:59:59", "12,345.67", "12,345"
        self.orders_view.fit_columns({
            0: LEG + stamp, 1: "BTC/USD", 2: "SELL", 3: "trailing_stop", 4: "take profit", 5: qty,
            6: qty, 7: price, 8: price, 9: "12.5%", 10: price, 11: "partially_filled", 12: "day",
            13: "strategy:sma_crossover",
        })  # fmt: skip
        header = self.orders_view.horizontalHeader()
        header.moveSection(header.visualIndex(OrdersTableModel.STATUS_COL), header.visualIndex(7))
        self.fills_view.fit_columns({0: stamp, 1: "BTC/USD", 2: "SELL", 3: qty, 4: price, 5: "1,234,567.89",
                                     6: "hr-x-script-1k7v5o0o4-1"})  # fmt: skip
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("blotterTabs")
        self.tabs.addTab(self.orders_view, "Orders")
        self.tabs.addTab(self.fills_view, "Fills")

    def _table(self, name: str, proxy: RowFilterProxy, source: RowTableModel) -> RowTableView:
        view = RowTableView(self)
        view.setObjectName(name)
        view.setModel(proxy)

        def row_source(proxy_row: int) -> Row | None:
            return proxy.source_row(proxy_row)

        view.set_row_source(row_source, source.NUMERIC)
        view.setSortingEnabled(True)
        view.show_as_list()
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        return view

    # -- store adaptation ---------------------------------------------------------------------------
    def load(self) -> None:
        """Initial rows from the store's in-memory orders (open + recent closed)."""
        items = []
        for rec in self.store.orders():
            parent = getattr(rec, "parent_client_order_id", None)
            items.append((rec.client_order_id, OrderRow(self.store.view(rec), rec.source, parent)))
        self.orders.reset_rows(items)

    def key_of(self, order: Order) -> str:
        rec = self.store.find(client_order_id=order.client_order_id, broker_order_id=order.id or None)
        if rec is not None:
            return str(rec.client_order_id)
        return order.client_order_id

    def on_order_changed(self, event: OrderChangedEvent) -> None:
        """Bus handler (loop = GUI thread): staged, shown at the next frame. A leg of a bracket,
        OCO or OTO order (the store records its parent) is shown under that parent."""
        key = self._stage_order(event.order, event.source, None)
        for leg in event.order.legs:  # Alpaca's nested form: the legs inside their parent
            self._stage_order(leg, event.source, key)

    def _stage_order(self, order: Order, source: str, parent: str | None) -> str:
        rec = self.store.find(client_order_id=order.client_order_id, broker_order_id=order.id or None)
        key = order.client_order_id if rec is None else str(rec.client_order_id)
        parent = getattr(rec, "parent_client_order_id", None) or parent
        self.orders.stage(key, OrderRow(order, source, parent))
        return key

    def on_fill(self, event: FillEvent) -> None:
        """Bus handler (loop = GUI thread): staged, shown at the next frame."""
        self.fills.stage(fill_key(event.fill), event.fill)

    def flush(self) -> None:
        """Apply staged updates now (the frame timer does this by itself)."""
        self.orders.flush()
        self.fills.flush()

    # -- selection and actions ----------------------------------------------------------------------
    def selected_order(self) -> Order | None:
        rows = self.orders_view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.orders.order(self.proxy.source_key(rows[0].row()))

    def _emit_symbol(self, proxy_row: int) -> None:
        order = self.orders.order(self.proxy.source_key(proxy_row))
        if order is not None:
            self.symbolSelected.emit(order.symbol)

    def _clicked(self, index: QModelIndex) -> None:
        """A click on the first column of a bracket / OCO / OTO parent folds or unfolds its legs."""
        key = self.proxy.source_key(index.row())
        header = self.orders_view.horizontalHeader()
        if header.visualIndex(index.column()) == 0 and self.orders.legs_of(key):
            self.toggle_legs(key)
        self._emit_symbol(index.row())

    def toggle_legs(self, key: str) -> None:
        """Fold the legs of parent ``key`` if they are shown, show them if folded."""
        self.orders.set_collapsed(key, key not in self.orders.collapsed)

    def _key(self, order: Order) -> str:
        return self.key_of(order)

    def cancel(self, order: Order) -> bool:
        if self.engine is None or order.status.is_terminal:
            return False
        key = self._key(order)
        run_async(
            self.engine.cancel(key, source="manual"),
            lambda ok, e: self._status(
                f"cancel {order.client_order_id}: " + ("requested" if ok else f"not possible {e or ''}")
            ),
        )
        return True

    def cancel_all(self) -> bool:
        """Ask, naming how many working orders will be canceled; then report what was sent and,
        as the broker answers, how many of those orders are still working."""
        if self.engine is None:
            return False
        self.flush()
        keys = self.orders.working_keys()
        working = [o for k in keys if (o := self.orders.order(k)) is not None]
        if not self.ask("Cancel all orders", cancel_all_question(working)):
            return False
        self._status(f"cancel all: canceling {len(working)} working order(s)…")
        run_async(self.engine.cancel_all(source="manual"), lambda n, e: self._cancel_all_done(keys, n, e))
        return True

    def _cancel_all_done(self, keys: list[str], sent: int | None, error: BaseException | None) -> None:
        if error is not None:
            self._cancel_all = None
            self._status(f"cancel all failed: {error}")
            return
        self._cancel_all = (keys, sent or 0)
        self._report_cancel_all()

    def _report_cancel_all(self) -> None:
        """'cancel all: 2 cancel request(s) sent; 3 of 3 working orders no longer working' (a
        bracket's legs are canceled together, so one request can close several orders)."""
        if self._cancel_all is None:
            return
        keys, sent = self._cancel_all
        still = [k for k in keys if (o := self.orders.order(k)) is not None and o.status.is_open]
        text = (
            f"cancel all: {sent} cancel request(s) sent; "
            f"{len(keys) - len(still)} of {len(keys)} working order(s) no longer working"
        )
        if still:
            text += f", {len(still)} still working"
        else:
            self._cancel_all = None
        self._status(text)

    def replace(self, order: Order) -> bool:
        if self.engine is None or order.status.is_terminal:
            return False
        values = self.replace_values(order)
        if not values:
            return False
        run_async(
            self.engine.replace(self._key(order), source="manual", **values),
            lambda r, e: self._status(f"replace: {getattr(r, 'message', '') if e is None else e}"),
        )
        return True

    def duplicate(self, order: Order) -> None:
        self.duplicateRequested.emit(order)

    def _replace_dialog(self, order: Order) -> dict[str, Decimal | None] | None:
        position_qty = getattr(self.store, "position_qty", None)
        position = position_qty(order.symbol) if callable(position_qty) else None
        dialog = ReplaceDialog(order, self, position=position)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            return dialog.values
        return None

    def _context_menu(self, pos: QPoint) -> None:
        index = self.orders_view.indexAt(pos)
        if not index.isValid():
            return
        self.orders_view.selectRow(index.row())
        order = self.selected_order()
        if order is None:
            return
        menu = QMenu(self)
        is_open = order.status.is_open and self.engine is not None
        act = menu.addAction("Cancel")
        act.setEnabled(is_open)
        act.triggered.connect(lambda: self.cancel(order))
        act = menu.addAction("Replace…")
        act.setEnabled(is_open)
        act.triggered.connect(lambda: self.replace(order))
        act = menu.addAction("Duplicate to ticket")
        act.triggered.connect(lambda: self.duplicate(order))
        key = self.proxy.source_key(index.row())
        if self.orders.legs_of(key):
            folded = key in self.orders.collapsed
            act = menu.addAction("Show legs" if folded else "Hide legs")
            act.triggered.connect(lambda: self.toggle_legs(key))
        menu.popup(self.orders_view.viewport().mapToGlobal(pos))

    def _status(self, text: str) -> None:
        self.status_label.setText(text)

    # -- export -------------------------------------------------------------------------------------
    def export_to(self, path: Path | str, *, fills: bool = False) -> int:
        """Write the orders (or fills) the view shows, in its order, to ``path`` as data (see
        :mod:`widgets.csv_export`); a folded group's legs are written too."""
        if fills:
            return write_table(path, FILL_CSV, self.fills_proxy.payloads())
        return write_table(path, ORDER_CSV, self._orders_for_export())

    def _orders_for_export(self) -> list[OrderRow]:
        out: list[OrderRow] = []
        for r in range(self.proxy.rowCount()):
            row = self.proxy.source_row(r)
            if row is None:
                continue
            out.append(row.payload)
            key = row.key
            if key in self.orders.collapsed:
                out.extend(p for k in self.orders.legs_of(key) if (p := self.orders.payload(k)) is not None)
        return out

    def _ask_save_path(self) -> str:
        fills = self.tabs.currentIndex() == 1
        name = "heron-fills.csv" if fills else "heron-orders.csv"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export fills" if fills else "Export orders", default_path(name), "CSV files (*.csv)"
        )
        return path

    def _export_clicked(self) -> None:
        path = self.save_path()
        if not path:
            return
        fills = self.tabs.currentIndex() == 1
        try:
            n = self.export_to(path, fills=fills)
        except OSError as exc:
            self._status(f"export failed: {exc.strerror or exc}")
            return
        self._status(f"exported {n} rows to {path}")

    def close_subscriptions(self) -> None:
        """Stop following the bus (also done when the panel is destroyed)."""
        cancel_subscriptions(self._subs)
