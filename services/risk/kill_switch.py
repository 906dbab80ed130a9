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
from services.risk.trading_state import JournalLike, TradingStateMachine, flush_or_keep

log = logging.getLogger("heron.trading")


class FlattenReportLike(Protocol):
    @property
    def all_flat(self) -> bool: ...

    def summary(self) -> str: ...


class OrderCanceller(Protocol):
    async def cancel_all(self, *, source: str) -> int: ...

    async def flatten_all(self, *, source: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    canceled: int
    flatten: FlattenReportLike | None = None  # None when the switch did not flatten

    def summary(self) -> str:
        """One line for the trader: what was canceled and, per symbol, whether it is flat."""
        text = f"trading HALTED, {self.canceled} cancel(s) requested"
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
        canceled = await self._engine.cancel_all(source=self.SOURCE)
        report = await self._engine.flatten_all(source=self.SOURCE) if flatten else None
        self._journal.append(
            JournalKind.KILL_SWITCH_DONE,
            None,
            self.SOURCE,
            canceled=canceled,
            flatten=report.summary() if report is not None else None,
            all_flat=report.all_flat if report is not None else None,
        )
        flush_or_keep(self._journal, "the kill switch's outcome")
        result = KillSwitchResult(canceled, report)
        level = logging.WARNING if report is None or report.all_flat else logging.ERROR
        log.log(level, "kill switch done: %s", result.summary())
        return result

    def release(self, *, operator: str, reason: str) -> bool:
        """Release a latched HALT (see :meth:`TradingStateMachine.release_halt`)."""
        return self._trading.release_halt(operator, reason)
