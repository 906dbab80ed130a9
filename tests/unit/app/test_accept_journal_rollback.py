"""``main.py --accept-journal-rollback REASON``: the reason is required (it is journaled)."""

from __future__ import annotations

import pytest

from app.cli import parse_args


@pytest.mark.parametrize("reason", ["", "   "])
def test_accepting_a_rollback_needs_a_reason(reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--accept-journal-rollback", reason])
    assert info.value.code == 2
    assert "--accept-journal-rollback needs a reason" in capsys.readouterr().err


def test_a_reason_is_kept() -> None:
    assert parse_args(["--accept-journal-rollback", "checked"]).accept_journal_rollback == "checked"
