"""The price chart: numpy bar store, vectorised candlestick items and the ChartPanel widget."""

from widgets.chart.panel import INDICATORS, ChartPanel, normalize_timeframe
from widgets.chart.store import BarStore, LiveBar

__all__ = ["INDICATORS", "BarStore", "ChartPanel", "LiveBar", "normalize_timeframe"]
