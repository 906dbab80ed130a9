"""The price chart: numpy bar store, vectorised candlestick items and the ChartPanel widget.

The package attributes are resolved lazily: importing ``widgets.chart.store`` (numpy only) must
not pull in PySide6 and pyqtgraph (~0.3-0.6 s). The indicator maths is ``services.indicators``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from widgets.chart.indicators import INDICATORS
    from widgets.chart.panel import ChartPanel
    from widgets.chart.store import BarStore, LiveBar
    from widgets.chart.toolbar import normalize_timeframe

__all__ = ["INDICATORS", "BarStore", "ChartPanel", "LiveBar", "normalize_timeframe"]

_WHERE = {
    "INDICATORS": "widgets.chart.indicators",
    "ChartPanel": "widgets.chart.panel",
    "normalize_timeframe": "widgets.chart.toolbar",
    "BarStore": "widgets.chart.store",
    "LiveBar": "widgets.chart.store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'widgets.chart' has no attribute {name!r}")
    return getattr(import_module(module), name)
