"""Multi-strategy portfolio manager: aggregates strategy targets per symbol.

Conflict rule (the one rule, on purpose): **the net target for a symbol is the sum of the targets of
every strategy trading it.** Opposing views offset (a strategy long 10 and another short 4 net to
long 6); there is no priority and no "conflict means flat". Each strategy trades its own book, so
the account position is the sum of the strategy positions and every order stays attributed to the
strategy that asked for it.

Optional per-symbol cap: with ``max_net_position[symbol] = C``, a new target that would take
``|net|`` above ``C`` is clipped toward zero so that ``|net| == C`` (a target that reduces ``|net|``
is never clipped). Every clip is recorded in :attr:`PortfolioManager.clips` for the report and the
log. Orders a strategy sends with ``ctx.submit`` (not ``target_position``) are not capped here; the
risk gate downstream still checks them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from services.strategies.api import Signal

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TargetClip:
    strategy: str
    symbol: str
    requested: Decimal
    granted: Decimal
    cap: Decimal


class PortfolioManager:
    """Keeps every strategy's target per symbol; the runner asks it before emitting target orders.

    Thread: the runner's thread (event loop live, worker thread in a backtest).
    """

    def __init__(self, max_net_position: Mapping[str, Decimal] | None = None) -> None:
        self._targets: dict[str, dict[str, Decimal]] = {}
        self._caps = dict(max_net_position or {})
        self.clips: list[TargetClip] = []

    def set_cap(self, symbol: str, cap: Decimal | None) -> None:
        if cap is None:
            self._caps.pop(symbol, None)
        elif cap < 0:
            raise ValueError(f"max net position for {symbol} must be >= 0, got {cap}")
        else:
            self._caps[symbol] = cap

    def request_target(self, strategy: str, symbol: str, qty: Decimal) -> Decimal:
        """Record ``strategy``'s wish to hold ``qty`` of ``symbol``; returns the target granted."""
        per_symbol = self._targets.setdefault(symbol, {})
        granted = qty
        cap = self._caps.get(symbol)
        if cap is not None:
            mine = per_symbol.get(strategy, ZERO)
            others = sum(per_symbol.values(), ZERO) - mine
            new_net = others + qty
            if abs(new_net) > cap and abs(new_net) > abs(others + mine):
                if qty > 0:
                    granted = min(qty, max(ZERO, cap - others))
                elif qty < 0:
                    granted = max(qty, min(ZERO, -cap - others))
                self.clips.append(TargetClip(strategy, symbol, qty, granted, cap))
                log.warning(
                    "portfolio cap: %s target %s %s clipped to %s (net cap %s)",
                    strategy,
                    symbol,
                    qty,
                    granted,
                    cap,
                )
        per_symbol[strategy] = granted
        return granted

    def forget(self, strategy: str) -> None:
        """Drop a removed strategy's targets."""
        for per_symbol in self._targets.values():
            per_symbol.pop(strategy, None)

    def target(self, strategy: str, symbol: str) -> Decimal:
        return self._targets.get(symbol, {}).get(strategy, ZERO)

    def net_target(self, symbol: str) -> Decimal:
        return sum(self._targets.get(symbol, {}).values(), ZERO)

    def net_signal(self, symbol: str) -> Signal:
        net = self.net_target(symbol)
        return Signal.LONG if net > 0 else Signal.SHORT if net < 0 else Signal.FLAT

    def in_conflict(self, symbol: str) -> bool:
        """True when at least one strategy wants long and another short (they offset)."""
        values = self._targets.get(symbol, {}).values()
        return any(v > 0 for v in values) and any(v < 0 for v in values)

    def symbols(self) -> list[str]:
        return sorted(s for s, per in self._targets.items() if per)

    def summary(self) -> dict[str, dict[str, str]]:
        return {
            symbol: {
                "net": str(self.net_target(symbol)),
                "signal": self.net_signal(symbol).value,
                "conflict": str(self.in_conflict(symbol)).lower(),
            }
            for symbol in self.symbols()
        }
