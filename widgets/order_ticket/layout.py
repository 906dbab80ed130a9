"""The order ticket's fields and their layout (:class:`TicketLayout`): editors, choices offered per
asset class and order type, which rows show, and the fixed space messages take.

Layout rule: the Submit button sits under the pre-check list, which takes whatever height is left,
and the lines under Submit (blocked reason, outcome) have fixed heights, so neither a field's error
appearing nor a message coming or going moves the button.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.enums import OrderClass, OrderSide, OrderType, TimeInForce
from services.domain.symbols import InvalidSymbolError, is_crypto, normalize_symbol
from widgets import theme
from widgets.message_label import MessageLabel
from widgets.order_ticket.form import (
    CLASS_LABELS,
    TIF_LABELS,
    TYPE_LABELS,
    AmountKind,
    FormValues,
    TrailKind,
    order_classes,
    order_types,
    quantity_unit,
    tif_choices,
)

E = TypeVar("E", bound=StrEnum)
MESSAGE_LINES = 2
#: The most characters the symbol box takes. Heron spells a stock symbol in at most 10 characters and a
#: crypto pair as BASE/QUOTE in at most 10 + 1 + 5 (services/domain/symbols.py; Alpaca's pairs are
#: ``BTC/USD``-style, docs/alpaca-rules.md "Symbols"), with room left for stray spaces around it.
MAX_SYMBOL_CHARS = 20
#: The characters a choice box shows at its narrowest (its list still opens wide enough for all).
COMBO_CHARS = 8
#: The least width of each of a pair of buttons (Bid/Ask, Buy/Sell); they share what is left evenly.
PAIR_BUTTON_WIDTH = 60


def side_style(side: OrderSide) -> str:
    """Buy in the theme's up colour, sell in its down colour: filled when chosen, outlined when not."""
    colour = theme.UP if side is OrderSide.BUY else theme.DOWN
    return (
        f"QPushButton {{ color: {colour}; border: 1px solid {colour}; padding: 3px; font-weight: bold }}"
        f"QPushButton:checked {{ background: {colour}; color: {theme.ON_ACCENT} }}"
    )


def submit_style(side: OrderSide) -> str:
    colour = theme.UP if side is OrderSide.BUY else theme.DOWN
    return (
        f"QPushButton {{ background: {colour}; color: {theme.ON_ACCENT}; font-weight: bold; padding: 4px }}"
        f"QPushButton:disabled {{ background: {theme.BADGE_BG}; color: {theme.MUTED} }}"
    )


class QuoteButton(QPushButton):
    """A flat button showing a live price ("Bid 187.10"). Its size is fixed, fitting a typical price
    and grown for a longer one: a new price then repaints the button alone, where a button of free
    size asks the whole window for a new layout pass on every market-data batch."""

    SAMPLE = "Ask 9,999.99"  # a crypto price grows it once (the ticket then scrolls in a narrow dock)

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(self.SAMPLE, parent)
        self.setFlat(True)
        # opaque in the window's colour: a new price repaints the button, not the ticket beneath it
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self.setAutoFillBackground(True)
        self.setFixedSize(self.sizeHint())
        #: texts known to fit (a price ticks back and forth: its size is asked of the style once)
        self._fits: set[str] = set()
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        if text in self._fits:
            return
        hint = self.sizeHint()
        if hint.width() > self.width() or hint.height() > self.height():
            self.setFixedSize(hint.expandedTo(self.size()))
        if len(self._fits) >= 4096:
            self._fits.clear()
        self._fits.add(text)

    def changeEvent(self, event: QEvent) -> None:
        fits: set[str] | None = getattr(self, "_fits", None)  # None while the button is being built
        if fits is not None and event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            fits.clear()  # the same text may be wider now
        super().changeEvent(event)


class TicketLayout(QWidget):
    """The ticket's widgets; :class:`widgets.order_ticket.ticket.OrderTicket` adds the behaviour."""

    #: the user edited field ``key`` (typing, not a program filling it in)
    fieldEdited = Signal(str)

    def _build(self) -> None:
        self._build_fields()
        form = self._build_form()
        self.precheck_list = QListWidget(self)
        self.precheck_list.setObjectName("ticketPrecheck")
        self.precheck_list.setMinimumHeight(60)
        self.precheck_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        # Each check wraps to the dock's width: a reason cut at the edge is a reason not read.
        self.precheck_list.setWordWrap(True)
        self.precheck_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.precheck_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        checks = QGroupBox("Risk pre-check", self)
        cl = QVBoxLayout(checks)
        cl.setContentsMargins(4, 4, 4, 4)
        self.summary_label = self._message("ticketSummary")
        cl.addWidget(self.summary_label)
        cl.addWidget(self.precheck_list, 1)

        self.submit_button = QPushButton("Submit", self)
        self.submit_button.setObjectName("ticketSubmit")
        self.submit_button.setMinimumWidth(2 * PAIR_BUTTON_WIDTH)
        self.submit_button.clicked.connect(lambda: self.submit())
        self.reason_label = self._message("ticketBlockedReason")
        self.result_label = self._message("ticketResult")
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(checks, 1)
        layout.addWidget(self.submit_button)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.result_label)

    def submit(self, side: OrderSide | None = None) -> bool:  # pragma: no cover - OrderTicket's
        raise NotImplementedError

    def _message(self, name: str, lines: int = MESSAGE_LINES) -> QLabel:
        """A message line with room for ``lines`` lines whether it holds text or not."""
        label = MessageLabel("", self)
        label.setObjectName(name)
        label.setWordWrap(True)  # a long line wraps: it never widens the dock
        label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        label.setFixedHeight(label.fontMetrics().lineSpacing() * lines + 2)
        return label

    def _line(self, name: str, key: str, placeholder: str = "") -> QLineEdit:
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.textChanged.connect(self._changed)
        edit.textEdited.connect(lambda _t, k=key: self.fieldEdited.emit(k))
        return edit

    def _combo(self, name: str) -> QComboBox:
        box = QComboBox(self)
        box.setObjectName(name)
        box.currentIndexChanged.connect(self._changed)
        return box

    def _wide_combo(self, name: str) -> QComboBox:
        """A choice box on a row of its own: as wide as the form gives it, never as wide as its
        longest choice ("OCO exit (take profit / stop loss)"; the list opens wide enough)."""
        box = self._combo(name)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(COMBO_CHARS)
        return box

    def _build_fields(self) -> None:
        """One editor per order field, each re-checking the form when it changes."""
        self.symbol_edit = self._line("ticketSymbol", "symbol", "AAPL, BTC/USD")
        self.symbol_edit.setMaxLength(MAX_SYMBOL_CHARS)
        self.bid_button = QuoteButton("Bid —", self)
        self.bid_button.setObjectName("ticketBid")
        self.ask_button = QuoteButton("Ask —", self)
        self.ask_button.setObjectName("ticketAsk")
        for quote, tip in ((self.bid_button, "sell"), (self.ask_button, "buy")):
            quote.setToolTip(f"{tip} limit at this price")
        self.buy_button = QPushButton("Buy", self)
        self.buy_button.setObjectName("ticketBuy")
        self.sell_button = QPushButton("Sell", self)
        self.sell_button.setObjectName("ticketSell")
        self.side_group = QButtonGroup(self)
        for b, side in ((self.buy_button, OrderSide.BUY), (self.sell_button, OrderSide.SELL)):
            b.setCheckable(True)
            b.setStyleSheet(side_style(side))
            self.side_group.addButton(b)
        self.buy_button.setChecked(True)
        self.side_group.buttonToggled.connect(self._side_toggled)
        # widths from the ticket, not from the text shown (a price, a symbol): the ticket's minimum
        # width stays put as quotes tick and symbols change (Bid and Ask have a fixed size of their
        # own: see QuoteButton)
        for b in (self.buy_button, self.sell_button):
            b.setMinimumWidth(PAIR_BUTTON_WIDTH)
        self.amount_kind = self._combo("ticketAmountKind")
        self.amount_edit = self._line("ticketAmount", "amount", "quantity")
        self.type_combo = self._wide_combo("ticketType")
        self.limit_edit = self._line("ticketLimit", "limit", "limit price")
        self.stop_edit = self._line("ticketStop", "stop", "stop price")
        self.trail_kind = self._combo("ticketTrailKind")
        self._fill(self.trail_kind, [(TrailKind.PRICE, "price"), (TrailKind.PERCENT, "percent")])
        self.trail_edit = self._line("ticketTrail", "trail", "trail")
        self.tif_combo = self._wide_combo("ticketTif")
        self.ext_check = QCheckBox("Extended hours", self)
        self.ext_check.setObjectName("ticketExtended")
        self.ext_check.toggled.connect(self._changed)
        self.class_combo = self._wide_combo("ticketClass")
        self.tp_edit = self._line("ticketTakeProfit", "take_profit", "take-profit limit")
        self.sl_stop_edit = self._line("ticketStopLossStop", "stop_loss", "stop-loss stop")
        self.sl_limit_edit = self._line(
            "ticketStopLossLimit", "stop_loss_limit", "stop-loss limit (optional)"
        )
        self._choices_for: bool | None = None
        self._set_choices(crypto=False)

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
            # a message label: it wraps even an unbroken run, so no error ever widens the ticket
            err = MessageLabel("", box)
            err.setObjectName(f"ticketError_{key}")
            err.setStyleSheet(f"color: {theme.DOWN}; font-size: 11px")
            err.setVisible(False)
            lay.addWidget(err)
            self.errors[key] = err
            self._rows[key] = box
            form.addRow(label, box)

        row("symbol", "Symbol", self.symbol_edit)
        row("quote", "Quote", self._pair(self.bid_button, self.ask_button))
        row("side", "Side", self._pair(self.buy_button, self.sell_button))
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

    def _pair(self, first: QWidget, *rest: QWidget) -> QWidget:
        """Widgets side by side in one form row, the first taking the spare width."""
        box = QWidget(self)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (first, *rest):
            grow = isinstance(w, QLineEdit | QPushButton)
            lay.addWidget(w, 1 if grow else 0)
        return box

    # -- choices ------------------------------------------------------------------------------------
    @staticmethod
    def _fill(box: QComboBox, items: list[tuple[StrEnum, str]]) -> None:
        """Replace ``box``'s items, keeping the chosen value when it is still offered."""
        current = box.currentData()
        box.blockSignals(True)
        box.clear()
        for value, label in items:
            box.addItem(label, value)
        index = box.findData(current)
        box.setCurrentIndex(index if index >= 0 else 0)
        box.blockSignals(False)

    @staticmethod
    def _chosen(box: QComboBox, kind: type[E]) -> E:
        return kind(box.currentData())

    @staticmethod
    def _choose(box: QComboBox, value: StrEnum) -> bool:
        index = box.findData(value)
        if index >= 0:
            box.setCurrentIndex(index)
        return index >= 0

    def _set_choices(self, crypto: bool) -> None:
        """Types, classes and units as the asset class takes them (then the times in force)."""
        if crypto != self._choices_for:
            self._choices_for = crypto
            self._fill(self.type_combo, [(t, TYPE_LABELS[t]) for t in order_types(crypto)])
            self._fill(self.class_combo, [(c, CLASS_LABELS[c]) for c in order_classes(crypto)])
        self._update_tifs()

    def _update_tifs(self, default: TimeInForce | None = None) -> None:
        offered = tif_choices(
            self._crypto(), self.order_type(), self.order_class(), self.ext_check.isChecked()
        )
        self._fill(self.tif_combo, [(t, TIF_LABELS[t]) for t in offered])
        if default is not None and default in offered:
            self._choose(self.tif_combo, default)

    def _crypto(self) -> bool:
        sym = self.symbol()
        return bool(sym) and is_crypto(sym)

    def _update_units(self) -> None:
        sym = self.symbol()
        unit = quantity_unit(sym) if sym else "shares"
        self._fill(self.amount_kind, [(AmountKind.QTY, unit), (AmountKind.NOTIONAL, "USD")])
        notional = self._chosen(self.amount_kind, AmountKind) is AmountKind.NOTIONAL
        self.amount_edit.setPlaceholderText("USD" if notional else f"quantity ({unit})")

    def _update_visibility(self) -> None:
        otype, oclass = self.order_type(), self.order_class()
        legs = oclass is not OrderClass.SIMPLE
        oco = oclass is OrderClass.OCO
        shown = {
            "limit": otype in (OrderType.LIMIT, OrderType.STOP_LIMIT) and not oco,
            "stop": otype in (OrderType.STOP, OrderType.STOP_LIMIT),
            "trail": otype is OrderType.TRAILING_STOP,
            "take_profit": legs,
            "stop_loss": legs,
            "stop_loss_limit": legs,
        }
        for key, visible in shown.items():
            self._form.setRowVisible(self._rows[key], visible)
        # an OCO is a limit order whose limit is its take-profit's: one price per leg
        self.type_combo.setEnabled(not oco)
        side = self.side()
        self.submit_button.setText(f"{side.value.upper()} {self.symbol() or '…'}")
        self.submit_button.setStyleSheet(submit_style(side))

    # -- reading the fields -------------------------------------------------------------------------
    def symbol(self) -> str:
        """The typed symbol in Heron's spelling, "" while it is not a valid one."""
        try:
            return normalize_symbol(self.symbol_edit.text())
        except InvalidSymbolError:
            return ""

    def side(self) -> OrderSide:
        return OrderSide.SELL if self.sell_button.isChecked() else OrderSide.BUY

    def set_side(self, side: OrderSide) -> None:
        (self.sell_button if side is OrderSide.SELL else self.buy_button).setChecked(True)

    def order_type(self) -> OrderType:
        return self._chosen(self.type_combo, OrderType)

    def set_order_type(self, otype: OrderType) -> bool:
        return self._choose(self.type_combo, otype)

    def order_class(self) -> OrderClass:
        return self._chosen(self.class_combo, OrderClass)

    def set_order_class(self, oclass: OrderClass) -> bool:
        return self._choose(self.class_combo, oclass)

    def time_in_force(self) -> TimeInForce:
        return self._chosen(self.tif_combo, TimeInForce)

    def set_time_in_force(self, tif: TimeInForce) -> bool:
        return self._choose(self.tif_combo, tif)

    def set_amount_kind(self, kind: AmountKind) -> None:
        self._choose(self.amount_kind, kind)

    def set_trail_kind(self, kind: TrailKind) -> None:
        self._choose(self.trail_kind, kind)

    def values(self) -> FormValues:
        return FormValues(
            symbol=self.symbol_edit.text(),
            side=self.side(),
            amount_kind=self._chosen(self.amount_kind, AmountKind),
            amount=self.amount_edit.text(),
            type=OrderType.LIMIT if self.order_class() is OrderClass.OCO else self.order_type(),
            tif=self.time_in_force(),
            order_class=self.order_class(),
            limit=self.limit_edit.text(),
            stop=self.stop_edit.text(),
            trail_kind=self._chosen(self.trail_kind, TrailKind),
            trail=self.trail_edit.text(),
            extended=self.ext_check.isChecked(),
            take_profit=self.tp_edit.text(),
            stop_loss=self.sl_stop_edit.text(),
            stop_loss_limit=self.sl_limit_edit.text(),
        )

    def _side_toggled(self, _button: QPushButton, on: bool) -> None:
        if on:
            self._changed()

    def _changed(self, *_: object) -> None:  # pragma: no cover - OrderTicket's
        raise NotImplementedError
