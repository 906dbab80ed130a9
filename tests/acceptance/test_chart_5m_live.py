"""A 5m bar updates within its minute (issue 15: "Every timeframe (1m, 5m, 15m, 1h, 1d) updates live
(today only 1m does)").

The person clicks the chart toolbar's 5m button (the button right of the checked 1m one: the checked
button is filled and underlined in ``ChartColors.button_checked_accent``). The local exchange's
simulator trades AAPL all the time; each trade reaches Heron as a partial minute bar, which the chart
merges into the forming five-minute bar (app/qt/panels/feeds.py ``ChartFeeder``). The state report's
``chart`` section carries the chart's newest bar and the readout line above the plot as drawn
(docs/state-report.md); the test waits for that bar and that line to change twice within a minute
after the switch: loading the five-minute history and seeding the forming bar from the minutes the
exchange already has is one change, a live update is the next.
"""

from __future__ import annotations

import time
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
    long_runs,
    near,
    until,
)
from widgets.theme import ChartColors

pytestmark = pytest.mark.acceptance


def _chart(heron: Terminal) -> dict[str, Any]:
    return (heron.report() or {}).get("chart") or {}


def _checked_timeframe(shot: np.ndarray[Any, Any], window: Box) -> Box | None:
    """The checked timeframe button: its accent underline (a short run, 12 to 120 px) under the
    filled button colour."""
    area = shot[window.top : window.top + window.height // 3, window.left : window.right + 1]
    accent = long_runs(near(area, ChartColors.button_checked_accent, 6), 12)
    too_long = long_runs(accent, 121)
    accent &= ~too_long
    filled = near(area, ChartColors.button_checked, 4)
    for row in map(int, np.flatnonzero(accent.any(axis=1))):
        cols = np.flatnonzero(accent[row])
        if row >= 4 and filled[row - 4, cols[0] : cols[-1] + 1].mean() >= 0.6:
            found = bounding_box(accent[row : row + 3], min_pixels=12)
            assert found is not None
            return Box(
                window.left + found.left,
                window.top + row,
                window.left + found.right,
                window.top + row + found.bottom,
            )
    return None


def test_a_5m_bar_updates_within_its_minute(
    start_terminal: Callable[..., Terminal], display: Display, screen: ScreenGrabber
) -> None:
    heron = start_terminal()
    window_id = heron.wait_window()
    heron.wait_log(r"start-up reconciliation: clean", timeout=60)

    def one_minute_bars() -> dict[str, Any] | None:
        chart = _chart(heron)
        return chart if chart.get("timeframe") == "1Min" and chart.get("last_bar") else None

    until("the chart's 1m bars in the state report", one_minute_bars, 30)
    window = client_box(display, window_id)
    one_minute = until(
        f"the checked 1m button (grabs in {screen.folder})",
        lambda: _checked_timeframe(screen.grab("1m")[1], window),
        10,
    )
    # 5m is the next button: as wide as "1m", one layout spacing (4 px) to the right
    click(display, one_minute.right + 4 + one_minute.width // 2, one_minute.top - 8)
    display.xdotool("mousemove", "0", "0")  # no tooltip over the readout, no crosshair on the plot

    def five_minute_bar() -> dict[str, Any] | None:
        chart = _chart(heron)
        return chart if chart.get("timeframe") == "5Min" and chart.get("last_bar") else None

    first = until("the chart on 5m bars (state report)", five_minute_bar, 30)
    switched = time.monotonic()
    checked = _checked_timeframe(screen.grab("5m")[1], window)
    assert checked is not None and checked.left > one_minute.right, f"5m is not shown checked: {checked}"
    assert " 5m " in first["readout"], first["readout"]

    # the readout line under the toolbar, from the symbol box on: the newest bar's numbers, as drawn
    readout = np.s_[
        one_minute.bottom + 3 : one_minute.bottom + 22, one_minute.left - 110 : one_minute.left + 600
    ]
    first_pixels = screen.grab("5m-first")[1][readout]
    seen = [first]

    def changed() -> dict[str, Any] | None:
        now = five_minute_bar()
        if now is None or (now["last_bar"], now["readout"]) == (seen[-1]["last_bar"], seen[-1]["readout"]):
            return None
        seen.append(now)
        return now if len(seen) >= 3 else None

    until(f"the forming 5m bar to change twice from {first['last_bar']}", changed, 60, every=0.5)
    until(
        f"the readout line redrawn (grabs in {screen.folder})",
        lambda: bool((screen.grab("5m-later")[1][readout] != first_pixels).any()) or None,
        10,
    )
    print(f"5m bar changed twice {time.monotonic() - switched:.1f} s after the switch: "
          f"{[s['last_bar'] for s in seen]}")  # fmt: skip
