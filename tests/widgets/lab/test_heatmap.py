"""The lab's heatmap: the best point per cell, refused and pending cells, theme colours, hover words."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor

from services.lab.model import PointResult
from widgets import theme
from widgets.lab.heatmap import ColorScale, HeatGrid, Heatmap

SPACE = {"fast": (2, 3, 5), "slow": (3, 10, 20), "allow_short": (False, True)}


def point(fast: int, slow: int, short: bool, sharpe: float | None, *, error: str | None = None,
          phase: str = "sweep") -> PointResult:  # fmt: skip
    metrics = None if error else {"sharpe": sharpe, "max_drawdown": 0.1, "total_return": 0.0}
    params = {"fast": fast, "slow": slow, "allow_short": short}
    return PointResult(f"{fast}-{slow}-{short}", params, metrics, error, phase=phase)


def grid() -> HeatGrid:
    g = HeatGrid.build("fast", "slow", SPACE, "sharpe")
    every = [
        {"fast": f, "slow": s, "allow_short": b}
        for f in (2, 3, 5)
        for s in (3, 10, 20)
        for b in (False, True)
    ]
    g.expect([p for p in every if p["fast"] < p["slow"]], [p for p in every if p["fast"] >= p["slow"]])
    return g


def test_a_cell_shows_the_best_point_over_the_other_parameters() -> None:
    g = grid()
    assert g.add([point(2, 10, False, 0.4), point(2, 10, True, 1.2), point(2, 10, True, 0.3, error="x")]) == 3
    assert g.add([point(9, 10, False, 5.0), point(2, 10, False, 9.0, phase="out_of_sample")]) == 0
    cell = g.cells[(0, 1)]
    assert g.shown((0, 1)) == 1.2 and cell.best is not None and cell.best.params["allow_short"] is True
    assert (cell.points, cell.errors, cell.expected) == (3, 1, 2)
    assert g.value_range() == (1.2, 1.2)


def test_max_drawdown_is_best_when_smallest() -> None:
    g = HeatGrid.build("fast", "slow", SPACE, "max_drawdown")
    a = PointResult("a", {"fast": 2, "slow": 10, "allow_short": False}, {"max_drawdown": 0.3})
    b = PointResult("b", {"fast": 2, "slow": 10, "allow_short": True}, {"max_drawdown": 0.1})
    g.add([a, b])
    assert g.shown((0, 1)) == 0.1


def test_refused_cells_are_told_apart_from_cells_still_to_come() -> None:
    g = grid()
    assert g.refused((2, 0))  # fast 5, slow 3: fast >= slow, never run
    assert not g.refused((0, 1))
    assert HeatGrid.build("fast", "slow", SPACE, "sharpe").refused((2, 0)) is False  # nothing known yet
    sample = HeatGrid.build("fast", "slow", SPACE, "sharpe")  # a random search drew two points
    sample.expect([{"fast": 2, "slow": 10}, {"fast": 3, "slow": 20}], [{"fast": 5, "slow": 3}])
    assert sample.refused((2, 0)) and not sample.refused((0, 0)) and not sample.refused((2, 2))


def test_colours_come_from_the_theme_and_diverge_at_zero_for_signed_figures() -> None:
    scale = ColorScale("sharpe", -2.0, 1.0)
    assert scale.diverging
    assert scale.color(-2.0) == QColor(theme.DOWN)
    assert scale.color(0.0) == QColor(theme.GUIDE)
    assert scale.color(2.0) == QColor(theme.UP) and scale.ends() == (-2.0, 2.0)
    losses = ColorScale("sharpe", -9.0, -3.0)  # every point lost: all red, none green
    assert losses.diverging and losses.ends() == (-9.0, 9.0)
    assert losses.color(-9.0) == QColor(theme.DOWN) and losses.goodness(-3.0) < 0.5
    drawdown = ColorScale("max_drawdown", 0.05, 0.25)
    assert not drawdown.diverging
    assert drawdown.color(0.05) == QColor(theme.UP) and drawdown.color(0.25) == QColor(theme.DOWN)
    assert ColorScale("sharpe", 0.5, 0.5).color(0.5) == QColor(theme.UP)  # one gain: the most green
    assert ColorScale("trades", 7, 7).color(7) == QColor(theme.UP)  # one value: the best


def test_hover_names_the_cell_its_best_figure_and_the_other_parameters(qtbot: Any) -> None:
    heat = Heatmap()
    qtbot.addWidget(heat)
    heat.resize(500, 360)
    g = grid()
    heat.set_grid(g, ["allow_short"])
    heat.add([point(2, 10, True, 1.25), point(2, 10, False, 0.5, error=None)])
    tip = heat.tooltip_for((0, 1))
    assert tip.splitlines() == ["fast = 2, slow = 10", "Sharpe: 1.250", "best with allow_short = true",
                                "2 of 2 points run"]  # fmt: skip
    assert "refused" in heat.tooltip_for((2, 0)) and "not run yet" in heat.tooltip_for((1, 2))
    sample = HeatGrid.build("fast", "slow", SPACE, "sharpe")
    sample.expect([{"fast": 2, "slow": 10}])
    heat.set_grid(sample)
    assert heat.tooltip_for((1, 2)).endswith("not among the points this search runs")
    assert heat.tooltip_for((0, 1)).endswith("not run yet")
    heat.set_grid(g, ["allow_short"])
    # the point under the mouse is the cell drawn there (the y axis grows upwards)
    rect = heat.cell_rect(0, 1)
    assert heat.cell_at(rect.center().toPoint()) == (0, 1)
    assert heat.cell_at(heat.cell_rect(2, 2).center().toPoint()) == (2, 2)
    assert heat.cell_color((0, 1)) == QColor(theme.UP)
    assert heat.cell_color((2, 0)) == QColor(theme.PLOT_BG) and heat.cell_color((1, 2)) == QColor(
        theme.BADGE_BG
    )
    image = heat.grab().toImage()
    assert image.pixelColor(rect.center().toPoint().x(), int(rect.top()) + 2) == QColor(theme.UP)
