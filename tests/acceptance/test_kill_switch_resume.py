"""The kill switch and the way back, on a real screen (issue 15: "a resume after the kill switch
works"). A person pulls the kill switch from the account panel, confirms, and sees the status bar
turn red with HALTED; Resume trading… (the status bar's button) asks for a typed reason, refuses an
empty or blank one, and with a reason lifts the HALT: the red is gone, trading is ACTIVE and the
reason is in the log.

Where the parts are: the KILL SWITCH button and its confirmation (widgets/account.py), the red
HALTED label (``theme.DANGER_BG``) and the Resume trading… button right of it
(widgets/status_bar.py), the reason dialog (widgets/resume_trading.py). The account panel shares a
tab group with the blotter and the positions at first launch; the test closes those two from the
View menu (by keyboard) so the account panel is in front, as a person would bring it forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.acceptance.support import (
    Box,
    Display,
    ScreenGrabber,
    Terminal,
    bounding_box,
    click,
    client_box,
    holds_for,
    long_runs,
    near,
    until,
)
from widgets import theme

pytestmark = pytest.mark.acceptance

REASON = "checked the book after the drill; limits unchanged"


def _trading_state(heron: Terminal) -> str | None:
    return (heron.report() or {}).get("trading_state")


def _status_rows(shot: np.ndarray[Any, Any], window: Box) -> Box:
    """The status bar across the window: the rows of the LOCAL mode badge (always shown there)."""
    area = shot[window.top : window.bottom + 1, window.left : window.right + 1]
    badge = bounding_box(near(area, theme.MODE_LOCAL, 6), min_pixels=100)
    assert badge is not None, "no LOCAL badge in the window"
    return Box(window.left, window.top + badge.top - 2, window.right, window.top + badge.bottom + 2)


def _red_in(shot: np.ndarray[Any, Any], rows: Box) -> Box | None:
    """The HALTED label's red (``theme.DANGER_BG``) inside the status bar, if shown."""
    area = shot[rows.top : rows.bottom + 1, rows.left : rows.right + 1]
    found = bounding_box(near(area, theme.DANGER_BG, 6), min_pixels=300)
    if found is None:
        return None
    return Box(rows.left + found.left, rows.top + found.top, rows.left + found.right, rows.top + found.bottom)


def _kill_button(shot: np.ndarray[Any, Any], window: Box, above: int) -> Box | None:
    """The KILL SWITCH button: a filled red bar (long runs of red, not a candle or a letter)."""
    area = shot[window.top : above, window.left : window.right + 1].astype(np.int16)
    red = (area[..., 0] >= 150) & (area[..., 0] - area[..., 1] >= 80) & (area[..., 0] - area[..., 2] >= 80)
    found = bounding_box(long_runs(red, 120), min_pixels=120 * 12)
    if found is None:
        return None
    return Box(
        window.left + found.left, window.top + found.top, window.left + found.right, window.top + found.bottom
    )


def _bring_account_forward(display: Display, window: int) -> None:
    """View → Blotter and View → Positions off (the 3rd and 4th entries: Watchlist, Order ticket,
    Blotter, Positions, Account, …), leaving the account panel alone in its place."""
    display.xdotool("windowactivate", "--sync", str(window))
    for downs in (2, 3):
        display.xdotool("key", "alt+v")
        display.xdotool("key", *(["Down"] * downs), "Return")


def test_kill_switch_then_resume_with_a_reason(
    start_terminal: Callable[..., Terminal], display: Display, screen: ScreenGrabber
) -> None:
    heron = start_terminal()
    window_id = heron.wait_window()
    heron.wait_log(r"start-up reconciliation: clean", timeout=60)
    until("trading ACTIVE in the state report", lambda: _trading_state(heron) == "ACTIVE" or None, 20)
    window = client_box(display, window_id)
    path, shot = screen.grab("active")
    status = _status_rows(shot, window)
    assert _red_in(shot, status) is None, f"the status bar is red while trading is ACTIVE ({path})"

    # pull the kill switch: the account panel's button, then Yes in its confirmation
    _bring_account_forward(display, window_id)

    def kill_button() -> Box | None:
        return _kill_button(screen.grab("account")[1], window, status.top)

    button = until(f"the KILL SWITCH button on the screen (grabs in {screen.folder})", kill_button, 15)
    assert button.bottom - button.top + 1 >= 15, f"the kill switch is a {button} strip"
    click(display, *button.centre)
    confirm = heron.dialog("^Kill switch$")
    display.xdotool("windowactivate", "--sync", str(confirm))  # the keys go to the dialog
    display.xdotool("key", "alt+y")

    # HALTED: white on red in the status bar, and in the state report
    def halted_red() -> Box | None:
        return _red_in(screen.grab("halted")[1], status) if _trading_state(heron) == "HALTED" else None

    red = until(f"the red HALTED status (grabs in {screen.folder})", halted_red, 20)
    assert red.width >= 150, f"the HALTED label is {red.width} px wide"
    heron.wait_log(r"KILL SWITCH pulled by \S+ \(kill switch \(account panel\)\)", timeout=10)

    # Resume trading…: the button right of the red label
    click(display, red.right + 30, red.centre[1])
    dialog = heron.dialog("^Resume trading$")
    display.xdotool("windowactivate", "--sync", str(dialog))

    # an empty reason, then a blank one: refused, the dialog stays and trading stays HALTED
    def still_refused() -> str | None:
        if dialog not in display.windows(pid=heron.proc.pid, name="^Resume trading$"):
            return "the dialog closed without a reason"
        state = _trading_state(heron)
        return None if state == "HALTED" else f"trading is {state}"

    display.xdotool("key", "Return")
    holds_for("an empty reason is refused", still_refused, 2.5)
    display.xdotool("type", "   ")
    display.xdotool("key", "Return")
    holds_for("a blank reason is refused", still_refused, 2.5)
    assert not re.search(r"resume trading by", heron.log_text()), "resumed without a reason"

    # a reason: the HALT is lifted
    display.xdotool("key", "ctrl+a")
    display.xdotool("type", "--delay", "5", REASON)
    display.xdotool("key", "Return")
    until(
        "the reason dialog closed",
        lambda: not display.windows(pid=heron.proc.pid, name="^Resume trading$") or None,
        10,
    )
    until("trading ACTIVE again in the state report", lambda: _trading_state(heron) == "ACTIVE" or None, 20)

    def red_gone() -> bool | None:
        now = screen.grab("resumed")[1]
        return _red_in(now, status) is None or None

    until(f"the red HALTED status gone (grabs in {screen.folder})", red_gone, 10)
    heron.wait_log(r"resume trading by \S+ \(" + re.escape(REASON) + r"\)", timeout=10)
