"""The runner's record of one strategy: its state, book, pending orders and counters, and how that
record is written to and read back from the strategy state file."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.domain.money import to_decimal
from services.strategies.api import Signal, Strategy, StrategyPosition, StrategyState

if TYPE_CHECKING:
    from services.strategies.api import StrategyContext


class PendingOrder:
    """What is still to fill of one order a strategy sent."""

    __slots__ = ("remaining", "symbol")

    def __init__(self, symbol: str, remaining: Decimal) -> None:
        self.symbol = symbol
        self.remaining = remaining  # signed: + for buys, - for sells


class ManagedStrategy:
    """The runner's record of one strategy."""

    __slots__ = (
        "ctx",
        "custom",
        "error",
        "last_rejection",
        "last_signal",
        "name",
        "orders",
        "pending",
        "positions",
        "rejected",
        "restored",
        "signals",
        "state",
        "strategy",
        "traceback",
    )

    def __init__(self, name: str, strategy: Strategy) -> None:
        self.name = name
        self.strategy = strategy
        self.state = StrategyState.CREATED
        self.error: str | None = None
        self.traceback: str | None = None
        self.positions: dict[str, StrategyPosition] = {}
        self.pending: dict[str, PendingOrder] = {}
        self.orders = 0
        self.rejected = 0
        self.last_rejection: str | None = None
        self.last_signal: Signal | None = None
        self.signals: dict[str, Signal] = {}
        self.custom: dict[str, Any] = {}
        self.restored = False
        self.ctx: StrategyContext | None = None

    def to_record(self) -> dict[str, Any]:
        """This strategy as one entry of the state file (JSON-able but for ``custom``'s content)."""
        return {
            "key": self.strategy.KEY,
            "params": self.strategy.params_as_text(),
            "state": self.state.value,
            "error": self.error,
            "traceback": self.traceback,
            "orders": self.orders,
            "rejected": self.rejected,
            "last_signal": self.last_signal.value if self.last_signal else None,
            "signals": {s: v.value for s, v in self.signals.items()},
            "positions": {s: p.to_json() for s, p in self.positions.items()},
            "pending": {
                c: {"symbol": p.symbol, "remaining": str(p.remaining)} for c, p in self.pending.items()
            },
            "custom": self.custom,
        }

    def load_record(self, rec: Mapping[str, Any]) -> None:
        """Counters, signals, custom state, positions and pending orders from a state-file entry
        (the lifecycle state is the runner's to decide)."""
        self.restored = True
        self.orders = int(rec.get("orders", 0))
        self.rejected = int(rec.get("rejected", 0))
        self.custom = dict(rec.get("custom") or {})
        self.signals = {s: Signal(v) for s, v in (rec.get("signals") or {}).items()}
        self.last_signal = Signal(rec["last_signal"]) if rec.get("last_signal") else None
        for symbol, data in (rec.get("positions") or {}).items():
            self.positions[symbol] = StrategyPosition.from_json(data)
        for coid, data in (rec.get("pending") or {}).items():
            self.pending[coid] = PendingOrder(data["symbol"], to_decimal(data["remaining"]))
