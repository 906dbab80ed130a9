"""What the risk gate reads and what it answers: the context a caller prepares, and the report.

:class:`RiskContext` carries everything a rule needs (no I/O inside the gate); the protocols name
what it needs from market data, the market calendar and the post-reconnect order gate. A
:class:`RiskReport` holds one :class:`CheckResult` per check, numbers as decimal strings (:func:`fmt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol

from services.domain.enums import TradingState
from services.domain.models import Account, Asset, Quote

ZERO = Decimal(0)
_EMPTY: Mapping[str, Decimal] = MappingProxyType({})


class PriceSource(Protocol):
    """What the gate needs from market data (``services.marketdata.book.QuoteBook`` provides it)."""

    def quote(self, symbol: str) -> Quote | None: ...

    def last_price(self, symbol: str) -> Decimal | None: ...

    def is_stale(self, symbol: str) -> bool: ...

    def prev_close(self, symbol: str) -> Decimal | None: ...


class MarketHours(Protocol):
    """``services.domain.calendar.MarketCalendar`` provides these."""

    def is_open(self, ts: datetime) -> bool: ...

    def is_extended(self, ts: datetime) -> bool: ...


class OrderGateLike(Protocol):
    """``services.broker.order_gate.OrderGate``: closed while the stream resyncs after a reconnect."""

    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    numbers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskReport:
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def explain(self) -> str:
        """One line per failed check: the rule and the numbers."""
        lines = []
        for c in self.failures:
            nums = ", ".join(f"{k}={v}" for k, v in c.numbers.items())
            lines.append(f"{c.name}: {c.detail}" + (f" ({nums})" if nums else ""))
        return "; ".join(lines) if lines else "all checks passed"


@dataclass(slots=True)
class RiskContext:
    """Everything a check needs, prepared by the caller (no I/O inside the gate)."""

    now: datetime
    trading_state: TradingState
    account: Account | None
    asset: Asset | None
    prices: PriceSource
    positions: Mapping[str, Decimal]  # signed qty per symbol
    # worst case over symbols (before this order): sum max(|pos + buys|, |pos - sells|) * mark
    gross_exposure: Decimal
    net_exposure: Decimal  # sum qty * mark over positions
    open_orders: int
    hours: MarketHours | None
    peak_equity: Decimal | None = None
    order_gate: OrderGateLike | None = None
    reduce_only: bool = False
    pending_buys: Mapping[str, Decimal] = field(
        default_factory=lambda: _EMPTY
    )  # leaves qty of working buys per symbol
    pending_sells: Mapping[str, Decimal] = field(
        default_factory=lambda: _EMPTY
    )  # leaves qty of working sells per symbol
    pending_buy_exposure: Decimal = ZERO  # sum working buys * mark
    pending_sell_exposure: Decimal = ZERO  # sum working sells * mark
    # a close or flatten's closing order (not a trader's sell): see services.risk.rules.closing_exempt
    closing: bool = False

    def for_close(self, symbol: str) -> RiskContext:
        """This context for the pre-check of a close of ``symbol`` before its working orders are
        canceled: marked closing and without the symbol's working orders (the close cancels them
        all first, so a working exit must not make the closing order look like it opens a short)."""
        buys = {s: q for s, q in self.pending_buys.items() if s != symbol}
        sells = {s: q for s, q in self.pending_sells.items() if s != symbol}
        return replace(self, closing=True, pending_buys=buys, pending_sells=sells)


def fmt(v: Decimal | int | None) -> str:
    if v is None:
        return "none"
    if isinstance(v, int):
        return str(v)
    return format(v.normalize() if v == v.to_integral() else v, "f")
