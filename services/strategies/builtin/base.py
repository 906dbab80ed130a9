"""Shared helper for built-ins that hold one of LONG / SHORT / FLAT per symbol."""

from __future__ import annotations

from decimal import Decimal

from services.strategies.api import Signal, Strategy

ZERO = Decimal(0)


class SignalFollower(Strategy):
    """Turns a wanted :class:`Signal` into ``ctx.signal`` plus ``ctx.target_position``.

    Callers invoke :meth:`_follow` only when their wanted signal changes; the runner sends only the
    difference between the target and the position plus pending orders.
    """

    def _follow(self, symbol: str, wanted: Signal, reason: str = "") -> None:
        ctx = self.ctx
        ctx.signal(symbol, wanted, reason)
        qty: Decimal = self.params["qty"]
        target = qty if wanted is Signal.LONG else -qty if wanted is Signal.SHORT else ZERO
        ctx.target_position(symbol, target)
