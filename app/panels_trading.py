"""Installs the trading panels into the main window and connects them to services.

Called once by :func:`app.bootstrap._populate_window` on the GUI thread after services are built.
Reads the service attributes documented on :class:`app.bootstrap.Services` (``book``, ``orders``,
``engine``, ``risk``, ``trading``, ``kill_switch``, ``broker``, ``streams``, ``history``); a
missing service leaves its panel out (with a notification) instead of showing invented data.

Default layout: order ticket on the left, watchlist on the right, blotter / positions / account
tabbed at the bottom, the chart in the middle; first-launch sizes follow an idle turn after the
chart (:func:`_settle_layout`). Watchlist, blotter and positions selections drive the
chart and the ticket; blotter "Duplicate" pre-fills the ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.domain.enums import Timeframe
from services.marketdata.pipeline import MarketDataBatchEvent

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from widgets.account import AccountPanel
    from widgets.blotter import BlotterPanel
    from widgets.chart.panel import ChartPanel
    from widgets.main_window import MainWindow
    from widgets.order_ticket import OrderTicket
    from widgets.positions import PositionsPanel
    from widgets.watchlist import WatchlistPanel

log = logging.getLogger("heron.app.panels")

PANEL_NAMES = ("watchlist", "order_ticket", "blotter", "positions", "account")
CHART_HISTORY = {Timeframe.MIN_1: timedelta(days=3), Timeframe.MIN_5: timedelta(days=10),
                 Timeframe.MIN_15: timedelta(days=30), Timeframe.HOUR_1: timedelta(days=90),
                 Timeframe.DAY_1: timedelta(days=730)}  # fmt: skip


@dataclass
class TradingPanels:
    """What :func:`install` built (tests and the benchmarks reach the panels through it)."""

    watchlist: WatchlistPanel | None = None
    ticket: OrderTicket | None = None
    blotter: BlotterPanel | None = None
    positions: PositionsPanel | None = None
    account: AccountPanel | None = None
    chart: ChartPanel | None = None
    feeder: ChartFeeder | None = None
    missing: dict[str, str] = field(default_factory=dict)


def _save_watchlist(ctx: Any, symbols: list[str]) -> None:
    from app.settings import SettingsError, save

    ctx.settings.watchlist = list(symbols)
    try:
        save(ctx.settings, ctx.paths.settings_file)
    except (SettingsError, OSError) as exc:
        log.error("watchlist not saved: %s", exc)
        ctx.notify("error", "settings", f"the watchlist could not be saved: {exc}")


def build_panel(name: str, ctx: Any, services: Any) -> QWidget:
    """Build one trading panel from the services; raises LookupError naming a missing service."""

    def need(attr: str) -> Any:
        value = getattr(services, attr, None)
        if value is None:
            why = getattr(services, "failures", {}).get(attr, "not running")
            raise LookupError(f"{attr} is not available ({why})")
        return value

    bus = ctx.bus
    if name == "watchlist":
        from widgets.watchlist import WatchlistPanel

        streams = getattr(services, "streams", None)
        history = getattr(services, "history", None)
        book = need("book")

        async def watch(syms: list[str]) -> None:
            if streams is not None:
                await streams.subscribe(syms, trades=True, quotes=True)
            await seed_daily_figures(history, book, syms)

        watchlist = WatchlistPanel(
            book,
            bus,
            ctx.settings.watchlist,
            on_symbols_changed=lambda syms: _save_watchlist(ctx, syms),
            subscribe=watch,
        )
        # Symbols already watched at start-up were subscribed by the app; they still need the
        # previous close (for change %) and the day's volume so far.
        watchlist.seed_task = asyncio.ensure_future(  # type: ignore[attr-defined]
            seed_daily_figures(history, book, list(ctx.settings.watchlist))
        )
        return watchlist
    if name == "order_ticket":
        from widgets.order_ticket import OrderTicket

        return OrderTicket(need("engine"), mode=ctx.mode, confirm_orders=ctx.settings.ui.confirm_orders)
    if name == "blotter":
        from widgets.blotter import BlotterPanel

        return BlotterPanel(need("orders"), need("engine"), bus)
    if name == "positions":
        from widgets.positions import PositionsPanel

        return PositionsPanel(need("orders"), need("book"), need("engine"), bus)
    if name == "account":
        from widgets.account import AccountPanel

        engine = need("engine")
        broker = need("broker")
        panel = AccountPanel(
            refresh_account=engine.refresh_account,
            portfolio_history=lambda: equity_history(broker),
            trading=need("trading"),
            kill_switch=getattr(services, "kill_switch", None),
            bus=bus,
        )
        panel.start()
        return panel
    raise ValueError(f"unknown trading panel {name!r}; known: {', '.join(PANEL_NAMES)}")


async def equity_history(broker: Any) -> Any:
    """The account's equity curve: a month of daily points, or, while the account has fewer than
    two days of history (a new account), today in one-minute points."""
    daily = await broker.get_portfolio_history("1M", "1D")
    if sum(e is not None for e in daily.equity) >= 2:
        return daily
    return await broker.get_portfolio_history("1D", "1Min")


class ChartFeeder:
    """Loads history for the chart's symbol and timeframe and feeds live one-minute bars.

    History comes from ``services.history`` (candle store first, then the broker, on worker
    threads); live bars from the pipeline's partial and closed bars in each batch. Loop (= GUI)
    thread.
    """

    def __init__(self, chart: ChartPanel, history: Any, bus: Any) -> None:
        self.chart = chart
        self.history = history
        self.symbol = ""
        self.timeframe = Timeframe.MIN_1
        self._task: asyncio.Future[Any] | None = None
        self._live_ok = False
        self._sub = bus.subscribe(MarketDataBatchEvent, self.on_batch)
        chart.symbolRequested.connect(self.show)
        chart.timeframeRequested.connect(lambda tf: self.show(self.symbol, tf))

    def show(self, symbol: str, timeframe: str | None = None) -> None:
        if not symbol:
            return
        self.symbol = symbol
        if timeframe is not None:
            self.timeframe = Timeframe(timeframe)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._live_ok = False
        self.chart.set_loading(0.0)
        self._task = asyncio.ensure_future(self._load(symbol, self.timeframe))

    async def _load(self, symbol: str, tf: Timeframe) -> None:
        import numpy as np

        end = datetime.now(UTC) + timedelta(seconds=tf.seconds)
        try:
            bars = await self.history.bars(symbol, tf, end - CHART_HISTORY[tf], end,
                                           progress=self.chart.set_loading)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("chart history for %s %s failed: %s", symbol, tf, exc)
            self.chart.set_loading(None)
            return
        if symbol != self.symbol or len(bars) < 1:
            self.chart.set_loading(None)
            return
        arrays = {
            "t": np.array([int(b.ts.timestamp() * 1e9) for b in bars], dtype=np.int64),
            "o": np.array([float(b.open) for b in bars]),
            "h": np.array([float(b.high) for b in bars]),
            "l": np.array([float(b.low) for b in bars]),
            "c": np.array([float(b.close) for b in bars]),
            "v": np.array([float(b.volume) for b in bars]),
        }
        try:
            self.chart.set_history(symbol, tf, arrays)
        except ValueError as exc:
            log.warning("chart refused history for %s: %s", symbol, exc)
            return
        self._live_ok = tf is Timeframe.MIN_1

    def on_batch(self, event: MarketDataBatchEvent) -> None:
        """Bus handler, once per frame: the live one-minute bar of the shown symbol."""
        if not self._live_ok:
            return
        batch = event.batch
        for bar in (*batch.bars, *batch.partial_bars):
            if bar.symbol != self.symbol:
                continue
            # ValueError: an older bar than the chart's live one (history raced the stream)
            with contextlib.suppress(ValueError):
                self.chart.update_last_bar(bar.ts, float(bar.open), float(bar.high), float(bar.low),
                                           float(bar.close), float(bar.volume))  # fmt: skip

    def close(self) -> None:
        self._sub.cancel()
        if self._task is not None:
            self._task.cancel()


async def seed_daily_figures(history: Any, book: Any, symbols: list[str]) -> int:
    """Give the quote book each symbol's previous close and today's volume from a snapshot, so the
    watchlist can show change % and volume. Runs on the loop thread; REST runs off it (the history
    service's contract). Returns how many symbols got a previous close; failures are logged and
    leave the change column showing "—" rather than a guess."""
    if history is None:
        return 0
    seeded = 0
    for symbol in symbols:
        try:
            snap = await history.snapshot(symbol)
        except Exception as exc:  # the broker's typed errors, or a bad answer: never a crash here
            log.warning("no snapshot for %s (change %% stays unknown): %s", symbol, exc)
            continue
        if snap.previous_close is not None:
            book.set_prev_close(symbol, snap.previous_close)
            seeded += 1
        if snap.daily_bar is not None:
            book.set_day_volume(symbol, snap.daily_bar.volume)
    return seeded


def _settle_layout(window: MainWindow) -> None:
    """Dock sizes once the chart is in the middle: the saved layout's, or first-launch ones.

    Runs an idle turn after the chart is installed. Until then the "loading" note in the middle
    takes no space of its own, so the docks hold what it left them (the watchlist 1,500 px of a
    1,728 px window) and keep it when the chart arrives: a layout restored earlier is restored
    again, and ``resizeDocks`` before this point does not stick. First-launch sizes become the
    layout that View → Reset layout returns to.
    """
    from PySide6.QtCore import Qt

    if window.layout_restored:
        window.restore_layout()
        return
    # The watchlist as wide as its columns, the ticket as wide as its fields, the chart the rest.
    # Sizes, not minimums: the trader can still drag any dock narrower.
    for name, width in (("watchlistPanel", 0), ("orderTicket", 290)):
        dock = window.panel(name)
        if dock is not None:  # one call per dock: a joint call shares the chart's space out too
            window.resizeDocks([dock], [width or dock.widget().sizeHint().width()], Qt.Orientation.Horizontal)
    dock = window.panel("blotterPanel")
    if dock is not None:
        window.resizeDocks([dock], [max(280, round(window.height() * 0.36))], Qt.Orientation.Vertical)
        beside = window.panel("logPanel")  # the operations tabs share the bottom row half and half
        if beside is not None and window.dockWidgetArea(beside) == window.dockWidgetArea(dock):
            half = window.width() // 2
            window.resizeDocks([dock, beside], [half, half], Qt.Orientation.Horizontal)
    window.capture_default_layout()


def install(window: MainWindow, ctx: Any, services: Any, *, defer_plots: bool = False) -> TradingPanels:
    """Add the trading panels (and the chart, if nobody placed one) and connect them.

    ``defer_plots``: the panels drawn with pyqtgraph (the chart, and the account panel's equity
    curve) are built on the event loop's next idle turns instead, so importing pyqtgraph (about
    0.5 s of CPU) and setting up plots is not on the way to a usable window. The composition root
    does this. Until then the account dock (a background tab at first launch) says it is loading,
    the central area says the chart is loading, and a selection still reaches the ticket.
    """
    panels = TradingPanels()
    # The watchlist gets a full-height column of its own: six numeric columns need the width, and a
    # trader scans many rows at once. The ticket stays on the left, the tables below the chart.
    titles = {"watchlist": ("watchlistPanel", "Watchlist", "right", None),
              "order_ticket": ("orderTicket", "Order ticket", "left", None),
              "blotter": ("blotterPanel", "Blotter", "bottom", None),
              "positions": ("positionsPanel", "Positions", "bottom", "blotterPanel"),
              "account": ("accountPanel", "Account", "bottom", "blotterPanel")}  # fmt: skip
    built: dict[str, Any] = {}
    window_plots: list[str] = []
    for name in PANEL_NAMES:
        object_name, title, area, tab_with = titles[name]
        try:
            if defer_plots and name == "account":
                widget = loading_note("Account: loading…")
                window_plots.append(name)
            else:
                widget = build_panel(name, ctx, services)
        except LookupError as exc:
            panels.missing[name] = str(exc)
            log.warning("%s panel left out: %s", name, exc)
            ctx.notify("warning", "panels", f"{title} is not shown: {exc}")
            continue
        if tab_with is not None and window.panel(tab_with) is None:
            tab_with = None
        window.add_panel(widget, object_name, title, area, tab_with=tab_with)
        built[name] = widget
    panels.watchlist = built.get("watchlist")
    panels.ticket = built.get("order_ticket")
    panels.blotter = built.get("blotter")
    panels.positions = built.get("positions")
    panels.account = None if "account" in window_plots else built.get("account")
    blotter_dock = window.panel("blotterPanel")
    if blotter_dock is not None:
        blotter_dock.raise_()

    selected = {"symbol": ""}

    def select(symbol: str) -> None:
        selected["symbol"] = symbol
        if panels.ticket is not None:
            panels.ticket.set_symbol(symbol)
        if panels.feeder is not None and symbol != panels.feeder.symbol:
            panels.feeder.show(symbol)

    for source in (panels.watchlist, panels.blotter, panels.positions):
        if source is not None:
            source.symbolSelected.connect(select)
    if panels.ticket is not None:
        panels.ticket.install_hotkeys(window)
        if panels.blotter is not None:
            panels.blotter.duplicateRequested.connect(panels.ticket.prefill)
    window.trading_panels = panels  # type: ignore[attr-defined]

    def chart_step() -> None:
        install_chart(window, ctx, services, panels)
        # the next turn: the chart has been laid out in the middle by then
        QTimer.singleShot(0, window, lambda: _settle_layout(window))
        if panels.feeder is not None and selected["symbol"]:
            panels.feeder.show(selected["symbol"])

    def account_step() -> None:
        try:
            panels.account = swap_in(window, "accountPanel", lambda: build_panel("account", ctx, services))
        except LookupError as exc:
            panels.missing["account"] = str(exc)
            log.warning("account panel left out: %s", exc)
            ctx.notify("warning", "panels", f"Account is not shown: {exc}")
            from PySide6.QtWidgets import QLabel

            dock = window.panel("accountPanel")
            note = dock.widget() if dock is not None else None
            if isinstance(note, QLabel):
                note.setText(f"Account is not shown: {exc}")

    from PySide6.QtCore import QTimer

    if not defer_plots:
        chart_step()
    if panels.watchlist is not None and panels.watchlist.symbols():
        panels.watchlist.select_symbol(panels.watchlist.symbols()[0])
    if defer_plots:
        _chart_placeholder(window)
        QTimer.singleShot(0, window, chart_step)
        if window_plots:
            QTimer.singleShot(0, window, account_step)
    log.info("trading panels installed: %s%s", ", ".join(built) or "none",
             "; chart and account plots follow on the next idle turns" if defer_plots else "")  # fmt: skip
    return panels


def loading_note(text: str) -> QWidget:
    """A small centred note standing in for a panel that is built on a later idle turn."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QSizePolicy

    note = QLabel(text)
    note.setObjectName("loadingNote")
    note.setAlignment(Qt.AlignmentFlag.AlignCenter)
    note.setWordWrap(True)
    note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
    return note


def swap_in(window: MainWindow, object_name: str, build: Any) -> Any:
    """Replace the loading note in the dock ``object_name`` with ``build()`` (raises what it raises,
    leaving the note). Returns the new widget."""
    widget = build()
    dock = window.panel(object_name)
    if dock is None:  # the window was torn down meanwhile
        widget.deleteLater()
        return widget
    old = dock.widget()
    if not widget.objectName():
        widget.setObjectName(object_name)
    dock.setWidget(widget)
    if old is not None:
        old.deleteLater()
    log.info("%s installed", object_name)
    return widget


def _chart_placeholder(window: MainWindow) -> None:
    """Until the chart is built: a small "loading" note in the middle instead of the window's
    "no panels" placeholder, which would also widen the window to fit its text."""
    chart_module = sys.modules.get("widgets.chart.panel")  # not imported: there is no chart yet
    if chart_module is not None and isinstance(window.centralWidget(), chart_module.ChartPanel):
        return
    note = loading_note("Loading the chart…")
    note.setObjectName("chartPlaceholder")
    window.set_central_panel(note)


def install_chart(window: MainWindow, ctx: Any, services: Any, panels: TradingPanels) -> ChartPanel:
    """Put the chart in the central area (unless one is there) and feed it from ``services.history``."""
    from widgets.chart.panel import ChartPanel

    chart = window.centralWidget()
    if not isinstance(chart, ChartPanel):
        chart = ChartPanel()
        window.set_central_panel(chart)
    panels.chart = chart
    history = getattr(services, "history", None)
    if history is not None and panels.feeder is None:
        panels.feeder = ChartFeeder(chart, history, ctx.bus)
    log.info("chart installed")
    return chart
