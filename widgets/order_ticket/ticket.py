"""Order ticket (``orderTicket``): manual order entry with a live, explained risk pre-check.

- Every field is validated as the user types (:mod:`widgets.order_ticket.form`); an error shows on
  the field that is wrong, a field the user has not touched yet shows none, and nothing typed is
  lost. A failed risk check about one field (a fat-finger limit, a leg on the wrong side, a quantity
  over a limit) shows on that field too.
- ~100 ms after the last change the current request goes through the RiskGate (the same checks
  the engine runs on submit) and EVERY check is listed pass/fail with its numbers, under a one-line
  summary (estimated cost, buying power after). The check runs again when the trading state, the
  positions, the orders or the account change (bus events) and every second while the ticket holds
  a valid order. Submit is disabled, with the reason shown, while a field is invalid or a check fails.
- The symbol's live bid and ask are shown; clicking one stages a sell at the bid or a buy at the
  ask. Changing the symbol re-seeds the prices from its own quote: another symbol's prices never
  stay in the fields.
- Submit goes through :meth:`ExecutionEngine.submit` with source ``"manual"`` after a confirmation
  (always in live mode; in paper and local mode when ``confirm_orders`` is on).
- Buy, sell, cancel last, cancel all (confirmed) and flatten all (confirmed) are also the main
  window's Trade commands, with configurable shortcuts (:mod:`widgets.shortcuts`).

Signals:
    submitted(str): client order id of an order the engine accepted or has in flight.
    resultChanged(str): the outcome text shown under the Submit button.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLineEdit, QListWidgetItem, QWidget

from services.domain.bus import EventBus, Subscription
from services.domain.enums import Mode, OrderClass, OrderSide, OrderType
from services.domain.events import (
    AccountEvent,
    FillEvent,
    OrderChangedEvent,
    PositionsEvent,
    TradingStateEvent,
)
from services.domain.models import Asset, Order, OrderRequest
from services.domain.money import decimal_str
from services.marketdata.pipeline import MarketDataBatchEvent
from services.risk.context import RiskReport
from widgets import theme
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.models.common import DOWN, UP, confirm, describe_request, fmt_price
from widgets.order_ticket.actions import TicketActions
from widgets.order_ticket.form import Market, TicketState, default_tif, read
from widgets.order_ticket.layout import TicketLayout
from widgets.order_ticket.summary import explain, field_note, field_of, number_text, summary_line
from widgets.pacer import DisplayPacer
from widgets.protocols import BookLike, EngineLike
from widgets.tasks import run_async

DEBOUNCE_MS = 100
RECHECK_MS = 1000
ZERO = Decimal(0)
PRICE_FIELDS = ("limit", "stop", "trail", "take_profit", "stop_loss", "stop_loss_limit")
#: bus events after which the pre-check is run again (its numbers depend on them)
RECHECK_EVENTS = (TradingStateEvent, PositionsEvent, AccountEvent, OrderChangedEvent, FillEvent)
CENT = Decimal("0.01")


def price_text(price: Decimal) -> str:
    """A price as a trader types it: at least the cent from $1 up (``100.1`` → ``100.10``), every
    finer digit kept (sub-dollar and crypto prices)."""
    exp = price.normalize().as_tuple().exponent
    if abs(price) >= 1 and isinstance(exp, int) and exp > -2:
        return f"{price.quantize(CENT)}"
    return decimal_str(price) or "0"


class OrderTicket(TicketActions, TicketLayout):
    """See the module docstring. GUI thread only."""

    submitted = Signal(str)
    resultChanged = Signal(str)

    def __init__(
        self,
        engine: EngineLike,
        *,
        book: BookLike | None = None,
        bus: EventBus | None = None,
        mode: Mode = Mode.LOCAL,
        confirm_orders: bool = True,
        pacer: DisplayPacer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("orderTicket")
        self.engine = engine
        #: the quote book (the engine's price source when none is given)
        self.book: BookLike | None = book if book is not None else getattr(engine, "prices", None)
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
        self._blocked = ""
        self._touched: set[str] = set()  # fields the user edited: only they show errors
        self._show_all_errors = False  # after a submit attempt every error shows
        self._seeded_for = ""  # the symbol whose quote the prices were seeded from
        self._seeded_limit = ""  # the limit seeded (re-seeded with the side while untouched)
        self._seeded_side = OrderSide.BUY
        #: the symbol and side the result line is about: it goes when either changes
        self._result_for: tuple[str, OrderSide] | None = None
        self._quote_shown = Market()  # the quote on the Bid and Ask buttons
        self._build()
        self.fieldEdited.connect(self._touched.add)
        self.bid_button.clicked.connect(lambda: self._stage_touch(OrderSide.SELL))
        self.ask_button.clicked.connect(lambda: self._stage_touch(OrderSide.BUY))
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_precheck)
        # risk checks change with time (duplicate window, market hours): re-run them while the
        # ticket holds a valid order, so neither a block nor a pass goes stale
        self._recheck = QTimer(self)
        self._recheck.setInterval(RECHECK_MS)
        self._recheck.timeout.connect(self._recheck_now)
        # the quote changes on screen at the display pace (at once without a pacer)
        self._quote_soon = self._quote_moved if pacer is None else pacer.bind(self, self._quote_moved)
        self._subs: list[Subscription] = []
        if bus is not None:
            self._subs.append(bus.subscribe(MarketDataBatchEvent, self._on_batch))
            for event in RECHECK_EVENTS:
                self._subs.append(bus.subscribe(event, lambda _e: self._schedule_precheck()))
        cancel_on_destroy(self, self._subs)
        self.set_order_type(OrderType.LIMIT)  # a priced order unless the trader picks another type
        self._update_units()
        self._update_visibility()
        self.run_precheck()

    def close_subscriptions(self) -> None:
        """Stop following the bus (also done when the ticket is destroyed)."""
        cancel_subscriptions(self._subs)

    # -- changes ------------------------------------------------------------------------------------
    def _changed(self, *_: object) -> None:
        sym = self.symbol()
        if self._result_for is not None and self._result_for != (sym, self.side()):
            self._show_result("")  # a staged line or an outcome about another symbol or side
        if sym != self._seeded_for:
            self._retarget(sym)
        elif self.side() is not self._seeded_side and self.limit_edit.text() == self._seeded_limit:
            self._seed_limit()  # the side changed and the limit is still the seeded one
        self._set_choices(self._crypto())
        self._update_units()
        self._update_visibility()
        if self.order_class() is OrderClass.OCO:
            self._oco_defaults()
        self._schedule_precheck()

    def _schedule_precheck(self) -> None:
        self._debounce.start()

    def _retarget(self, symbol: str) -> None:
        """A new symbol: its asset class's choices, its quote, prices seeded from it (never the
        previous symbol's)."""
        crypto_before = self._choices_for
        self._seeded_for = symbol
        self._show_all_errors = False  # another order: untouched fields start quiet again
        for key, edit in self._price_edits().items():
            self._set_quietly(edit, "")
            self._touched.discard(key)
        self._set_choices(self._crypto())
        if crypto_before != self._choices_for:
            self._update_tifs(default=default_tif(self._crypto()))
        self._show_quote()
        self._seed_limit()

    def _price_edits(self) -> dict[str, QLineEdit]:
        return {
            "limit": self.limit_edit,
            "stop": self.stop_edit,
            "trail": self.trail_edit,
            "take_profit": self.tp_edit,
            "stop_loss": self.sl_stop_edit,
            "stop_loss_limit": self.sl_limit_edit,
        }

    @staticmethod
    def _set_quietly(edit: QLineEdit, text: str) -> None:
        edit.blockSignals(True)
        edit.setText(text)
        edit.blockSignals(False)

    def _seed_limit(self) -> None:
        """The limit at the touch the order would take: the ask for a buy, the bid for a sell."""
        market = self.market()
        side = self.side()
        price = market.ask if side is OrderSide.BUY else market.bid
        text = price_text(price) if price is not None else ""
        self._set_quietly(self.limit_edit, text)
        self._seeded_limit, self._seeded_side = text, side

    def _oco_defaults(self) -> None:
        """An OCO exits the position: the side that closes it and, when none is typed, its size."""
        if self.order_type() is not OrderType.LIMIT:
            self.type_combo.blockSignals(True)
            self.set_order_type(OrderType.LIMIT)  # Alpaca: an OCO's type is always limit
            self.type_combo.blockSignals(False)
            self._update_visibility()
        position = self._position(self.symbol())
        if position == 0:
            return
        closing = OrderSide.SELL if position > 0 else OrderSide.BUY
        if self.side() is not closing and "side" not in self._touched:
            self.side_group.blockSignals(True)
            self.set_side(closing)
            self.side_group.blockSignals(False)
            self._update_visibility()
        if not self.amount_edit.text().strip():
            self._set_quietly(self.amount_edit, f"{abs(position).normalize():f}")

    # -- the symbol's market ------------------------------------------------------------------------
    def market(self, symbol: str | None = None) -> Market:
        sym = self.symbol() if symbol is None else symbol
        if not sym or self.book is None:
            return Market()
        e = self.book.entry(sym)
        return Market(e.bid, e.ask, e.last)

    def _show_quote(self) -> None:
        m = self._quote_shown = self.market()
        self.bid_button.setText(f"Bid {fmt_price(m.bid)}")
        self.ask_button.setText(f"Ask {fmt_price(m.ask)}")
        self.bid_button.setEnabled(m.bid is not None)
        self.ask_button.setEnabled(m.ask is not None)

    def _on_batch(self, event: MarketDataBatchEvent) -> None:
        sym = self.symbol()
        if sym and (sym in event.batch.quotes or sym in event.batch.trades):
            self._quote_soon()

    def _quote_moved(self) -> None:
        self._show_quote()
        if self.symbol() and not self.limit_edit.text():
            self._seed_limit()

    def _position(self, symbol: str) -> Decimal:
        store = getattr(self.engine, "store", None)
        pos = store.positions.get(symbol) if store is not None and symbol else None
        return pos.qty if pos is not None else ZERO

    # -- staging (watchlist bid/ask, the chart) -------------------------------------------------------
    def stage(self, symbol: str, side: OrderSide, order_type: OrderType, price: Decimal | None) -> None:
        """Fill the ticket with a ``side`` ``order_type`` order for ``symbol`` at ``price`` (the
        limit of a limit order, the stop of a stop order, both of a stop-limit). Nothing is sent."""
        self.symbol_edit.setText(symbol)
        self.set_side(side)
        if self.order_class() is OrderClass.OCO:
            self.set_order_class(OrderClass.SIMPLE)
        if not self.set_order_type(order_type):
            self._show_result(f"{order_type.value} orders are not offered for {symbol}", error=True)
            return
        text = price_text(price) if price is not None else ""
        if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            self.limit_edit.setText(text)
            self._touched.add("limit")
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            self.stop_edit.setText(text)
            self._touched.add("stop")
        self._seeded_limit = ""
        self._show_result(f"staged: {side.value} {symbol} {order_type.value} at {text}; review and submit")
        if not self.amount_edit.text().strip():
            self.amount_edit.setFocus()
        self.run_precheck()

    def _stage_touch(self, side: OrderSide) -> None:
        """A click on the Bid or Ask button: the price it shows (at most one display pass old; the
        risk check of the order uses the book's newest quote)."""
        m = self._quote_shown
        price = m.ask if side is OrderSide.BUY else m.bid
        if price is not None and self.symbol():
            self.stage(self.symbol(), side, OrderType.LIMIT, price)

    def set_symbol(self, symbol: str) -> None:
        self.symbol_edit.setText(symbol)

    def prefill(self, order: Order) -> None:
        """Fill the ticket from an existing order (blotter → Duplicate). Nothing is sent."""
        self.symbol_edit.setText(order.symbol)
        self.set_side(order.side)
        self.set_order_class(OrderClass.SIMPLE)
        if order.qty is not None:
            self.set_amount_kind(self.amount_kind.itemData(0))
            self.amount_edit.setText(decimal_str(order.qty) or "")
        elif order.notional is not None:
            self.set_amount_kind(self.amount_kind.itemData(1))
            self.amount_edit.setText(decimal_str(order.notional) or "")
        self.set_order_type(order.type)
        self.set_time_in_force(order.time_in_force)
        self.limit_edit.setText(decimal_str(order.limit_price) or "")
        self.stop_edit.setText(decimal_str(order.stop_price) or "")
        if order.trail_percent is not None:
            self.set_trail_kind(self.trail_kind.itemData(1))
            self.trail_edit.setText(decimal_str(order.trail_percent) or "")
        elif order.trail_price is not None:
            self.set_trail_kind(self.trail_kind.itemData(0))
            self.trail_edit.setText(decimal_str(order.trail_price) or "")
        self.ext_check.setChecked(order.extended_hours)
        self._touched.update(("symbol", "amount", *PRICE_FIELDS))
        self._show_result(f"pre-filled from {order.client_order_id}; review and submit")

    # -- pre-check ----------------------------------------------------------------------------------
    def read_form(self) -> TicketState:
        """Validate every field; returns the request or the error per field (never raises)."""
        sym = self.symbol()
        return read(self.values(), self.market(), self._position(sym))

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
            self._show_result(f"instrument data for {symbol} unavailable: {error}", error=True)
        self._debounce.start()

    def run_precheck(self) -> RiskReport | None:
        """Read the form and run every risk check; updates the list, the summary and Submit."""
        self._debounce.stop()
        state = self.read_form()
        self.last_state = state
        scroll = self.precheck_list.verticalScrollBar().value()
        self.precheck_list.clear()
        if state.request is None:
            self.last_report = None
            self._recheck.stop()
            self._show_errors(state.errors)
            self.summary_label.setText("")
            self._block(self._first_error(state.errors))
            self.precheck_list.addItem(QListWidgetItem("Risk checks run once every field is valid"))
            return None
        request = state.request
        asset = self._asset(request.symbol)
        ctx = self.engine.risk_context(request, asset)
        report = self.engine.risk.preview(request, ctx)
        self.last_report = report
        self._recheck.start()
        self.summary_label.setText(summary_line(request, ctx))
        self.summary_label.setToolTip(self.summary_label.text())
        for c in report.checks:
            nums = ", ".join(f"{k}={number_text(k, v, request.symbol, asset)}" for k, v in c.numbers.items())
            mark = "PASS" if c.passed else "FAIL"
            item = QListWidgetItem(f"{mark}  {c.name}: {c.detail}" + (f"  ({nums})" if nums else ""))
            item.setForeground(UP if c.passed else DOWN)
            item.setData(Qt.ItemDataRole.UserRole, c.name)
            self.precheck_list.addItem(item)
        self.precheck_list.verticalScrollBar().setValue(scroll)
        field_errors: dict[str, str] = {}
        for c in report.failures:
            key = field_of(c)
            if key is not None and key not in field_errors:
                field_errors[key] = field_note(c, request.symbol, asset)
        self._show_errors(field_errors, every=True)
        self._block(None if report.passed else "risk: " + explain(report.failures, request.symbol, asset))
        return report

    def _shown(self, key: str) -> bool:
        """An error shows once its field holds text or was edited (an empty field nobody touched yet
        is not an error to shout about), or after a submit attempt; choices' errors always show."""
        if self._show_all_errors or key in self._touched or key not in self._price_and_text_keys:
            return True
        edit = {"symbol": self.symbol_edit, "amount": self.amount_edit, **self._price_edits()}[key]
        return bool(edit.text().strip())

    _price_and_text_keys = frozenset(("symbol", "amount", *PRICE_FIELDS))

    def _show_errors(self, errors: dict[str, str], *, every: bool = False) -> None:
        for key, label in self.errors.items():
            msg = errors.get(key, "")
            if msg and not every and not self._shown(key):
                msg = ""
            label.setText(msg)
            label.setToolTip(msg)
            label.setVisible(bool(msg))

    def _first_error(self, errors: dict[str, str]) -> str:
        shown = [(k, m) for k, m in errors.items() if self._shown(k)]
        if shown:
            return f"{shown[0][0]}: {shown[0][1]}"
        missing = [k for k in errors if k in self._price_and_text_keys]
        return (
            "enter the " + " and ".join(k.replace("_", " ") for k in missing)
            if missing
            else "fill in the ticket"
        )

    def _recheck_now(self) -> None:
        if not self._debounce.isActive() and not self._busy():
            self.run_precheck()

    def _block(self, reason: str | None) -> None:
        self.submit_button.setEnabled(reason is None and not self._busy())
        self._blocked = "" if reason is None else f"Submit disabled — {reason}"
        self.reason_label.setText(self._blocked)
        self.reason_label.setToolTip(self._blocked)
        hint = reason is not None and (reason.startswith("enter the") or reason == "fill in the ticket")
        self.reason_label.setStyleSheet(f"color: {theme.MUTED if hint else theme.WARN}")

    def _busy(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def blocked_reason(self) -> str:
        return self._blocked

    # -- actions ------------------------------------------------------------------------------------
    def needs_confirmation(self) -> bool:
        return self.mode is Mode.LIVE or self.confirm_orders

    def describe(self, request: OrderRequest) -> str:
        return describe_request(request)

    def submit(self, side: OrderSide | None = None) -> bool:
        """Validate, pre-check, confirm, then send through the engine. Returns whether it was sent."""
        if side is not None:
            self.set_side(side)
        if self._busy():
            self._show_result("the previous order is still being sent", error=True)
            return False
        self._show_all_errors = True
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
        self._show_all_errors = False  # the next order starts quiet again
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
        self._result_for = (self.symbol(), self.side()) if text else None
        self.result_label.setText(text)
        self.result_label.setStyleSheet(f"color: {theme.DOWN}" if error else "")
        self.resultChanged.emit(text)
