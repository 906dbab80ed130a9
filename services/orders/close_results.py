"""What closing a position did, per symbol (:class:`SymbolCloseResult`) and for a flatten
(:class:`CloseReport`): one line for the trader, the journal's ``close_result`` record and the state
report's ``closing`` section. Made by :mod:`services.orders.closing`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.domain.money import decimal_str


@dataclass(frozen=True, slots=True)
class SymbolCloseResult:
    """What closing one symbol did. ``complete``: the asked quantity is closed (flat for a full close)."""

    symbol: str
    complete: bool
    qty_before: Decimal  # signed broker position when the close began
    remaining_qty: Decimal  # signed broker position when it ended
    canceled: int = 0  # working orders whose cancel was requested
    attempts: int = 0  # closing orders sent (refused ones included)
    close_orders: tuple[str, ...] = ()  # client order ids of the closing orders that reached the broker
    reason: str = ""  # why it is not complete (empty when complete)
    at: datetime | None = None
    cancel_refused: tuple[str, ...] = ()  # "order id: why" for each cancel the broker refused

    @property
    def flat(self) -> bool:
        return self.complete and self.remaining_qty == 0

    @property
    def message(self) -> str:
        """One line for the trader."""
        refused = f"; cancel REFUSED: {', '.join(self.cancel_refused)}" if self.cancel_refused else ""
        if self.qty_before == 0:
            return f"no {self.symbol} position at the broker{refused}"
        left = decimal_str(self.remaining_qty) or "0"
        if self.complete:
            closed = decimal_str(abs(self.qty_before - self.remaining_qty)) or "0"
            tail = "flat" if self.remaining_qty == 0 else f"closed {closed}, {left} left"
            return f"{self.symbol} {tail}{refused}"
        return f"{self.symbol} STILL OPEN {left}: {self.reason}{refused}"

    def to_json(self) -> dict[str, Any]:
        return {
            "flat": self.flat,
            "complete": self.complete,
            "qty_before": decimal_str(self.qty_before) or "0",
            "remaining_qty": decimal_str(self.remaining_qty) or "0",
            "canceled": self.canceled,
            "attempts": self.attempts,
            "close_orders": list(self.close_orders),
            "reason": self.reason,
            "cancel_refused": list(self.cancel_refused),
            "at": self.at.isoformat().replace("+00:00", "Z") if self.at is not None else None,
        }


@dataclass(frozen=True, slots=True)
class CloseReport:
    """The outcome of a flatten: one result per symbol that had a position."""

    results: tuple[SymbolCloseResult, ...] = field(default_factory=tuple)
    error: str = ""  # set when the positions could not be read at all (nothing was closed)

    @property
    def failures(self) -> tuple[SymbolCloseResult, ...]:
        """Results the trader must hear about: still open, or a cancel the broker refused."""
        return tuple(r for r in self.results if not r.complete or r.cancel_refused)

    @property
    def all_flat(self) -> bool:
        return not self.error and all(r.complete for r in self.results)

    @property
    def still_open(self) -> tuple[SymbolCloseResult, ...]:
        return tuple(r for r in self.results if not r.complete)

    def summary(self) -> str:
        if self.error:
            return self.error
        if not self.results:
            return "no positions to close"
        return "; ".join(r.message for r in self.results)

    def __str__(self) -> str:
        return self.summary()
