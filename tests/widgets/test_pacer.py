"""The display pace: panels touched by market data are shown together, at most once per interval."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from PySide6.QtCore import QObject

from widgets.pacer import DISPLAY_INTERVAL_S, DisplayPacer


def test_requests_of_one_batch_are_shown_in_one_pass_after_the_batch(qtbot: Any) -> None:
    """A pass never runs inside ``request``: the other panels' handlers of the same batch have not
    run yet, and their requests must join the same pass (one repaint of the window)."""
    pacer = DisplayPacer()
    shown: list[str] = []
    pacer.request(lambda: shown.append("watchlist"))
    assert shown == []

    def chart() -> None:
        shown.append("chart")

    pacer.request(chart)
    pacer.request(chart)  # asked twice before the pass: shown once
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=1000)
    assert shown == ["watchlist", "chart"] and pacer.passes == 1 and not pacer.pending()


def test_passes_are_at_least_the_interval_apart(qtbot: Any) -> None:
    clock = [100.0]
    pacer = DisplayPacer(0.2, clock=lambda: clock[0])
    shown: list[float] = []
    pacer.request(lambda: shown.append(clock[0]))
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=1000)  # after a quiet spell: the next turn
    clock[0] += 0.05
    pacer.request(lambda: shown.append(clock[0]))
    # due 0.15 s from now: the timer waits for it
    assert pacer._timer.isActive() and 150 <= pacer._timer.interval() <= 151
    clock[0] += 1.0
    pacer.run_due()
    assert shown == [100.0, 101.05]
    clock[0] += 0.25
    pacer.request(lambda: shown.append(clock[0]))  # more than an interval after that pass: next turn
    assert pacer._timer.interval() == 0
    assert DisplayPacer().interval_s == DISPLAY_INTERVAL_S == 0.2  # the window's pace: 5 a second


@pytest.mark.expected_log(r"showing market data failed in .*broken")
def test_a_failing_panel_is_logged_and_the_others_are_still_shown(
    qtbot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pacer = DisplayPacer()
    shown: list[str] = []

    def broken() -> None:
        raise ZeroDivisionError("a panel bug")

    pacer.request(broken)
    pacer.request(lambda: shown.append("ticket"))
    with caplog.at_level(logging.ERROR, logger="heron.widgets"):
        pacer.run_due()
    assert shown == ["ticket"]
    assert "showing market data failed" in caplog.text and "a panel bug" in caplog.text


def test_a_destroyed_owner_is_not_shown(qtbot: Any) -> None:
    from shiboken6 import delete

    pacer = DisplayPacer()
    owner = QObject()
    shown: list[str] = []

    def show() -> None:
        shown.append("gone")

    request = pacer.bind(owner, show)
    request()
    assert pacer.pending()
    delete(owner)  # the panel is closed before the pass
    assert not pacer.pending()
    pacer.run_due()
    assert shown == [] and pacer.passes == 0


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        DisplayPacer(-1)
