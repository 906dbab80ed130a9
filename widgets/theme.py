"""The dark (default) and light themes: a Fusion palette plus ``resources/style.qss``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STYLE_SHEET = Path(__file__).resolve().parents[1] / "resources" / "style.qss"

DARK = {
    "window": "#121418",
    "base": "#181b20",
    "alt_base": "#1d2127",
    "text": "#e6e9ef",
    "muted": "#8a93a0",
    "button": "#1f232a",
    "highlight": "#2d4f8f",
    "link": "#5b9bff",
    "up": "#26a69a",
    "down": "#ef5350",
}


def dark_palette() -> QPalette:
    c = {k: QColor(v) for k, v in DARK.items()}
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Window, c["window"])
    pal.setColor(QPalette.ColorRole.WindowText, c["text"])
    pal.setColor(QPalette.ColorRole.Base, c["base"])
    pal.setColor(QPalette.ColorRole.AlternateBase, c["alt_base"])
    pal.setColor(QPalette.ColorRole.ToolTipBase, c["button"])
    pal.setColor(QPalette.ColorRole.ToolTipText, c["text"])
    pal.setColor(QPalette.ColorRole.PlaceholderText, c["muted"])
    pal.setColor(QPalette.ColorRole.Text, c["text"])
    pal.setColor(QPalette.ColorRole.Button, c["button"])
    pal.setColor(QPalette.ColorRole.ButtonText, c["text"])
    pal.setColor(QPalette.ColorRole.BrightText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Highlight, c["highlight"])
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.Link, c["link"])
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, c["muted"])
    return pal


def apply_theme(app: QApplication, theme: str = "dark") -> None:
    """Apply ``theme`` ("dark" or "light") to the whole application. GUI thread only."""
    app.setStyle("Fusion")
    if theme == "dark":
        app.setPalette(dark_palette())
        try:
            app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))
        except OSError:
            app.setStyleSheet("")  # the palette alone is a usable dark theme
    else:
        app.setPalette(app.style().standardPalette())
        app.setStyleSheet("")


class ChartColors:
    """Colour roles of the price chart (``widgets/chart``): a dark canvas under either theme."""

    background = "#131722"
    foreground = "#b2b5be"  # axis labels and the crosshair's price label
    grid = "#232734"
    axis = "#363a45"
    up = DARK["up"]  # rising candles, buy fills and buy order lines
    down = DARK["down"]  # falling candles, sell fills, sell order lines, a rejected symbol
    crosshair = "#787b86"
    crosshair_label = "#2a2e39"
    order_label = "#1e222d"
    fill_edge = "#0b0e14"
    oscillator_level = "#5d606b"  # the RSI pane's 30 / 70 lines
    sma = "#f7c948"
    ema = "#42a5f5"
    vwap = "#ab47bc"
    bollinger = "#8d9bb5"
    rsi = "#ffb74d"
