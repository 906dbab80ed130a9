"""TradingStateMachine: ACTIVE / REDUCING / HALTED / DISABLED, with reasons, journaled, published.

Heron starts DISABLED; only :meth:`enable` after a clean start-up reconciliation makes it ACTIVE.
Leaving HALTED or REDUCING back to ACTIVE is an operator action. Every change is appended to the
journal (kind ``trading_state``) and published as a :class:`TradingStateEvent`.

A kill-switch HALT is latched (:meth:`latch_halt`): the journal's ``kill_switch`` record brings it
back after a restart, where :meth:`enable` then leaves trading HALTED instead of ACTIVE, and nothing
but :meth:`release_halt` (an operator, a non-empty reason, journaled as ``halt_released``) lifts it.
Runs on the event-loop thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from services.domain.bus import EventBus
from services.domain.enums import JournalKind, TradingState
from services.domain.events import TradingStateEvent
from services.storage.errors import StorageError, describe_db_error

log = logging.getLogger(__name__)

HALT_KINDS = (JournalKind.KILL_SWITCH, JournalKind.HALT_RELEASED)


class JournalLike(Protocol):
    def append(self, kind: JournalKind, client_order_id: str | None, source: str, **payload: Any) -> None: ...

    def flush(self) -> None: ...

    def last_record(self, kinds: tuple[JournalKind, ...]) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class HaltLatch:
    """A kill-switch HALT in force until an operator releases it."""

    since: str  # ISO time of the kill switch
    operator: str
    reason: str

    def describe(self) -> str:
        return (
            f"kill switch HALT by {self.operator} at {_readable_utc(self.since)} ({self.reason}) is in "
            "force; an operator must release it with a reason"
        )


def _readable_utc(iso: str) -> str:
    """``2026-12-05 11:57:48 UTC`` for an ISO time (the journal's text as it is if it is not one)."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is None:
        return iso
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class TradingStateMachine:
    def __init__(
        self, bus: EventBus, clock: Callable[[], datetime], journal: JournalLike | None = None
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._journal = journal
        self.state = TradingState.DISABLED
        self.reason = "start-up reconciliation has not run"
        self.since: datetime = clock()  # when the current state began
        self.history: list[tuple[datetime, TradingState, str, str]] = []
        self.halt_latch: HaltLatch | None = self._restore_latch()
        #: How the previous run left trading (its last ``trading_state`` record), read at start-up
        #: so that a HALT the restart does not carry over is said out loud, never cleared silently.
        self.previous_run: dict[str, Any] | None = self._previous_run()
        self._latch_reason: str | None = None  # the reason text trading was HALTED with by the latch

    def _restore_latch(self) -> HaltLatch | None:
        if self._journal is None:
            return None
        last = self._journal.last_record(HALT_KINDS)
        if last is None or last["kind"] != JournalKind.KILL_SWITCH:
            return None
        payload = last["payload"]
        return HaltLatch(last["ts"], str(payload.get("operator", "?")), str(payload.get("reason", "")))

    def _previous_run(self) -> dict[str, Any] | None:
        if self._journal is None:
            return None
        last = self._journal.last_record((JournalKind.TRADING_STATE,))
        return None if last is None else {"ts": last["ts"], **last["payload"]}

    def halted_since(self) -> datetime:
        """When the current state began; for a kill-switch HALT carried over a restart, the time
        the switch was pulled (not the time this run re-imposed it)."""
        if self.halt_latch is not None and self.state is TradingState.HALTED:
            try:
                return datetime.fromisoformat(self.halt_latch.since)
            except ValueError:
                return self.since
        return self.since

    def set(self, state: TradingState, reason: str, *, source: str) -> bool:
        """Move to ``state``; returns False (and changes nothing) when already there."""
        if state is self.state and reason == self.reason:
            return False
        if self.state is TradingState.DISABLED and state is TradingState.ACTIVE and source != "startup":
            raise PermissionError("trading is enabled only by a clean start-up reconciliation")
        if self.halt_latch is not None and state in (TradingState.ACTIVE, TradingState.REDUCING):
            raise PermissionError(self.halt_latch.describe())
        now = self._clock()
        previous = self.state
        self.state, self.reason, self.since = state, reason, now
        self.history.append((now, state, reason, source))
        del self.history[:-100]
        if self._journal is not None:
            self._journal.append(
                JournalKind.TRADING_STATE,
                None,
                source,
                state=state.value,
                previous=previous.value,
                reason=reason,
            )
            flush_or_keep(self._journal, f"trading state {state.value}")
        self._bus.publish(TradingStateEvent(now, state, reason))
        return True

    def enable(self, reason: str = "start-up reconciliation clean") -> None:
        """After a clean start-up reconciliation: ACTIVE, or HALTED while a kill-switch HALT holds."""
        if self.halt_latch is not None:
            self._latch_reason = self.halt_latch.describe()
            self.set(TradingState.HALTED, self._latch_reason, source="startup")
            return
        self.set(TradingState.ACTIVE, reason, source="startup")

    def latch_halt(self, operator: str, reason: str, *, source: str) -> None:
        """HALT now and keep it, across restarts, until :meth:`release_halt` (the kill switch).

        The caller journals the ``kill_switch`` record (durably) before calling this.
        """
        self.halt_latch = HaltLatch(self._clock().isoformat(), operator, reason)
        if self.state is TradingState.DISABLED:
            return  # start-up has not enabled trading; enable() will find the latch
        self._latch_reason = f"{reason} (operator {operator})"
        self.set(TradingState.HALTED, self._latch_reason, source=source)

    def release_halt(self, operator: str, reason: str) -> bool:
        """Release a kill-switch HALT: journaled with the operator and the reason.

        Returns False (and journals nothing) when no HALT is latched. Trading goes back to ACTIVE
        only if the latch is what holds it HALTED; a DISABLED start-up stays DISABLED until its
        reconciliation is clean, and a HALT for another cause stays.
        """
        if not operator.strip():
            raise ValueError("releasing a kill-switch HALT needs the operator's name")
        if not reason.strip():
            raise ValueError("releasing a kill-switch HALT needs a reason")
        latch = self.halt_latch
        if latch is None:
            return False
        if self._journal is not None:
            self._journal.append(
                JournalKind.HALT_RELEASED,
                None,
                f"operator:{operator}",
                operator=operator,
                reason=reason.strip(),
                halted_by=latch.operator,
                halted_at=latch.since,
                halt_reason=latch.reason,
            )
            flush_or_keep(self._journal, "the HALT release")
        self.halt_latch = None
        if self.state is TradingState.HALTED and self.reason == self._latch_reason:
            self.set(
                TradingState.ACTIVE,
                f"kill-switch HALT released: {reason.strip()} (operator {operator})",
                source=f"operator:{operator}",
            )
        self._latch_reason = None
        return True

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

    def resume(self, operator: str, reason: str) -> str:
        """The operator's "Resume trading": release a kill-switch HALT and lift a HALTED or REDUCING
        state, with a typed reason that is journaled. Returns what was done, in words.

        Raises ValueError for an empty reason and PermissionError while trading is DISABLED (only a
        clean start-up reconciliation enables it) or another cause still holds it.
        """
        why = reason.strip()
        if not why:
            raise ValueError("resuming trading needs a reason")
        if self.state is TradingState.DISABLED and self.halt_latch is None:
            raise PermissionError(f"trading is DISABLED ({self.reason}); it comes back only by itself")
        if self.state is TradingState.ACTIVE and self.halt_latch is None:
            return "trading is already ACTIVE; nothing to resume"
        done = []
        if self.halt_latch is not None:
            self.release_halt(operator, why)
            done.append("kill-switch HALT released")
        if self.state in (TradingState.HALTED, TradingState.REDUCING):
            self.operator_resume(operator, f"resumed by the operator: {why}")
        if self.state is TradingState.ACTIVE:
            done.append("trading ACTIVE")
        else:
            done.append(f"trading stays {self.state.value}: {self.reason}")
        return "; ".join(done)

    def operator_resume(self, operator: str, reason: str) -> None:
        if self.state is TradingState.DISABLED:
            raise PermissionError("trading is DISABLED until start-up reconciliation is clean")
        if self.halt_latch is not None:
            raise PermissionError(self.halt_latch.describe())
        self.set(TradingState.ACTIVE, f"{reason} (operator {operator})", source=f"operator:{operator}")


def flush_or_keep(journal: JournalLike, what: str) -> None:
    """Commit the journal now; when the database refuses (locked, full), say so and keep going: the
    rows stay queued and are committed with the next write that gets through. A state change or a
    HALT must never be lost in memory because its record could not be written yet."""
    try:
        journal.flush()
    except (SQLAlchemyError, StorageError) as error:
        log.error("%s is not journaled yet (%s); it goes with the next write", what, describe_db_error(error))
