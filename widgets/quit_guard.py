"""Quitting with working orders or open positions: say what stays working at the broker, and offer to
cancel the orders first.

Orders at Alpaca keep working when Heron quits (a ``gtc`` limit can fill overnight), and positions
stay open. :class:`QuitGuard` is asked by the main window's ``closeEvent`` (``MainWindow.close_guard``)
when the trader closes the window; with nothing working it lets the window close at once, else
:class:`QuitGuardDialog` lists the working orders and the open positions and offers:

- **Cancel working orders and quit**: the open-order policy at shutdown cancels every open order
  (``on_exit("cancel-all")``), before the final reconciliation;
- **Quit and leave them**: they stay working at the broker (``on_exit("leave")``);
- **Don't quit** (the default button, and Escape).

A shutdown Heron starts itself (a signal, ``--quit-after``) is not a trader's close and is not asked
about; headless runs have no window. GUI thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.domain.models import Order, Position
from services.domain.money import decimal_str
from services.orders.working import StoreLike, WorkingOrders, known_working_orders, with_broker_orders

log = logging.getLogger("heron.quit")

#: The open-order policies at shutdown (``--on-exit``), as the quit guard sets them.
CANCEL_ALL = "cancel-all"
LEAVE = "leave"


class QuitChoice(StrEnum):
    CANCEL_AND_QUIT = "cancel-and-quit"
    LEAVE_AND_QUIT = "leave-and-quit"
    STAY = "stay"


class PositionLike(Protocol):
    @property
    def qty(self) -> Decimal: ...

    @property
    def avg_price(self) -> Decimal: ...


class LocalBook(StoreLike, Protocol):
    """Heron's order store: its working orders and positions."""

    @property
    def positions(self) -> Mapping[str, PositionLike]: ...

    def find(
        self, *, client_order_id: str | None = None, broker_order_id: str | None = None
    ) -> object | None: ...


@dataclass(frozen=True, slots=True)
class AtBroker:
    """What stays at the broker when Heron quits."""

    orders: WorkingOrders
    positions: tuple[str, ...]  # "AAPL long 10 (avg 100.00)"
    note: str = ""  # where the list comes from, e.g. "broker not reachable: local view"

    @property
    def empty(self) -> bool:
        return not self.orders.orders and not self.positions

    def text(self) -> str:
        parts = [self.note, ""] if self.note else []
        if self.orders.orders:
            parts.append(f"{len(self.orders.orders)} working order(s):")
            parts += [f"  • {line}" for line in self.orders.lines()]
        if self.positions:
            if parts:
                parts.append("")
            parts.append(f"{len(self.positions)} open position(s) (they stay open either way):")
            parts += [f"  • {p}" for p in self.positions]
        return "\n".join(parts)


def describe_positions(positions: Iterable[tuple[str, PositionLike]]) -> tuple[str, ...]:
    return tuple(
        _position_line(s, p.qty, p.avg_price) for s, p in sorted(positions, key=lambda i: i[0]) if p.qty
    )


LOCAL_VIEW = "broker not reachable: local view (Heron's own book; the broker may hold more)"


class BrokerReportLike(Protocol):
    """What the quit guard reads of :class:`services.reconciliation.reconciler.Reconciler`: the
    broker's positions and open orders as its last cycle read them."""

    last_run: datetime | None
    last_skipped: str | None  # why the latest cycle was skipped (the broker did not answer)
    broker_position_details: dict[str, Position]
    broker_open_orders: list[Order]


def at_broker_view(store: LocalBook, report: BrokerReportLike | None) -> AtBroker:
    """What stays at the broker: the broker's positions and open orders as reconciliation last read
    them (an order or a position opened in another app, behind Heron's back, included), Heron's own
    working orders with them; Heron's book alone, said so, when the broker was never read or did not
    answer at the last cycle."""
    if report is None or report.last_run is None or report.last_skipped is not None:
        why = "" if report is None or report.last_skipped is None else f" ({report.last_skipped})"
        note = LOCAL_VIEW.replace("local view", f"local view{why}", 1)
        return AtBroker(known_working_orders(store), describe_positions(store.positions.items()), note)
    # an order Heron knows is told by its book, which is newer than the report (canceled since?)
    unknown = [o for o in report.broker_open_orders
               if store.find(client_order_id=o.client_order_id, broker_order_id=o.id) is None]  # fmt: skip
    orders = with_broker_orders(store, unknown)
    as_of = report.last_run.strftime("%H:%M:%S UTC")
    note = f"As the broker reported at {as_of} (the last reconciliation), with Heron's own orders."
    return AtBroker(orders, broker_positions(store, report.broker_position_details), note)


def broker_positions(store: LocalBook, broker: Mapping[str, Position]) -> tuple[str, ...]:
    """The broker's positions, each saying where Heron's book differs (drift), and Heron's own
    positions the broker did not list."""
    local = {s: p for s, p in store.positions.items() if p.qty != 0}
    out = []
    for symbol in sorted(set(broker) | set(local)):
        b, mine = broker.get(symbol), local.get(symbol)
        if b is not None and b.qty != 0:
            text = _position_line(symbol, b.qty, b.avg_entry_price)
            if mine is None:
                text += " (not in Heron's book: opened outside Heron)"
            elif mine.qty != b.qty:
                text += f" (Heron's book: {decimal_str(mine.qty)})"
            out.append(text)
        elif mine is not None:
            out.append(
                _position_line(symbol, mine.qty, mine.avg_price)
                + " (Heron's book; the broker did not list it)"
            )
    return tuple(out)


def _position_line(symbol: str, qty: Decimal, avg: Decimal) -> str:
    side = "long" if qty > 0 else "short"
    return f"{symbol} {side} {decimal_str(abs(qty))} (avg {avg:,.2f})"


class QuitGuardDialog(QDialog):
    """objectName ``quitGuardDialog``; buttons ``quitCancelOrders``, ``quitLeaveOrders``, ``quitStay``."""

    def __init__(self, at_broker: AtBroker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quitGuardDialog")
        self.setWindowTitle("Quit Heron?")
        self.choice = QuitChoice.STAY
        head = QLabel(
            "These stay at the broker after Heron quits; orders can still fill while Heron is closed."
        )
        head.setWordWrap(True)
        listing = QPlainTextEdit(at_broker.text(), self)
        listing.setObjectName("quitGuardList")
        listing.setReadOnly(True)
        listing.setMinimumSize(520, 160)
        buttons = QDialogButtonBox(self)
        self.cancel_orders = self._button(buttons, "Cancel working orders and quit", "quitCancelOrders",
                                          QuitChoice.CANCEL_AND_QUIT)  # fmt: skip
        self.cancel_orders.setEnabled(bool(at_broker.orders.orders))
        self.leave = self._button(
            buttons, "Quit and leave them", "quitLeaveOrders", QuitChoice.LEAVE_AND_QUIT
        )
        self.stay = self._button(buttons, "Don't quit", "quitStay", QuitChoice.STAY)
        self.stay.setDefault(True)
        self.stay.setFocus()
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(listing, 1)
        lay.addWidget(buttons)

    def _button(self, box: QDialogButtonBox, text: str, name: str, choice: QuitChoice) -> QPushButton:
        button = box.addButton(text, QDialogButtonBox.ButtonRole.ActionRole)
        button.setObjectName(name)
        button.setAutoDefault(False)
        button.clicked.connect(lambda: self._choose(choice))
        return button

    def _choose(self, choice: QuitChoice) -> None:
        self.choice = choice
        if choice is QuitChoice.STAY:
            self.reject()
        else:
            self.accept()


class QuitGuard:
    """``at_broker()``: what would stay; ``on_exit(policy)``: the open-order policy to run at shutdown.
    ``ask(at_broker) -> QuitChoice`` is the dialog by default (tests replace it)."""

    def __init__(
        self,
        at_broker: Callable[[], AtBroker],
        on_exit: Callable[[str], None],
        parent: QWidget | None = None,
    ) -> None:
        self.at_broker = at_broker
        self.on_exit = on_exit
        self.parent = parent
        self.ask: Callable[[AtBroker], QuitChoice] = self._dialog

    def _dialog(self, at_broker: AtBroker) -> QuitChoice:
        dialog = QuitGuardDialog(at_broker, self.parent)
        dialog.exec()
        return dialog.choice

    def allow_quit(self) -> bool:
        """True when the window may close (nothing working, or the trader chose to quit)."""
        what = self.at_broker()
        if what.empty:
            return True
        choice = self.ask(what)
        if choice is QuitChoice.STAY:
            log.info("quit declined: %d working order(s), %d open position(s) at the broker",
                     len(what.orders.orders), len(what.positions))  # fmt: skip
            return False
        if choice is QuitChoice.CANCEL_AND_QUIT:
            self.on_exit(CANCEL_ALL)
            log.warning("quit: the %d working order(s) are canceled before Heron stops",
                        len(what.orders.orders))  # fmt: skip
        else:
            self.on_exit(LEAVE)
            log.warning("quit: %d working order(s) and %d open position(s) stay at the broker",
                        len(what.orders.orders), len(what.positions))  # fmt: skip
        return True
