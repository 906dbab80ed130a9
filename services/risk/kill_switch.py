"""KillSwitch: halt trading, cancel every open order, optionally flatten every position. Journaled.

The order work goes through the execution engine (so cancels and closing orders are journaled and
tracked like any other, with source ``kill-switch``); the switch itself moves trading to HALTED
first, so nothing new can be sent while it runs. The flatten cancels each symbol's working orders,
waits until they are gone and closes, within a deadline (:mod:`services.orders.closing`); the result
says per symbol whether it is flat.

The HALT is latched: it survives a restart (the ``kill_switch`` journal record) and stays until an
operator releases it with a reason (:meth:`release`, journaled as ``halt_released``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from services.domain.enums import JournalKind
from services.orders.working import BrokerLike, StoreLike, known_working_orders, working_orders
from services.risk.trading_state import JournalLike, TradingStateMachine, flush_or_keep

log = logging.getLogger("heron.trading")


class FlattenReportLike(Protocol):
    @property
    def all_flat(self) -> bool: ...

    def summary(self) -> str: ...


class OrderCanceller(Protocol):
    @property
    def store(self) -> StoreLike: ...

    @property
    def broker(self) -> BrokerLike: ...

    async def cancel_all(self, *, source: str) -> int: ...

    async def flatten_all(self, *, source: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    canceled: int  # cancel requests sent (a bracket's or OCO's legs go with their parent's cancel)
    flatten: FlattenReportLike | None = None  # None when the switch did not flatten
    orders: int | None = None  # working orders (legs included) when the switch was pulled
    still_working: int | None = None  # Heron's orders not yet terminal after the flatten

    def summary(self) -> str:
        """One line for the trader: what was canceled and, per symbol, whether it is flat."""
        if self.orders is None:
            text = f"trading HALTED, {self.canceled} cancel request(s) sent"
        elif self.orders == 0:
            text = "trading HALTED, no working order to cancel"
        else:
            legs = " (a bracket's or OCO's legs go with their parent)" if self.orders > self.canceled else ""
            text = (f"trading HALTED, cancel requested for {self.orders} working order(s) with "
                    f"{self.canceled} request(s){legs}")  # fmt: skip
        if self.still_working is not None:
            text += f", {self.still_working} still working" if self.still_working else ", none still working"
        if self.flatten is not None:
            text += f"; flatten: {self.flatten.summary()}"
        return text


class KillSwitch:
    SOURCE = "kill-switch"

    def __init__(self, trading: TradingStateMachine, engine: OrderCanceller, journal: JournalLike) -> None:
        self._trading = trading
        self._engine = engine
        self._journal = journal

    async def trigger(self, *, operator: str, flatten: bool, reason: str = "kill switch") -> KillSwitchResult:
        log.error("KILL SWITCH pulled by %s (%s): trading HALTED, every open order canceled%s",
                  operator, reason, ", every position flattened" if flatten else "")  # fmt: skip
        self._journal.append(
            JournalKind.KILL_SWITCH, None, self.SOURCE, operator=operator, flatten=flatten, reason=reason
        )
        flush_or_keep(self._journal, "the kill switch")
        self._trading.latch_halt(operator, reason, source=self.SOURCE)
        engine = self._engine
        orders = len((await working_orders(engine.store, engine.broker)).orders)
        canceled = await engine.cancel_all(source=self.SOURCE)
        report = await engine.flatten_all(source=self.SOURCE) if flatten else None
        # the flatten waited for every cancel to end: what is still working now did not go
        still = len(known_working_orders(engine.store).orders) if flatten else None
        self._journal.append(
            JournalKind.KILL_SWITCH_DONE,
            None,
            self.SOURCE,
            canceled=canceled,
            orders=orders,
            flatten=report.summary() if report is not None else None,
            all_flat=report.all_flat if report is not None else None,
        )
        flush_or_keep(self._journal, "the kill switch's outcome")
        result = KillSwitchResult(canceled, report, orders, still)
        level = logging.WARNING if report is None or report.all_flat else logging.ERROR
        log.log(level, "kill switch done: %s", result.summary())
        return result

    def release(self, *, operator: str, reason: str) -> bool:
        """Release a latched HALT (see :meth:`TradingStateMachine.release_halt`)."""
        return self._trading.release_halt(operator, reason)
