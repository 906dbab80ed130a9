"""The chart toolbar shows which toggles are on; indicators carry a legend with their parameters, can
be given other parameters, and the choice survives a restart (saved in the settings file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.context import Services
from app.qt.panels.spec import PanelEnv
from app.qt.panels.trading import TradingPanels, _link, _watchlist, install_chart
from app.settings import Settings, load
from services.domain.bus import EventBus
from services.domain.enums import Mode, Timeframe
from services.indicators import series
from services.marketdata.book import QuoteBook
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.chart.panel import ChartPanel
from widgets.chart.sample import random_walk_bars
from widgets.main_window import MainWindow
from widgets.order_ticket import OrderTicket
from widgets.theme import ChartColors
from widgets.watchlist import WatchlistPanel

qloop = trading_rig.qloop
rig = trading_rig.rig


@pytest.fixture
def panel(qtbot) -> ChartPanel:  # type: ignore[no-untyped-def]
    p = ChartPanel(visible_bars=100)
    qtbot.addWidget(p)
    p.resize(1000, 600)
    p.show()
    qtbot.waitExposed(p)
    p.set_history("AAPL", "1Min", random_walk_bars(600, seed=3))
    return p


def pixel(button: QtWidgets.QToolButton, x: int, y: int) -> str:
    image = button.grab().toImage()
    ratio = image.devicePixelRatio()
    return QtGui.QColor(image.pixel(round(x * ratio), round(y * ratio))).name()


def test_toggle_buttons_look_checked_when_on(panel: ChartPanel) -> None:
    five = panel.timeframe_buttons[Timeframe.MIN_5]
    one = panel.timeframe_buttons[Timeframe.MIN_1]
    assert one.isChecked() and not five.isChecked()
    # Inside the border, clear of the text: filled when on, the chart's background when off.
    assert pixel(one, 3, one.height() // 2) == ChartColors.button_checked
    assert pixel(five, 3, five.height() // 2) != ChartColors.button_checked
    sma = panel.indicator_buttons["SMA"]
    assert pixel(sma, 3, sma.height() // 2) != ChartColors.button_checked
    sma.click()
    assert sma.isChecked()
    assert pixel(sma, 3, sma.height() // 2) == ChartColors.button_checked
    # An indicator's button is underlined in its line's colour.
    assert pixel(sma, sma.width() // 2, sma.height() - 1) == ChartColors.sma


def test_the_legend_names_each_indicator_with_its_parameters_in_its_colour(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    legend = panel.viewport.price_legend
    assert not legend.isVisible()
    with qtbot.waitSignal(panel.indicatorsChanged) as changed:
        panel.set_indicator("SMA", True)
    assert changed.args[0]["SMA"] == {"on": True, "period": 20}
    panel.set_indicator("BB", True)
    panel.set_indicator("RSI", True)
    assert panel.legend_entries() == [
        ("SMA(20)", ChartColors.sma),
        ("BB(20, 2)", ChartColors.bollinger),
        ("RSI(14)", ChartColors.rsi),
    ]
    assert legend.isVisible() and legend.toPlainText().split() == ["SMA(20)", "BB(20,", "2)"]
    assert f"color:{ChartColors.sma}" in legend.toHtml().replace(" ", "")
    osc = panel.viewport.oscillator_legend
    assert osc.isVisible() and osc.toPlainText() == "RSI(14)"
    panel.set_indicator("BB", False)
    assert legend.toPlainText() == "SMA(20)"


def test_new_parameters_redraw_the_indicator_and_its_legend(panel: ChartPanel, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel.set_indicator("SMA", True)
    dialog = panel.toolbar.edit_parameters("SMA")
    dialog.boxes["period"].setValue(50)
    with qtbot.waitSignal(panel.indicatorsChanged) as changed:
        dialog.accept()
    assert changed.args[0]["SMA"] == {"on": True, "period": 50}
    assert panel.legend_entries() == [("SMA(50)", ChartColors.sma)]
    (values,) = panel.indicator_values("SMA")
    want = series.sma(panel.store.column("c"), 50)
    np.testing.assert_allclose(values, want, equal_nan=True)
    assert "(50)" in panel.indicator_buttons["SMA"].toolTip()
    with pytest.raises(ValueError, match="period must be a number from 1 to 1000"):
        panel.set_indicator_parameters("SMA", {"period": 0})
    with pytest.raises(ValueError, match="VWAP has no parameter 'period'"):
        panel.set_indicator_parameters("VWAP", {"period": 3})
    assert panel.legend_entries() == [("SMA(50)", ChartColors.sma)]


class _Window(MainWindow):
    def __init__(self) -> None:
        super().__init__(Mode.LOCAL)


@pytest.fixture
def windows() -> Iterator[list[_Window]]:
    kept: list[_Window] = []  # open for the test, as the application keeps its window
    yield kept
    kept.clear()


def _start(qtbot, windows: list[_Window], path: Path, settings: Settings) -> ChartPanel:  # type: ignore[no-untyped-def]
    window = _Window()
    windows.append(window)
    qtbot.addWidget(window)
    notes: list[tuple[str, str, str]] = []
    ctx = SimpleNamespace(settings=settings, paths=SimpleNamespace(settings_file=path), bus=EventBus(),
                          notify=lambda *a: notes.append(a))  # fmt: skip
    chart = install_chart(window, ctx, Services(mode=Mode.LOCAL), TradingPanels())  # type: ignore[arg-type]
    assert notes == []
    return chart


def test_the_chosen_indicators_and_parameters_survive_a_restart(qtbot, windows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.json"
    chart = _start(qtbot, windows, path, Settings())
    chart.set_indicator_parameters("RSI", {"period": 9})
    chart.set_indicator("RSI", True)
    chart.set_indicator("EMA", True)
    chart.set_indicator_parameters("BB", {"k": 2.5})  # changed while off: remembered, still off
    assert path.exists()

    again = _start(qtbot, windows, path, load(path))
    assert again.enabled_indicators() == ["EMA", "RSI"]
    assert again.legend_entries() == [("EMA(50)", ChartColors.ema), ("RSI(9)", ChartColors.rsi)]
    assert again.indicator_state()["BB"] == {"on": False, "period": 20, "k": 2.5}


@pytest.mark.expected_log(r"a saved chart indicator was left off: unknown indicator 'MACD'")
def test_a_saved_indicator_heron_does_not_know_is_left_off(qtbot, windows, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings()
    settings.chart.indicators = {"MACD": {"on": True}, "SMA": {"on": True, "period": 30}}
    chart = _start(qtbot, windows, tmp_path / "settings.json", settings)
    assert chart.enabled_indicators() == ["SMA"] and chart.legend_entries() == [("SMA(30)", ChartColors.sma)]


def test_the_symbol_box_refuses_what_the_broker_does_not_list_and_links_what_it_does(  # type: ignore[no-untyped-def]
    qtbot, windows, rig: Rig, qloop, tmp_path: Path
) -> None:
    window = _Window()
    windows.append(window)
    qtbot.addWidget(window)
    panels = TradingPanels(
        watchlist=WatchlistPanel(rig.book, rig.bus, ["AAPL", "MSFT"]), ticket=OrderTicket(rig.engine)
    )
    _link(window, panels, {"symbol": ""})  # type: ignore[arg-type]
    ctx = SimpleNamespace(settings=Settings(), paths=SimpleNamespace(settings_file=tmp_path / "s.json"),
                          bus=rig.bus, notify=lambda *a: None)  # fmt: skip
    chart = install_chart(window, ctx, Services(mode=Mode.LOCAL, broker=rig.broker), panels)  # type: ignore[arg-type]
    window.show()
    assert panels.watchlist is not None and panels.ticket is not None
    panels.watchlist.select_symbol("AAPL")
    assert panels.ticket.symbol_edit.text() == "AAPL"
    message = chart.toolbar.symbol_message
    requested: list[str] = []
    chart.symbolRequested.connect(requested.append)

    def enter(text: str) -> None:
        chart.symbol_edit.clear()
        qtbot.keyClicks(chart.symbol_edit, text)
        qtbot.keyClick(chart.symbol_edit, QtCore.Qt.Key.Key_Return)

    enter("zzzz")
    refusal = "ZZZZ is not an asset the broker lists: check the spelling (crypto pairs as BTC/USD)"
    settle_until(qloop, "the refusal", lambda: message.text() == refusal)
    assert message.isVisible() and message.toolTip() == refusal == chart.symbol_edit.toolTip()
    assert requested == [] and panels.ticket.symbol_edit.text() == "AAPL"
    assert panels.watchlist.selected_symbol() == "AAPL"

    enter("msft")  # listed by the broker and in the watchlist: like a click on its row
    settle_until(qloop, "MSFT charted", lambda: requested == ["MSFT"])
    assert not message.isVisible()
    assert panels.ticket.symbol_edit.text() == "MSFT" and panels.watchlist.selected_symbol() == "MSFT"

    enter("TSLA")  # listed by the broker, not watched: the ticket follows, the watchlist stays as it is
    settle_until(qloop, "TSLA charted", lambda: requested == ["MSFT", "TSLA"])
    assert panels.ticket.symbol_edit.text() == "TSLA" and panels.watchlist.symbols() == ["AAPL", "MSFT"]
    panels.ticket.close()


def _chart_and_watchlist(qtbot, windows: list[_Window], broker: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The chart and the watchlist as the window builds them, over ``broker``."""
    window = _Window()
    windows.append(window)
    qtbot.addWidget(window)
    ctx = SimpleNamespace(settings=Settings(), paths=SimpleNamespace(settings_file=tmp_path / "s.json"),
                          bus=EventBus(), notify=lambda *a: None)  # fmt: skip
    services = Services(mode=Mode.LOCAL, broker=broker, book=QuoteBook())  # type: ignore[arg-type]
    watchlist = _watchlist(PanelEnv(ctx, services))  # type: ignore[arg-type]
    qtbot.addWidget(watchlist)
    chart = install_chart(window, ctx, services, TradingPanels())  # type: ignore[arg-type]
    return chart, watchlist


def _enter(qtbot, edit: QtWidgets.QLineEdit, text: str) -> None:  # type: ignore[no-untyped-def]
    edit.clear()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Return)


def test_the_chart_checks_symbols_against_the_watchlists_asset_list(  # type: ignore[no-untyped-def]
    qtbot, windows, rig: Rig, qloop, tmp_path: Path
) -> None:
    chart, watchlist = _chart_and_watchlist(qtbot, windows, rig.broker, tmp_path)
    requested: list[str] = []
    chart.symbolRequested.connect(requested.append)
    rig.broker.calls.clear()
    _enter(qtbot, chart.symbol_edit, "zzzz")
    message = chart.toolbar.symbol_message
    settle_until(qloop, "the chart's refusal", lambda: message.text().startswith("ZZZZ is"))
    _enter(qtbot, watchlist.add_edit, "zzzz")
    settle_until(qloop, "the watchlist's refusal", lambda: watchlist.error_label.text().startswith("ZZZZ is"))
    assert message.text() == watchlist.error_label.text() != ""  # one message for an unknown symbol
    _enter(qtbot, chart.symbol_edit, "msft")
    settle_until(qloop, "MSFT charted", lambda: requested == ["MSFT"])
    # one list for both boxes, fetched once; no per-symbol asking
    assert rig.broker.calls.count("get_assets") == 1 and "get_asset" not in rig.broker.calls


class _Unreachable:
    async def get_assets(self) -> list[object]:
        raise ConnectionError("connection refused")


def test_a_symbol_is_charted_with_a_note_when_the_asset_list_cannot_be_had(  # type: ignore[no-untyped-def]
    qtbot, windows, qloop, tmp_path: Path
) -> None:
    chart, _watchlist_panel = _chart_and_watchlist(qtbot, windows, _Unreachable(), tmp_path)
    requested: list[str] = []
    chart.symbolRequested.connect(requested.append)
    _enter(qtbot, chart.symbol_edit, "aapl")
    settle_until(qloop, "AAPL charted", lambda: requested == ["AAPL"])
    note = chart.toolbar.symbol_message
    assert not note.isHidden() and note.text().startswith("AAPL not checked:")
    assert "connection refused" in note.text()
