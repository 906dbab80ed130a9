"""Order ticket (``orderTicket``): manual order entry with a live, explained risk pre-check.

- Every field is validated as the user types (:func:`to_decimal`, :func:`normalize_symbol`); a bad
  field shows its error next to it and nothing typed is lost.
- ~100 ms after the last change the current request goes through the RiskGate (the same checks
  the engine runs on submit) and EVERY check is listed pass/fail with its numbers. Submit is
  disabled, with the reason shown, while a field is invalid or a check fails.
- Submit goes through :meth:`ExecutionEngine.submit` with source ``"manual"`` after a confirmation
  (always in live mode; in paper and local mode when ``confirm_orders`` is on). The outcome
  (accepted / rejected with the reason / in flight) is shown.
- Window-wide hotkeys (:meth:`install_hotkeys`): F1/Ctrl+B buy, F2/Ctrl+S sell (submit the ticket
  on that side), F3 cancel the last manual order, F4 cancel all (confirmed), Ctrl+Shift+F flatten
  all (confirmed).

Signals:
    submitted(str): client order id of an order the engine accepted or has in flight.
    resultChanged(str): the outcome text shown under the Submit button.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import Mode, OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.models import Asset, Order, OrderLegSpec, OrderRequest
from services.domain.money import InvalidNumberError, decimal_str, to_decimal
from services.domain.symbols import InvalidSymbolError, is_crypto, normalize_symbol
from services.risk.context import RiskReport
from widgets import theme
from widgets.models.common import DOWN, UP, confirm, describe_request
from widgets.protocols import EngineLike
from widgets.tasks import run_async

DEBOUNCE_MS = 100
RECHECK_MS = 1000
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TicketState:
    """The outcome of reading the form: a request, or the errors per field."""

    request: OrderRequest | None
    errors: dict[str, str]


TYPES = [t.value for t in OrderType]
TIFS = [t.value for t in TimeInForce]
CLASSES = [OrderClass.SIMPLE.value, OrderClass.BRACKET.value, OrderClass.OCO.value, OrderClass.OTO.value]


def _positive(
    errors: dict[str, str], key: str, edit: QLineEdit, what: str, *, required: bool
) -> Decimal | None:
    """The field's number when it is one above zero; otherwise None, with the problem in ``errors``."""
    text = edit.text().strip()
    if not text:
        if required:
            errors[key] = f"{what} is required"
        return None
    try:
        value = to_decimal(text, field=what)
    except InvalidNumberError as exc:
        errors[key] = str(exc)
        return None
    if value <= 0:
        errors[key] = f"{what} must be greater than zero"
        return None
    return value


class OrderTicket(QWidget):
    """See the module docstring. GUI thread only."""

    submitted = Signal(str)
    resultChanged = Signal(str)

    def __init__(
        self,
        engine: EngineLike,
        *,
        mode: Mode = Mode.LOCAL,
        confirm_orders: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("orderTicket")
        self.engine = engine
        self.mode = mode
        self.confirm_orders = confirm_orders
        #: ``confirm(title, text) -> bool``; replaced in tests
        self.ask: Callable[[str, str], bool] = lambda title, text: confirm(self, title, text)
        self.last_report: RiskReport | None = None
        self.last_state: TicketState | None = None
        self.last_client_order_id: str | None = None
        self.task: asyncio.Future[Any] | None = None
        self._assets: dict[str, Asset | None] = {}
        self._asset_loading: set[str] = set()
        self.shortcuts: list[QShortcut] = []
        self._build()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_precheck)
        # risk checks change with time (duplicate window, trading state, market): re-run them while
        # the ticket holds a valid order, so neither a block nor a pass goes stale
        self._recheck = QTimer(self)
        self._recheck.setInterval(RECHECK_MS)
        self._recheck.timeout.connect(self._recheck_now)
        self._update_visibility()
        self.run_precheck()

    # -- layout -------------------------------------------------------------------------------------
    def _line(self, name: str, placeholder: str = "") -> QLineEdit:
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.textChanged.connect(self._changed)
        return edit

    def _combo(self, name: str, items: list[str]) -> QComboBox:
        box = QComboBox(self)
        box.setObjectName(name)
        box.addItems(items)
        box.currentIndexChanged.connect(self._changed)
        return box

    def _build(self) -> None:
        self._build_fields()
        form = self._build_form()
        self.precheck_list = QListWidget(self)
        self.precheck_list.setObjectName("ticketPrecheck")
        self.precheck_list.setMinimumHeight(120)
        self.precheck_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        # Each check wraps to the dock's width: a reason cut at the edge is a reason not read.
        self.precheck_list.setWordWrap(True)
        self.precheck_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.precheck_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        checks = QGroupBox("Risk pre-check", self)
        cl = QVBoxLayout(checks)
        cl.setContentsMargins(4, 4, 4, 4)
        cl.addWidget(self.precheck_list)

        self.submit_button = QPushButton("Submit", self)
        self.submit_button.setObjectName("ticketSubmit")
        self.submit_button.clicked.connect(lambda: self.submit())
        self.reason_label = QLabel("", self)
        self.reason_label.setObjectName("ticketBlockedReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setStyleSheet(f"color: {theme.WARN}")
        self.result_label = QLabel("", self)
        self.result_label.setObjectName("ticketResult")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(checks, 1)
        layout.addWidget(self.submit_button)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.result_label)

    def _build_fields(self) -> None:
        """One editor per order field, each re-checking the form when it changes."""
        self.symbol_edit = self._line("ticketSymbol", "AAPL, BTC/USD")
        self.side_combo = self._combo("ticketSide", ["buy", "sell"])
        self.amount_kind = self._combo("ticketAmountKind", ["qty", "notional"])
        self.amount_edit = self._line("ticketAmount", "shares")
        self.type_combo = self._combo("ticketType", TYPES)
        self.limit_edit = self._line("ticketLimit", "limit price")
        self.stop_edit = self._line("ticketStop", "stop price")
        self.trail_kind = self._combo("ticketTrailKind", ["price", "percent"])
        self.trail_edit = self._line("ticketTrail", "trail")
        self.tif_combo = self._combo("ticketTif", TIFS)
        self.ext_check = QCheckBox("Extended hours", self)
        self.ext_check.setObjectName("ticketExtended")
        self.ext_check.toggled.connect(self._changed)
        self.class_combo = self._combo("ticketClass", CLASSES)
        self.tp_edit = self._line("ticketTakeProfit", "take-profit limit")
        self.sl_stop_edit = self._line("ticketStopLossStop", "stop-loss stop")
        self.sl_limit_edit = self._line("ticketStopLossLimit", "stop-loss limit (optional)")

    def _build_form(self) -> QFormLayout:
        """The fields in a form, each row with its own error line (``ticketError_<key>``)."""
        self.errors: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._rows: dict[str, QWidget] = {}

        def row(key: str, label: str, field: QWidget) -> None:
            box = QWidget(self)
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(0)
            lay.addWidget(field)
            err = QLabel("", box)
            err.setObjectName(f"ticketError_{key}")
            err.setStyleSheet(f"color: {theme.DOWN}; font-size: 11px")
            err.setVisible(False)
            lay.addWidget(err)
            self.errors[key] = err
            self._rows[key] = box
            form.addRow(label, box)

        row("symbol", "Symbol", self.symbol_edit)
        row("side", "Side", self.side_combo)
        row("amount", "Amount", self._pair(self.amount_kind, self.amount_edit))
        row("type", "Type", self.type_combo)
        row("limit", "Limit", self.limit_edit)
        row("stop", "Stop", self.stop_edit)
        row("trail", "Trail", self._pair(self.trail_kind, self.trail_edit))
        row("tif", "Time in force", self.tif_combo)
        row("extended", "", self.ext_check)
        row("class", "Order class", self.class_combo)
        row("take_profit", "Take profit", self.tp_edit)
        row("stop_loss", "Stop loss", self.sl_stop_edit)
        row("stop_loss_limit", "", self.sl_limit_edit)
        self._form = form
        return form

    def _pair(self, kind: QComboBox, edit: QLineEdit) -> QWidget:
        """A unit chooser beside its value (qty/notional and amount, price/percent and trail)."""
        box = QWidget(self)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(kind)
        lay.addWidget(edit, 1)
        return box

    # -- form → request -----------------------------------------------------------------------------
    def _changed(self, *_: object) -> None:
        self._update_visibility()
        self._debounce.start()

    def _update_visibility(self) -> None:
        otype = OrderType(self.type_combo.currentText())
        oclass = OrderClass(self.class_combo.currentText())
        legs = oclass is not OrderClass.SIMPLE
        shown = {
            "limit": otype in (OrderType.LIMIT, OrderType.STOP_LIMIT),
            "stop": otype in (OrderType.STOP, OrderType.STOP_LIMIT),
            "trail": otype is OrderType.TRAILING_STOP,
            "take_profit": legs,
            "stop_loss": legs,
            "stop_loss_limit": legs,
        }
        for key, visible in shown.items():
            self._form.setRowVisible(self._rows[key], visible)
        self.amount_edit.setPlaceholderText("shares" if self.amount_kind.currentText() == "qty" else "USD")
        self.submit_button.setText(
            f"{self.side_combo.currentText().upper()} {self.symbol_edit.text().strip().upper() or '…'}"
        )

    def read_form(self) -> TicketState:
        """Validate every field; returns the request or the error per field (never raises)."""
        errors: dict[str, str] = {}
        dec = partial(_positive, errors)
        symbol = ""
        try:
            symbol = normalize_symbol(self.symbol_edit.text())
        except InvalidSymbolError as exc:
            errors["symbol"] = str(exc)
        side = OrderSide(self.side_combo.currentText())
        otype = OrderType(self.type_combo.currentText())
        tif = TimeInForce(self.tif_combo.currentText())
        oclass = OrderClass(self.class_combo.currentText())
        notional_mode = self.amount_kind.currentText() == "notional"
        amount = dec("amount", self.amount_edit, "notional" if notional_mode else "quantity", required=True)
        needs_limit = otype in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = otype in (OrderType.STOP, OrderType.STOP_LIMIT)
        limit = dec("limit", self.limit_edit, "limit price", required=needs_limit)
        stop = dec("stop", self.stop_edit, "stop price", required=needs_stop)
        trail = dec("trail", self.trail_edit, "trail", required=otype is OrderType.TRAILING_STOP)
        if otype not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            limit = None
        if otype not in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop = None
        trail_price = trail_pct = None
        if otype is OrderType.TRAILING_STOP and trail is not None:
            if self.trail_kind.currentText() == "percent":
                if trail >= 100:
                    errors["trail"] = "trail percent must be below 100"
                trail_pct = trail
            else:
                trail_price = trail
        if notional_mode and otype is not OrderType.MARKET:
            errors["amount"] = "a notional amount needs a market order"
        if symbol and is_crypto(symbol) and tif not in (TimeInForce.GTC, TimeInForce.IOC):
            errors["tif"] = "crypto orders take gtc or ioc"
        take_profit = stop_loss = None
        if oclass is not OrderClass.SIMPLE:
            take_profit, stop_loss = self._read_legs(errors, oclass, otype, side, notional_mode)
        if errors or amount is None:
            return TicketState(None, errors)
        try:
            request = OrderRequest(
                symbol=symbol,
                side=side,
                type=otype,
                time_in_force=tif,
                qty=None if notional_mode else amount,
                notional=amount if notional_mode else None,
                limit_price=limit,
                stop_price=stop,
                trail_price=trail_price,
                trail_percent=trail_pct,
                extended_hours=self.ext_check.isChecked(),
                order_class=oclass,
                take_profit=take_profit,
                stop_loss=stop_loss,
            )
        except ValueError as exc:
            return TicketState(None, {"amount": str(exc)})
        return TicketState(request, {})

    def _read_legs(
        self, errors: dict[str, str], oclass: OrderClass, otype: OrderType, side: OrderSide, notional: bool
    ) -> tuple[OrderLegSpec | None, OrderLegSpec | None]:
        """The take-profit and stop-loss legs of a bracket, OCO or OTO order; problems go to ``errors``."""
        dec = partial(_positive, errors)
        tp = dec("take_profit", self.tp_edit, "take-profit limit", required=oclass is not OrderClass.OTO)
        sl = dec("stop_loss", self.sl_stop_edit, "stop-loss stop", required=oclass is not OrderClass.OTO)
        sl_limit = dec("stop_loss_limit", self.sl_limit_edit, "stop-loss limit", required=False)
        if oclass is OrderClass.OTO and tp is None and sl is None and "take_profit" not in errors:
            errors["take_profit"] = "an OTO order needs a take-profit or a stop-loss leg"
        if oclass is OrderClass.OCO and otype is not OrderType.LIMIT:
            errors["type"] = "an OCO order is a limit order (its take-profit leg)"
        if oclass is OrderClass.BRACKET and otype not in (OrderType.MARKET, OrderType.LIMIT):
            errors["type"] = "a bracket's entry is a market or limit order"
        if notional:
            errors["amount"] = f"{oclass.value} orders need a quantity"
        take_profit = OrderLegSpec(limit_price=tp) if tp is not None else None
        stop_loss = OrderLegSpec(stop_price=sl, limit_price=sl_limit) if sl is not None else None
        if tp is not None and sl is not None and "take_profit" not in errors:
            if side is OrderSide.BUY and tp <= sl:
                errors["take_profit"] = "a buy's take-profit must be above its stop-loss"
            if side is OrderSide.SELL and tp >= sl:
                errors["take_profit"] = "a sell's take-profit must be below its stop-loss"
        return take_profit, stop_loss

    # -- pre-check ----------------------------------------------------------------------------------
    def _asset(self, symbol: str) -> Asset | None:
        if symbol in self._assets:
            return self._assets[symbol]
        if symbol not in self._asset_loading:
            self._asset_loading.add(symbol)
            get_asset = getattr(self.engine.broker, "get_asset", None)
            if get_asset is not None:
                try:

                    def loaded(a: Any, e: BaseException | None, s: str = symbol) -> None:
                        self._asset_loaded(s, a, e)

                    run_async(get_asset(symbol), loaded)
                except RuntimeError:  # no event loop: the check fails closed until one runs
                    self._asset_loading.discard(symbol)
        return None

    def _asset_loaded(self, symbol: str, asset: Any, error: BaseException | None) -> None:
        self._asset_loading.discard(symbol)
        self._assets[symbol] = asset if error is None else None
        if error is not None:
            self.result_label.setText(f"instrument data for {symbol} unavailable: {error}")
        self._debounce.start()

    def run_precheck(self) -> RiskReport | None:
        """Read the form and run every risk check; updates the list and the Submit button."""
        self._debounce.stop()
        state = self.read_form()
        self.last_state = state
        for key, label in self.errors.items():
            msg = state.errors.get(key, "")
            label.setText(msg)
            label.setVisible(bool(msg))
        scroll = self.precheck_list.verticalScrollBar().value()
        self.precheck_list.clear()
        if state.request is None:
            self.last_report = None
            self._recheck.stop()
            first = next(iter(state.errors.items()), None)
            reason = f"{first[0]}: {first[1]}" if first else "fill in the ticket"
            self._block(reason)
            item = QListWidgetItem("Risk checks run once every field is valid")
            self.precheck_list.addItem(item)
            return None
        request = state.request
        asset = self._asset(request.symbol)
        report = self.engine.risk.preview(request, self.engine.risk_context(request, asset))
        self.last_report = report
        self._recheck.start()
        for c in report.checks:
            nums = ", ".join(f"{k}={v}" for k, v in c.numbers.items())
            mark = "PASS" if c.passed else "FAIL"
            item = QListWidgetItem(f"{mark}  {c.name}: {c.detail}" + (f"  ({nums})" if nums else ""))
            item.setForeground(UP if c.passed else DOWN)
            item.setData(Qt.ItemDataRole.UserRole, c.name)
            self.precheck_list.addItem(item)
        self.precheck_list.verticalScrollBar().setValue(scroll)
        if report.passed:
            self._block(None)
        else:
            self._block("risk: " + report.explain())
        return report

    def _recheck_now(self) -> None:
        if not self._debounce.isActive() and not self._busy():
            self.run_precheck()

    def _block(self, reason: str | None) -> None:
        self.submit_button.setEnabled(reason is None and not self._busy())
        self.reason_label.setText("" if reason is None else f"Submit disabled — {reason}")
        self.reason_label.setVisible(reason is not None)

    def _busy(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def blocked_reason(self) -> str:
        return self.reason_label.text()

    # -- actions ------------------------------------------------------------------------------------
    def needs_confirmation(self) -> bool:
        return self.mode is Mode.LIVE or self.confirm_orders

    def describe(self, request: OrderRequest) -> str:
        return describe_request(request)

    def submit(self, side: OrderSide | None = None) -> bool:
        """Validate, pre-check, confirm, then send through the engine. Returns whether it was sent."""
        if side is not None:
            self.side_combo.setCurrentText(side.value)
        if self._busy():
            self._show_result("the previous order is still being sent", error=True)
            return False
        report = self.run_precheck()
        state = self.last_state
        if state is None or state.request is None:
            self._show_result(self.blocked_reason or "the ticket is not valid", error=True)
            return False
        if report is None or not report.passed:
            self._show_result(self.blocked_reason, error=True)
            return False
        request = state.request
        if self.needs_confirmation():
            badge = self.mode.badge
            text = f"Send this {badge} order?\n\n{self.describe(request)}"
            if not self.ask(f"Confirm {badge} order", text):
                self._show_result("not sent (confirmation declined)")
                return False
        self._show_result(f"sending {self.describe(request)} …")
        self.task = run_async(self.engine.submit(request, source="manual"), self._submitted)
        self.submit_button.setEnabled(False)
        return True

    def _submitted(self, result: Any, error: BaseException | None) -> None:
        if error is not None or result is None:
            self._show_result(f"submit failed: {error}", error=True)
        else:
            state = getattr(result.state, "value", str(result.state))
            cid = result.client_order_id
            if not result.accepted:
                self._show_result(f"REJECTED ({state}): {result.message}", error=True)
            else:
                if cid:
                    self.last_client_order_id = cid
                    self.submitted.emit(cid)
                if state == "submitted":
                    self._show_result(f"IN FLIGHT {cid}: {result.message}")
                else:
                    self._show_result(f"ACCEPTED {cid} ({state})")
        self._debounce.start()

    def _show_result(self, text: str, *, error: bool = False) -> None:
        self.result_label.setText(text)
        self.result_label.setStyleSheet(f"color: {theme.DOWN}" if error else "")
        self.resultChanged.emit(text)

    def cancel_last(self) -> bool:
        cid = self.last_client_order_id
        if cid is None:
            self._show_result("no manual order to cancel yet")
            return False
        run_async(
            self.engine.cancel(cid, source="manual"),
            lambda ok, e: self._show_result(
                f"cancel {cid}: " + ("requested" if ok else f"not possible ({e or 'order is not open'})"),
                error=not ok,
            ),
        )
        return True

    def cancel_all(self) -> bool:
        if not self.ask("Cancel all orders", "Cancel EVERY open order?"):
            return False
        run_async(
            self.engine.cancel_all(source="manual"),
            lambda n, e: self._show_result(
                f"cancel all: {n} requested" if e is None else f"cancel all failed: {e}"
            ),
        )
        return True

    def flatten_all(self) -> bool:
        if not self.ask("Flatten all positions", "Close EVERY position with market orders?"):
            return False
        run_async(
            self.engine.flatten_all(source="manual"),
            lambda n, e: self._show_result(f"flatten all: {n}" if e is None else f"flatten failed: {e}"),
        )
        return True

    # -- prefill (watchlist selection, blotter duplicate) --------------------------------------------
    def set_symbol(self, symbol: str) -> None:
        self.symbol_edit.setText(symbol)

    def prefill(self, order: Order) -> None:
        """Fill the ticket from an existing order (blotter → Duplicate). Nothing is sent."""
        self.symbol_edit.setText(order.symbol)
        self.side_combo.setCurrentText(order.side.value)
        if order.qty is not None:
            self.amount_kind.setCurrentText("qty")
            self.amount_edit.setText(decimal_str(order.qty) or "")
        elif order.notional is not None:
            self.amount_kind.setCurrentText("notional")
            self.amount_edit.setText(decimal_str(order.notional) or "")
        self.type_combo.setCurrentText(order.type.value)
        self.tif_combo.setCurrentText(order.time_in_force.value)
        self.limit_edit.setText(decimal_str(order.limit_price) or "")
        self.stop_edit.setText(decimal_str(order.stop_price) or "")
        if order.trail_percent is not None:
            self.trail_kind.setCurrentText("percent")
            self.trail_edit.setText(decimal_str(order.trail_percent) or "")
        elif order.trail_price is not None:
            self.trail_kind.setCurrentText("price")
            self.trail_edit.setText(decimal_str(order.trail_price) or "")
        self.ext_check.setChecked(order.extended_hours)
        self.class_combo.setCurrentText(OrderClass.SIMPLE.value)
        self._show_result(f"pre-filled from {order.client_order_id}; review and submit")

    def stage(self, symbol: str, side: str, order_type: str, price: Decimal) -> None:
        """Stage a simple limit or stop order at ``price`` (the chart's right-click). Nothing is
        sent; the amount and time in force stay as the trader left them."""
        self.symbol_edit.setText(symbol)
        self.side_combo.setCurrentText(side)
        self.type_combo.setCurrentText(order_type)
        self.class_combo.setCurrentText(OrderClass.SIMPLE.value)
        text = format(price, "f")  # as the chart shows it: 176.00, not 176
        self.limit_edit.setText(text if order_type == OrderType.LIMIT.value else "")
        self.stop_edit.setText(text if order_type == OrderType.STOP.value else "")
        self._show_result(f"{side} {order_type} at {text} staged from the chart; review and submit")

    # -- hotkeys ------------------------------------------------------------------------------------
    def install_hotkeys(self, window: QWidget) -> list[QShortcut]:
        """Window-wide shortcuts on ``window`` (the main window)."""
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("F1", lambda: self.submit(OrderSide.BUY)),
            ("Ctrl+B", lambda: self.submit(OrderSide.BUY)),
            ("F2", lambda: self.submit(OrderSide.SELL)),
            ("Ctrl+S", lambda: self.submit(OrderSide.SELL)),
            ("F3", self.cancel_last),
            ("F4", self.cancel_all),
            ("Ctrl+Shift+F", self.flatten_all),
        ]
        for keys, action in bindings:
            sc = QShortcut(QKeySequence(keys), window)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.setObjectName(f"hotkey_{keys.replace('+', '_')}")
            sc.activated.connect(action)
            self.shortcuts.append(sc)
        return self.shortcuts
