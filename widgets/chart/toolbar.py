"""The chart's toolbar (symbol entry, timeframe and indicator buttons) and its loading status."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from PySide6 import QtCore, QtGui, QtWidgets

from services.broker.assets import not_listed
from services.domain.enums import Timeframe
from services.domain.models import Asset
from services.domain.symbols import InvalidSymbolError, normalize_symbol
from widgets.chart.indicators import PARAMETER_RANGES, Indicator, legend_text
from widgets.tasks import run_async
from widgets.theme import MUTED, ChartColors

#: Looks a symbol up in the broker's asset list (:meth:`services.broker.assets.AssetDirectory.resolve`,
#: the list the watchlist checks against): its asset, None when the broker lists no such asset;
#: raises when the list cannot be had.
SymbolCheck = Callable[[str], Awaitable[Asset | None]]

TIMEFRAME_LABELS: Final[dict[Timeframe, str]] = {
    Timeframe.MIN_1: "1m",
    Timeframe.MIN_5: "5m",
    Timeframe.MIN_15: "15m",
    Timeframe.HOUR_1: "1h",
    Timeframe.DAY_1: "1d",
}
_SYMBOL_TIP: Final = "Type a symbol and press Enter"


def button_style(accent: str) -> str:
    """A toggle button that shows its state: outlined when off, filled with a bar in ``accent``
    (the indicator's line colour, or the highlight for timeframes) when on."""
    c = ChartColors
    return (
        f"QToolButton {{ color: {c.foreground}; background: transparent; border: 1px solid {c.axis};"
        " border-radius: 3px; padding: 2px 6px; }"
        f"QToolButton:hover {{ border-color: {c.crosshair}; }}"
        f"QToolButton:checked {{ color: {c.button_checked_text}; background: {c.button_checked};"
        f" border: 1px solid {c.button_checked}; border-bottom: 2px solid {accent}; }}"
    )


def _snug(button: QtWidgets.QToolButton) -> None:
    """As wide as its label with the style's padding (6 px a side) and border: the style's own size
    hint adds a dozen pixels more a button, and ten of them crowd the symbol box out of a chart
    pane on a 1366-px screen."""
    button.setFixedWidth(button.fontMetrics().horizontalAdvance(button.text()) + 18)


def normalize_timeframe(value: str | Timeframe) -> Timeframe:
    """Accept ``Timeframe``, Alpaca spelling (``"5Min"``) or the button label (``"5m"``)."""
    if isinstance(value, Timeframe):
        return value
    text = str(value).strip()
    for tf, label in TIMEFRAME_LABELS.items():
        if text in (tf.value, label) or text.lower() == tf.value.lower():
            return tf
    raise ValueError(f"unknown timeframe {value!r}; expected one of {[t.value for t in Timeframe]}")


class ChartToolbar:
    """The toolbar row. The callbacks get a normalised symbol, a picked timeframe, and an
    indicator name with its new on/off state."""

    def __init__(
        self,
        owner: QtWidgets.QWidget,
        indicators: Mapping[str, Indicator],
        *,
        on_symbol: Callable[[str], None],
        on_timeframe: Callable[[Timeframe], None],
        on_indicator: Callable[[str, bool], None],
        on_parameters: Callable[[str, dict[str, float]], None] | None = None,
    ) -> None:
        self._on_symbol = on_symbol
        self._on_parameters = on_parameters
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 0)
        bar.setSpacing(4)
        self.symbol_edit = QtWidgets.QLineEdit()
        self.symbol_edit.setObjectName("chartSymbolEdit")
        self.symbol_edit.setPlaceholderText("Symbol")
        self.symbol_edit.setMaximumWidth(110)
        # never narrower than a crypto pair: squeezed by a narrow window, "AAPL" was shown as "APL"
        pad = 2 * self.symbol_edit.style().pixelMetric(QtWidgets.QStyle.PixelMetric.PM_DefaultFrameWidth) + 12
        self.symbol_edit.setMinimumWidth(self.symbol_edit.fontMetrics().horizontalAdvance("BTC/USD") + pad)
        self.symbol_edit.setToolTip(_SYMBOL_TIP)
        self.symbol_edit.returnPressed.connect(self._symbol_entered)
        bar.addWidget(self.symbol_edit)
        self.symbol_check: SymbolCheck | None = None
        self._checking: asyncio.Future[Asset | None] | None = None

        self.timeframe_group = QtWidgets.QButtonGroup(owner)
        self.timeframe_group.setExclusive(True)
        self.timeframe_buttons: dict[Timeframe, QtWidgets.QToolButton] = {}
        for tf, label in TIMEFRAME_LABELS.items():
            btn = QtWidgets.QToolButton()
            btn.setText(label)
            btn.setCheckable(True)
            btn.setObjectName(f"chartTimeframe_{label}")
            btn.setStyleSheet(button_style(ChartColors.button_checked_accent))
            btn.setToolTip(f"{label} bars")
            btn.clicked.connect(lambda _=False, tf=tf: on_timeframe(tf))
            self.timeframe_group.addButton(btn)
            self.timeframe_buttons[tf] = btn
            _snug(btn)
            bar.addWidget(btn)

        sep = QtWidgets.QFrame()
        sep.setFrameShape(QtWidgets.QFrame.Shape.VLine)
        bar.addWidget(sep)
        self.indicator_buttons: dict[str, QtWidgets.QToolButton] = {}
        for name, indicator in indicators.items():
            btn = QtWidgets.QToolButton()
            btn.setText(name)
            btn.setCheckable(True)
            btn.setObjectName(f"chartIndicator_{name}")
            btn.setToolTip(self.indicator_tip(indicator))
            btn.setStyleSheet(button_style(indicator.lines[0].color))
            btn.toggled.connect(lambda on, name=name: on_indicator(name, on))
            if indicator.parameters and on_parameters is not None:
                btn.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
                btn.customContextMenuRequested.connect(lambda _pos, name=name: self.edit_parameters(name))
            self.indicator_buttons[name] = btn
            _snug(btn)
            bar.addWidget(btn)
        bar.addStretch(1)
        # Why a symbol was refused (or could not be checked): beside the toolbar, elided, never
        # widening the window; the whole text is its tooltip.
        self.symbol_message = ElidedLabel()
        self.symbol_message.setObjectName("chartSymbolMessage")
        self.symbol_message.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        self.symbol_message.hide()
        self._history_note = False  # the message says why history was refused
        bar.addWidget(self.symbol_message, 2)
        self.layout = bar
        self._owner = owner
        self._indicators = dict(indicators)

    def indicator_tip(self, indicator: Indicator) -> str:
        tip = indicator.tooltip
        return f"{tip}; right-click to change its parameters" if indicator.parameters else tip

    def indicator_replaced(self, name: str, indicator: Indicator) -> None:
        """Indicator ``name`` has new parameters: its tooltip and the dialog follow."""
        self._indicators[name] = indicator
        self.indicator_buttons[name].setToolTip(self.indicator_tip(indicator))

    def edit_parameters(self, name: str) -> ParametersDialog:
        """Open the parameters dialog of indicator ``name``; OK hands the values to the callback."""
        current = self._indicators[name]
        dialog = ParametersDialog(self._owner, legend_text(current), dict(current.parameters))
        dialog.setObjectName(f"chartParameters_{name}")

        def accepted() -> None:
            if self._on_parameters is not None:
                self._on_parameters(name, dialog.values())

        dialog.accepted.connect(accepted)
        dialog.open()
        return dialog

    def show_series(self, symbol: str, timeframe: Timeframe) -> None:
        self.symbol_edit.setText(symbol)
        self.timeframe_buttons[timeframe].setChecked(True)

    def history_refused(self, shown: tuple[str, Timeframe], what: str, why: str) -> None:
        """The bars asked for could not be shown: the symbol box and the selected timeframe go back
        to the ``shown`` series (the bars still on the chart), and the message says what failed."""
        symbol, timeframe = shown
        if symbol:
            self.symbol_edit.setText(symbol)
        self.timeframe_buttons[timeframe].setChecked(True)
        self._note(f"{what}: {why}", ChartColors.down)  # elided where it is cut; whole in the tooltip
        self._history_note = True

    def clear_history_note(self) -> None:
        """A new series was asked for: an earlier history refusal no longer applies."""
        if self._history_note:
            self._history_note = False
            self.symbol_message.hide()

    def _symbol_entered(self) -> None:
        """Enter in the symbol box: the spelling is checked here, then the broker's asset list is
        asked whether it has the symbol; only a symbol it lists is charted (one the list could not
        be had for is charted with a note that it was not checked)."""
        text = self.symbol_edit.text()
        try:
            sym = normalize_symbol(text)
        except InvalidSymbolError as exc:
            self._refuse("Not a symbol", str(exc))
            return
        self.symbol_edit.setText(sym)
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
        if self.symbol_check is None:
            self._accept(sym, "")
            return
        self._note(f"Checking {sym}…", MUTED)
        self._checking = run_async(
            self.symbol_check(sym), lambda asset, error: self._checked(sym, asset, error), log_errors=False
        )

    def _checked(self, sym: str, asset: Asset | None, error: BaseException | None) -> None:
        if isinstance(error, asyncio.CancelledError):
            return  # another symbol was entered meanwhile
        if error is not None:  # the broker could not answer: chart it, and say it was not checked
            self._accept(sym, f"{sym} not checked: {error}")
        elif asset is None:
            message = not_listed(sym)
            self._refuse(message, message)
        else:
            self._accept(sym, "")

    def _accept(self, sym: str, note: str) -> None:
        self.symbol_edit.setToolTip(_SYMBOL_TIP)
        self.symbol_edit.setStyleSheet("")
        if note:
            self._note(note, MUTED)
        else:
            self.symbol_message.hide()
        self._on_symbol(sym)

    def _refuse(self, what: str, why: str) -> None:
        self.symbol_edit.setToolTip(why)
        self.symbol_edit.setStyleSheet(f"border: 1px solid {ChartColors.down};")
        self._note(what, ChartColors.down, why)

    def _note(self, text: str, color: str, detail: str = "") -> None:
        self._history_note = False
        self.symbol_message.setText(text)
        self.symbol_message.setToolTip(f"{text}: {detail}" if detail and detail != text else text)
        self.symbol_message.color = QtGui.QColor(color)
        self.symbol_message.update()
        self.symbol_message.show()


class ElidedLabel(QtWidgets.QLabel):
    """A one-line label that ends in "…" where it is cut (its tooltip holds the whole text)."""

    color = QtGui.QColor(MUTED)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideRight, self.width())
        painter.setPen(self.color)
        painter.drawText(self.rect(), int(QtCore.Qt.AlignmentFlag.AlignVCenter), text)


class ParametersDialog(QtWidgets.QDialog):
    """One spin box per parameter of an indicator, within its allowed range."""

    def __init__(self, parent: QtWidgets.QWidget, title: str, params: dict[str, float]) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{title} parameters")
        form = QtWidgets.QFormLayout(self)
        self.boxes: dict[str, QtWidgets.QSpinBox | QtWidgets.QDoubleSpinBox] = {}
        for key, value in params.items():
            lo, hi, whole = PARAMETER_RANGES[key]
            box: QtWidgets.QSpinBox | QtWidgets.QDoubleSpinBox
            if whole:
                box = QtWidgets.QSpinBox()
                box.setRange(int(lo), int(hi))
                box.setValue(int(value))
            else:
                box = QtWidgets.QDoubleSpinBox()
                box.setDecimals(2)
                box.setSingleStep(0.1)
                box.setRange(lo, hi)
                box.setValue(float(value))
            box.setObjectName(f"parameter_{key}")
            form.addRow(key.capitalize(), box)
            self.boxes[key] = box
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict[str, float]:
        return {key: box.value() for key, box in self.boxes.items()}


class LoadingStatus:
    """The loading status: "Loading history… 40%" and a thin progress bar; hidden when idle."""

    def __init__(self) -> None:
        self.label = QtWidgets.QLabel()
        self.label.setObjectName("chartLoadingLabel")
        self.label.hide()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("chartLoadingProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(3)
        self.progress.hide()

    def set_fraction(self, fraction: float | None) -> None:
        """Show progress (0..1), or hide it with None. Raises ValueError outside 0..1."""
        if fraction is None:
            self.progress.hide()
            self.label.hide()
            return
        f = float(fraction)
        if not math.isfinite(f) or not 0.0 <= f <= 1.0:
            raise ValueError(f"loading fraction must be within 0..1, got {fraction!r}")
        self.progress.setValue(round(f * 1000))
        self.label.setText(f"Loading history… {f:.0%}")
        self.progress.show()
        self.label.show()
