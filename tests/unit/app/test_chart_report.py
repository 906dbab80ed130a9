"""The state report's ``chart`` section (docs/state-report.md): the symbol and timeframe the chart
shows, its newest (forming) bar and the readout line, so a tool or a real-window test reads what the
chart draws."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import numpy as np
import pytest

from app.context import AppContext, Services
from app.report import chart_section, register_chart_report, register_report
from services.domain.enums import Mode
from widgets.chart.panel import ChartPanel

FIVE_MIN_NS = 5 * 60 * 10**9
START = int(datetime(2026, 3, 2, 15, 0, tzinfo=UTC).timestamp()) * 10**9


@pytest.fixture
def chart(qtbot) -> ChartPanel:  # type: ignore[no-untyped-def]
    panel = ChartPanel(visible_bars=50)
    qtbot.addWidget(panel)
    return panel


def _history(n: int) -> dict[str, np.ndarray]:
    close = np.linspace(100.0, 101.0, n)
    return {
        "t": START + np.arange(n, dtype=np.int64) * FIVE_MIN_NS,
        "o": close - 0.05, "h": close + 0.1, "l": close - 0.1, "c": close, "v": np.full(n, 1000.0),
    }  # fmt: skip


def test_the_section_follows_the_forming_bar(chart: ChartPanel) -> None:
    chart.set_history("aapl", "5Min", _history(3))
    first = chart_section(chart)
    assert (first["symbol"], first["timeframe"]) == ("AAPL", "5Min")
    assert first["last_bar"] == {"t": "2026-03-02T15:10:00+00:00", "o": "100.95", "h": "101.1",
                                 "l": "100.9", "c": "101", "v": "1000"}  # fmt: skip
    assert first["readout"] == chart.readout_text() and "5m" in first["readout"]

    # a trade in the same five minutes: the same bar, a new close and volume
    chart.update_last_bar(START + 2 * FIVE_MIN_NS, 100.95, 101.25, 100.9, 101.25, 1250.5)
    after = chart_section(chart)["last_bar"]
    assert (after["t"], after["h"], after["c"], after["v"]) == ("2026-03-02T15:10:00+00:00", "101.25",
                                                                "101.25", "1250.5")  # fmt: skip
    assert chart_section(chart)["readout"] != first["readout"]


def test_an_empty_chart_has_no_last_bar(chart: ChartPanel) -> None:
    section = chart_section(chart)
    assert "last_bar" not in section
    assert section["symbol"] == ""


def test_the_chart_section_does_not_keep_the_service_sections_out(chart: ChartPanel) -> None:
    """The chart may register before the services' sections: both are in the report."""
    services = Services(mode=Mode.LOCAL)
    register_chart_report(services, chart)
    ctx = cast(AppContext, object())  # not read while registering
    register_report(ctx, services)
    register_report(ctx, services)  # once only
    assert len(services.state_sections) == 2
    assert services.state_sections[0]() == {"chart": chart_section(chart)}
