"""A message cut short on screen is written to the log once per label, at DEBUG: the ticket re-runs its
pre-check every second, and its block reason, written at INFO on each run because the quotes moved a
figure in it, flooded the Log panel with lines a trader had to scroll past to read anything else."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.widgets import trading_rig
from tests.widgets.test_order_ticket import fill_form, make
from tests.widgets.trading_rig import Rig
from widgets.message_label import MessageLabel

qloop = trading_rig.qloop
rig = trading_rig.rig


def blocked(buying_power: str) -> str:
    checks = "; ".join(f"check_{i}: far past its limit (value={i}, max=1)" for i in range(12))
    return f"risk: {checks}; buying_power: order notional vs buying power (buying_power={buying_power})"


LONG = blocked("398219.7")
OTHER = "not saved: " + "the keyring refused the secret because its daemon is not running " * 6


def _echoes(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "heron.widgets.messages" and text in r.getMessage()]


def test_a_long_message_set_again_is_logged_once_at_debug(
    qtbot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    label = MessageLabel()
    label.setObjectName("ticketBlockedReason")
    qtbot.addWidget(label)
    with caplog.at_level(logging.DEBUG, logger="heron.widgets"):
        for i in range(15):  # re-shown every second, cleared and shown again, another message between
            label.setText(LONG)
            label.setText(LONG)
            label.setText("")
            label.setText(OTHER)
            label.setText(blocked(f"398{i:03d}.7"))  # only a live figure differs
    assert len(_echoes(caplog, "check_11")) == 1 and len(_echoes(caplog, OTHER)) == 1
    assert all(r.levelno == logging.DEBUG for r in _echoes(caplog, LONG))  # UI echo, not an event
    assert "ticketBlockedReason" in _echoes(caplog, LONG)[0].getMessage()


def test_an_owner_may_log_a_message_nothing_else_logs_at_its_own_level(
    qtbot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    label = MessageLabel(log_level=logging.INFO)
    qtbot.addWidget(label)
    with caplog.at_level(logging.DEBUG, logger="heron.widgets"):
        label.setText(OTHER)
    assert [r.levelno for r in _echoes(caplog, OTHER)] == [logging.INFO]


def test_a_ticket_blocked_on_a_long_reason_logs_it_once_while_its_precheck_reruns(
    qtbot: Any, rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    t = make(qtbot, rig)
    fill_form(t, qty="100000000", otype="limit", limit_edit="150")  # fat finger, notional, buying power
    with caplog.at_level(logging.DEBUG, logger="heron.widgets"):
        for i in range(15):  # the ticket's once-a-second re-check, fifteen times, the quote moving
            rig.quote("AAPL", f"99.{90 - i}", f"100.{10 + i}")
            t.run_precheck()
            t.reason_label.repaint()
    assert t.reason_label.cut, "the reason must be long enough to be cut short for this test"
    echoes = _echoes(caplog, "ticketBlockedReason")
    assert len(echoes) == 1 and echoes[0].levelno == logging.DEBUG
    info = [r for r in caplog.records if r.name.startswith("heron.widgets") and r.levelno >= logging.INFO]
    assert info == []
