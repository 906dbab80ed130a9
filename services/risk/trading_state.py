"""TradingStateMachine: ACTIVE / REDUCING / HALTED / DISABLED, with reasons, journaled, published.

Heron starts DISABLED; only :meth:`enable` after a clean start-up reconciliation makes it ACTIVE.
Leaving HALTED or REDUCING back to ACTIVE is an operator action. Every change is appended to the
journal (kind ``trading_state``) and published as a :class:`TradingStateEvent`.
Runs on the event-loop thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from services.domain.bus import EventBus
from services.domain.enums import TradingState
from services.domain.events import TradingStateEvent


class JournalLike(Protocol):
    def append(self, kind: str, client_order_id: str | None, source: str, **payload: Any) -> None: ...

    def flush(self) -> None: ...


class TradingStateMachine:
    def __init__(
        self, bus: EventBus, clock: Callable[[], datetime], journal: JournalLike | None = None
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._journal = journal
        self.state = TradingState.DISABLED
        self.reason = "start-up reconciliation has not run"
        self.history: list[tuple[datetime, TradingState, str, str]] = []

    def set(self, state: TradingState, reason: str, *, source: str) -> bool:
        """Move to ``state``; returns False (and changes nothing) when already there."""
        if state is self.state and reason == self.reason:
            return False
        if self.state is TradingState.DISABLED and state is TradingState.ACTIVE and source != "startup":
            raise PermissionError("trading is enabled only by a clean start-up reconciliation")
        now = self._clock()
        previous = self.state
        self.state, self.reason = state, reason
        self.history.append((now, state, reason, source))
        del self.history[:-100]
        if self._journal is not None:
            self._journal.append(
                "trading_state", None, source, state=state.value, previous=previous.value, reason=reason
            )
            self._journal.flush()
        self._bus.publish(TradingStateEvent(now, state, reason))
        return True

    def enable(self, reason: str = "start-up reconciliation clean") -> None:
        self.set(TradingState.ACTIVE, reason, source="startup")

    def escalate(self, state: TradingState, reason: str, *, source: str) -> None:
        """Move to a more restrictive state only (REDUCING < HALTED); never relaxes."""
        order = {
            TradingState.ACTIVE: 0,
            TradingState.REDUCING: 1,
            TradingState.HALTED: 2,
            TradingState.DISABLED: 3,
        }
        if order[state] > order[self.state]:
            self.set(state, reason, source=source)

    def operator_resume(self, operator: str, reason: str) -> None:
        if self.state is TradingState.DISABLED:
            raise PermissionError("trading is DISABLED until start-up reconciliation is clean")
        self.set(TradingState.ACTIVE, f"{reason} (operator {operator})", source=f"operator:{operator}")
