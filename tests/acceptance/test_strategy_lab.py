"""A trader opens Strategies → Strategy lab… with its shortcut, types a small grid over the SMA
crossover with the keyboard and presses Return: a real sweep runs on a local Dask cluster over the
local exchange's history, the heatmap fills with the theme's gain and loss colours, the log says the
sweep completed with every point, and the lab fits the screen."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.acceptance.support import Display, ScreenGrabber, Terminal, bounding_box, long_runs, near, until
from widgets import theme

pytestmark = pytest.mark.acceptance


def test_a_grid_sweep_from_the_strategies_menu_fills_the_lab(
    start_terminal: Callable[..., Terminal], display: Display, screen: ScreenGrabber
) -> None:
    heron = start_terminal()
    window = heron.wait_window()
    heron.wait_log(r"window usable: panels installed", timeout=90)
    display.xdotool("mousemove", "0", "0")  # no tooltip under the pointer
    display.xdotool("windowactivate", "--sync", str(window))
    display.xdotool("key", "ctrl+shift+l")
    lab = heron.dialog(r"^Strategy lab$", timeout=30)
    display.xdotool("windowactivate", "--sync", str(lab))
    # the keyboard starts on the strategy (sma_crossover); then qty, fast, slow, allow short, symbols, days
    keys = [("Tab Tab", "2, 3, 5"), ("Tab", "10, 20"), ("Tab Tab Tab", "3")]
    for tabs, text in keys:
        display.xdotool("key", *tabs.split())
        display.xdotool("key", "ctrl+a")
        display.xdotool("type", "--delay", "20", text)
    display.xdotool("key", "Return")  # the default button: Start sweep
    heron.wait_log(r"sweep \w+ started on local cluster", timeout=30)
    done = heron.wait_log(r"sweep \w+ (completed|failed|cancelled): (\d+) of (\d+) points, (\d+) failed", 240)
    assert done[1] == "completed" and done[2] == done[3] == "6" and done[4] == "0", done[0]

    geometry = display.geometry(lab)
    assert geometry.width <= display.width and geometry.height <= display.height

    def filled() -> object | None:
        _, pixels = screen.grab("lab")
        top, left = max(0, geometry.y), max(0, geometry.x)
        inside = pixels[top : geometry.y + geometry.height, left : geometry.x + geometry.width]
        # the best cell is drawn in UP and, on a scale from worst to best, the worst in DOWN: solid
        # blocks of them, not the thin strokes of a status line's letters
        cells = long_runs(near(inside, theme.UP, 4) | near(inside, theme.DOWN, 4), 30)
        return bounding_box(cells, min_pixels=600)

    until("heatmap cells in the gain and loss colours", filled, 15)
