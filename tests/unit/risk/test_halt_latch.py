"""A kill-switch HALT survives a restart and stays until an operator releases it, with a reason.

Restart = a new engine, trading-state machine and reconciler over the same database journal and
the same broker; the start-up reconciliation is clean, which on its own would make trading ACTIVE.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from services.domain.enums import JournalKind, TradingState
from services.orders.startup import halt_at_start
from services.orders.tables import ORDERS_SCHEMA
from services.reconciliation.reconciler import Reconciler
from services.risk.kill_switch import KillSwitch
from services.storage import Database
from tests.support.clock import ManualClock
from tests.unit.orders.conftest import Rig, build


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    yield database  # type: ignore[misc]
    database.dispose()


def start(rig: Rig) -> Rig:
    """Start-up as the app does it: recover, then the start-up reconciliation (clean here)."""
    asyncio.run(rig.engine.recover())
    reconciler = Reconciler(rig.broker, rig.store, rig.journal, rig.trading, rig.bus, rig.clock, rig.db)
    result = asyncio.run(reconciler.startup())
    assert result.clean
    return rig


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_a_kill_switch_halt_survives_restart_until_released_with_a_reason(db: Database) -> None:
    rig = start(build(db, ManualClock()))
    assert rig.trading.state is TradingState.ACTIVE
    asyncio.run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=False))
    assert rig.trading.state is TradingState.HALTED

    again = start(rig.restart())
    assert again.trading.state is TradingState.HALTED  # not ACTIVE, although reconciliation is clean
    assert "kill switch" in again.trading.reason and "release" in again.trading.reason
    # when, readable and zoned (the journal's ISO text is for machines)
    assert re.search(r"by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(", again.trading.reason), (
        again.trading.reason
    )
    with pytest.raises(PermissionError):
        again.trading.operator_resume("bob", "looks fine")
    assert again.trading.state is TradingState.HALTED
    for empty in ("", "   "):
        with pytest.raises(ValueError):
            again.trading.release_halt("bob", empty)
    assert again.trading.state is TradingState.HALTED

    assert again.trading.release_halt("bob", "positions checked with the broker") is True
    assert again.trading.state is TradingState.ACTIVE
    released = [r for r in again.journal.records() if r["kind"] == "halt_released"]
    assert len(released) == 1
    assert released[0]["payload"]["operator"] == "bob"
    assert released[0]["payload"]["reason"] == "positions checked with the broker"

    third = start(again.restart())
    assert third.trading.state is TradingState.ACTIVE  # released stays released


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_release_before_start_up_leaves_trading_to_the_reconciliation(db: Database) -> None:
    rig = start(build(db, ManualClock()))
    asyncio.run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=False))
    again = rig.restart()
    assert again.trading.halt_latch is not None and again.trading.halt_latch.operator == "alice"
    assert again.trading.release_halt("bob", "resolved overnight") is True
    assert again.trading.state is TradingState.DISABLED  # start-up reconciliation has not run yet
    assert start(again).trading.state is TradingState.ACTIVE


def test_release_without_a_halt_changes_nothing(db: Database) -> None:
    rig = start(build(db, ManualClock()))
    assert rig.trading.release_halt("bob", "nothing to release") is False
    assert rig.trading.state is TradingState.ACTIVE
    assert not [r for r in rig.journal.records() if r["kind"] == "halt_released"]


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_resume_releases_the_kill_switch_halt_with_a_typed_reason(db: Database) -> None:
    rig = start(build(db, ManualClock()))
    asyncio.run(KillSwitch(rig.trading, rig.engine, rig.journal).trigger(operator="alice", flatten=False))
    again = start(rig.restart())
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="reason"):
            again.trading.resume("bob", empty)
    assert again.trading.state is TradingState.HALTED
    done = again.trading.resume("bob", "  flat at the broker, checked  ")
    assert "HALT released" in done and "ACTIVE" in done
    assert again.trading.state is TradingState.ACTIVE and again.trading.halt_latch is None
    released = [r for r in again.journal.records() if r["kind"] == "halt_released"]
    assert [r["payload"]["reason"] for r in released] == ["flat at the broker, checked"]


def test_resume_lifts_a_loss_limit_halt_and_journals_the_reason(db: Database) -> None:
    rig = start(build(db, ManualClock()))
    rig.trading.escalate(TradingState.HALTED, "daily loss limit breached", source="risk")
    assert rig.trading.resume("bob", "limit raised after review") == "trading ACTIVE"
    last = rig.journal.last_record((JournalKind.TRADING_STATE,))
    assert last is not None and last["payload"]["state"] == "ACTIVE"
    assert "limit raised after review" in last["payload"]["reason"]


def test_resume_refuses_while_start_up_has_not_enabled_trading(db: Database) -> None:
    rig = build(db, ManualClock())
    with pytest.raises(PermissionError, match="DISABLED"):
        rig.trading.resume("bob", "go")


@pytest.mark.expected_log(r"HALTED when Heron last ran")
def test_a_restart_says_out_loud_that_the_last_run_ended_halted(db: Database) -> None:
    """A loss-limit HALT is checked again by the new run (not latched), but never cleared in silence."""
    rig = start(build(db, ManualClock()))
    rig.trading.escalate(TradingState.HALTED, "daily loss limit breached", source="risk")
    said: list[tuple[str, str, str]] = []
    again = rig.restart()
    halt_at_start(again.trading, None, lambda *a: said.append(a))
    assert len(said) == 1 and said[0][0] == "warning"
    assert "HALTED when Heron last ran" in said[0][2] and "daily loss limit breached" in said[0][2]
    start(again)
    quiet: list[tuple[str, str, str]] = []
    halt_at_start(again.restart().trading, None, lambda *a: quiet.append(a))
    assert quiet == []  # the last run ended ACTIVE: nothing to say
