"""``main.py --release-halt REASON``: the operator's way to release a kill-switch HALT kept from an
earlier run. The reason is required and journaled with the operator's name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.cli import parse_args
from services.domain.bus import EventBus
from services.domain.enums import TradingState
from services.orders.journal import OrderJournal
from services.orders.startup import halt_at_start
from services.orders.tables import ORDERS_SCHEMA
from services.risk.trading_state import TradingStateMachine
from services.storage import Database


def _now() -> datetime:
    return datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("reason", ["", "   "])
def test_release_halt_needs_a_reason(reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--release-halt", reason])
    assert exit_info.value.code == 2
    assert "--release-halt needs a reason" in capsys.readouterr().err


@pytest.mark.expected_log(r"^heron\.app: kill\-switch HALT released by root: positions checked")
def test_release_halt_flag_releases_and_journals_the_operator_and_reason(tmp_path: Path) -> None:
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    try:
        journal = OrderJournal(db, _now)
        journal.append(
            "kill_switch", None, "kill-switch", operator="alice", flatten=True, reason="kill switch"
        )
        journal.flush()
        notes: list[tuple[str, str, str]] = []
        ctx: Any = SimpleNamespace(
            args=parse_args(["--release-halt", "positions checked"]),
            notify=lambda level, source, message: notes.append((level, source, message)),
        )
        trading = TradingStateMachine(EventBus(), _now, journal)
        assert trading.halt_latch is not None

        halt_at_start(trading, ctx.args.release_halt, ctx.notify)

        assert trading.halt_latch is None
        released = [r for r in journal.records() if r["kind"] == "halt_released"]
        assert len(released) == 1 and released[0]["payload"]["reason"] == "positions checked"
        assert released[0]["payload"]["operator"]
        assert any("released" in message for _, _, message in notes)
        trading.enable()
        assert trading.state is TradingState.ACTIVE
    finally:
        db.dispose()


@pytest.mark.expected_log(r"^heron\.app: kill switch HALT by alice at")
def test_without_the_flag_a_kept_halt_is_announced(tmp_path: Path) -> None:
    db = Database.open(None, tmp_path, [ORDERS_SCHEMA])
    try:
        journal = OrderJournal(db, _now)
        journal.append(
            "kill_switch", None, "kill-switch", operator="alice", flatten=False, reason="kill switch"
        )
        journal.flush()
        notes: list[tuple[str, str, str]] = []
        ctx: Any = SimpleNamespace(args=parse_args([]), notify=lambda *a: notes.append(a))
        trading = TradingStateMachine(EventBus(), _now, journal)
        halt_at_start(trading, ctx.args.release_halt, ctx.notify)
        assert trading.halt_latch is not None
        assert any("--release-halt" in message and level == "warning" for level, _, message in notes)
        trading.enable()
        assert trading.state is TradingState.HALTED
    finally:
        db.dispose()
