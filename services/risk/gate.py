"""RiskGate: fail-closed, explained pre-trade checks.

``check(request, context)`` runs every rule of :data:`services.risk.rules.RULES` in that fixed order
and returns a :class:`RiskReport` with one :class:`CheckResult` per check (name, passed, detail,
numbers as decimal strings). Missing data fails closed: no price, stale quote, no account or no
instrument rejects. Cancels never come here.

Working orders count: position and exposure limits hold for the worst case in which every working
order fills (see :mod:`services.risk.facts`). Besides Heron's own limits (:mod:`services.risk.rules`)
the gate refuses what Alpaca would refuse after the order was sent (:mod:`services.risk.venue_rules`).

No I/O, no pandas: the context carries everything, prepared by the caller; limit-derived constants
are precomputed. Synchronous; call it on the event-loop thread. Passing orders are counted for the
rate and duplicate guards (so call it once per order you intend to send).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime

from services.domain.enums import TradingState
from services.domain.models import OrderRequest
from services.risk.context import CheckResult, RiskContext, RiskReport
from services.risk.facts import HUNDRED, RuleInput, SentOrder, order_facts
from services.risk.limits import RiskLimits
from services.risk.rules import RULES


class RiskGate:
    """See the module docstring. ``on_breach(state, reason)`` is told of loss-limit breaches."""

    def __init__(
        self,
        limits: RiskLimits | None = None,
        *,
        on_breach: Callable[[TradingState, str], None] | None = None,
    ) -> None:
        self.limits = limits or RiskLimits()
        self._on_breach = on_breach
        self._recent: deque[datetime] = deque()
        self._last_orders: deque[SentOrder] = deque()
        self._precompute()

    def _precompute(self) -> None:
        lim = self.limits
        self._band_up = 1 + lim.price_band_pct / HUNDRED
        self._band_down = 1 - lim.price_band_pct / HUNDRED
        self._dd = lim.max_drawdown_pct / HUNDRED
        self._dup_s = float(lim.duplicate_window_s)
        self._breach_state = TradingState(lim.loss_breach_state)

    def set_limits(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._precompute()

    # --- the gate --------------------------------------------------------------------------------
    def preview(self, request: OrderRequest, ctx: RiskContext) -> RiskReport:
        """The same checks as :meth:`check`, with no side effects: a passing order is not counted
        for the rate and duplicate guards and a loss-limit breach is not reported (the order
        ticket runs this while the trader types)."""
        return self.check(request, ctx, record=False)

    def check(self, request: OrderRequest, ctx: RiskContext, *, record: bool = True) -> RiskReport:
        now = ctx.now
        self._forget_before(now)
        facts = order_facts(request, ctx)
        rule_input = RuleInput(
            ctx,
            facts,
            self.limits,
            self._band_up,
            self._band_down,
            self._dd,
            len(self._recent),
            self._last_orders,
            self._tell_breach if record and self._on_breach is not None else None,
        )
        out: list[CheckResult] = []
        for rule in RULES:
            result = rule(request, rule_input)
            if result is not None:
                out.append(result)
        report = RiskReport(tuple(out))
        if record and report.passed:
            self._recent.append(now)
            self._last_orders.append((now, request.symbol, request.side, facts.qty, request.limit_price))
        return report

    def _forget_before(self, now: datetime) -> None:
        """Drop orders older than a minute (rate guard) and than the duplicate window."""
        recent = self._recent
        while recent and (now - recent[0]).total_seconds() >= 60:
            recent.popleft()
        last_orders = self._last_orders
        while last_orders and (now - last_orders[0][0]).total_seconds() > self._dup_s:
            last_orders.popleft()

    def _tell_breach(self, reason: str) -> None:
        if self._on_breach is not None:
            self._on_breach(self._breach_state, reason)
