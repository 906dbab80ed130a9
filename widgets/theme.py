"""The dark (default) and light themes: a Fusion palette plus ``resources/style.qss``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STYLE_SHEET = Path(__file__).resolve().parents[1] / "resources" / "style.qss"

# -- named colour roles: every colour a panel draws with comes from here -------------------------
#: gains, buys, healthy and "ok" states
UP = "#26a69a"
#: losses, sells, errors, failed and halted states
DOWN = "#ef5350"
#: caution: reducing, connecting, slow, a warning
WARN = "#ffb300"
#: secondary text and inactive states
MUTED = "#8a93a0"
#: accents and the main line of a plot (the palette's link colour)
INFO = "#5b9bff"
#: an outcome not known yet (a check still running)
PENDING = "#aab2bf"
#: a partially filled order
PARTIAL = "#80cbc4"
#: a critical log line (brighter than an error)
CRITICAL = "#ff5c5c"
#: an informational log line
LOG_TEXT = "#c8ced8"
#: the background of a cell whose local and broker values differ
DIFF_BG = "#4a1c1f"
#: the background of plots (the palette's base colour)
PLOT_BG = "#181b20"
#: reference lines in plots (the 50 % line, the diagonal)
GUIDE = "#3a3f48"
#: a small label badge's background
BADGE_BG = "#2b2f36"
#: the background of a button that acts at once and cannot be undone (the kill switch)
DANGER_BG = "#b71c1c"
#: the drift banner's background while the worst open incident is critical / a warning
DRIFT_CRITICAL_BG = "#4a1518"
DRIFT_WARNING_BG = "#47360c"
#: a notification toast's background, and the accent of an informational toast
TOAST_BG = "#1f232a"
TOAST_INFO = "#3d7eff"
#: text on a coloured background (a badge, the kill switch)
ON_ACCENT = "#ffffff"
#: the trading-mode badge's background per mode: local exchange, paper, live money
MODE_LOCAL = "#2e7d32"
MODE_PAPER = "#1565c0"
MODE_LIVE = "#d32f2f"
#: successive series in one plot (one per model)
SERIES = (INFO, UP, WARN, DOWN, "#ab47bc", "#8d6e63")


def ok_color(ok: bool | None) -> str:
    """A check's colour: passed, failed, or still running (``None``)."""
    return PENDING if ok is None else (UP if ok else DOWN)


def sign_hex(value: Decimal | float) -> str | None:
    """UP above zero, DOWN below, None at zero."""
    if value > 0:
        return UP
    return DOWN if value < 0 else None


DARK = {
    "window": "#121418",
    "base": PLOT_BG,
    "alt_base": "#1d2127",
    "text": "#e6e9ef",
    "muted": MUTED,
    "button": "#1f232a",
    "highlight": "#2d4f8f",
    "link": INFO,
    "up": UP,
    "down": DOWN,
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
    button_checked = "#2a2e39"  # a toolbar toggle that is on: filled, with a bar in its accent
    button_checked_text = "#ffffff"
    button_checked_accent = INFO  # the timeframe buttons' bar (an indicator's is its line colour)
