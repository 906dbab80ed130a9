"""KillSwitch: halt trading, cancel every open order, optionally flatten every position. Journaled.

The order work goes through the execution engine (so cancels and closing orders are journaled and
tracked like any other, with source ``kill-switch``); the switch itself moves trading to HALTED
first, so nothing new can be sent while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.domain.enums import TradingState
from services.risk.trading_state import JournalLike, TradingStateMachine


class OrderCanceller(Protocol):
    async def cancel_all(self, *, source: str) -> int: ...

    async def flatten_all(self, *, source: str) -> int: ...


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    canceled: int
    flattened: int


class KillSwitch:
    SOURCE = "kill-switch"

    def __init__(self, trading: TradingStateMachine, engine: OrderCanceller, journal: JournalLike) -> None:
        self._trading = trading
        self._engine = engine
        self._journal = journal

    async def trigger(self, *, operator: str, flatten: bool, reason: str = "kill switch") -> KillSwitchResult:
        self._journal.append(
            "kill_switch", None, self.SOURCE, operator=operator, flatten=flatten, reason=reason
        )
        self._journal.flush()
        self._trading.set(TradingState.HALTED, f"{reason} (operator {operator})", source=self.SOURCE)
        canceled = await self._engine.cancel_all(source=self.SOURCE)
        flattened = await self._engine.flatten_all(source=self.SOURCE) if flatten else 0
        self._journal.append("kill_switch_done", None, self.SOURCE, canceled=canceled, flattened=flattened)
        self._journal.flush()
        return KillSwitchResult(canceled, flattened)
