"""The trading panels: watchlist, order ticket, blotter, positions and account (:data:`TRADING_PANELS`),
and the chart in the middle.

Installed once by :func:`app.qt.runner.populate_window` on the GUI thread after services are built.
A missing service leaves its panel out (with a notification) instead of showing invented data.

Default layout: order ticket on the left, watchlist on the right, blotter / positions / account
tabbed at the bottom, the chart in the middle; first-launch sizes follow an idle turn after the
chart (:func:`_settle_layout`). Watchlist, blotter and positions selections drive the
chart and the ticket; blotter "Duplicate" pre-fills the ticket.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from app.qt.panels.feeds import ChartFeeder, equity_history, seed_daily_figures
from app.qt.panels.spec import PanelEnv, PanelSpec, build_deferred, install_panels, loading_note, need
from app.report import register_chart_report

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.context import AppContext, Services
    from services.broker.assets import AssetDirectory
    from services.domain.models import Fill
    from services.orders.store import OrderStore
    from widgets.account import AccountPanel
    from widgets.blotter import BlotterPanel
    from widgets.chart.panel import ChartPanel
    from widgets.main_window import MainWindow
    from widgets.order_ticket import OrderTicket
    from widgets.pacer import DisplayPacer
    from widgets.positions import PositionsPanel
    from widgets.watchlist import WatchlistPanel

log = logging.getLogger("heron.app.panels")


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
    #: the watchlist, the ticket and the chart show market data together, 5 times a second
    pacer: DisplayPacer | None = None
    missing: dict[str, str] = field(default_factory=dict)
    select: Callable[[str], None] | None = None  # a symbol chosen anywhere drives ticket and chart


def _save_watchlist(ctx: AppContext, symbols: list[str]) -> None:
    from app.settings import SettingsError, save

    ctx.settings.watchlist = list(symbols)
    try:
        save(ctx.settings, ctx.paths.settings_file)
    except (SettingsError, OSError) as exc:
        log.error("watchlist not saved: %s", exc)
        ctx.notify("error", "settings", f"the watchlist could not be saved: {exc}")


def _save_chart_indicators(ctx: AppContext, state: dict[str, dict[str, object]]) -> None:
    from app.settings import SettingsError, save

    ctx.settings.chart.indicators = {name: dict(values) for name, values in state.items()}
    try:
        save(ctx.settings, ctx.paths.settings_file)
    except (SettingsError, OSError) as exc:
        log.error("chart indicators not saved: %s", exc)
        ctx.notify("error", "settings", f"the chart's indicators could not be saved: {exc}")


#: One asset list per broker, shared by the symbol boxes (watchlist and chart): fetched once, and
#: the same answer for a symbol wherever it is typed.
_ASSET_DIRECTORIES: weakref.WeakKeyDictionary[object, AssetDirectory] = weakref.WeakKeyDictionary()


def asset_directory(services: Services) -> AssetDirectory | None:
    """The broker's shared asset list (None without a broker)."""
    from services.broker.assets import AssetDirectory

    broker = services.broker
    if broker is None:
        return None
    directory = _ASSET_DIRECTORIES.get(broker)
    if directory is None:
        directory = _ASSET_DIRECTORIES[broker] = AssetDirectory(broker.get_assets)
    return directory


def _watchlist(env: PanelEnv) -> QWidget:
    from widgets.watchlist import WatchlistPanel

    ctx, services = env.ctx, env.services
    streams, history = services.streams, services.history
    book = need(services.book, "book", services)

    async def watch(syms: list[str]) -> None:
        if streams is not None:
            await streams.subscribe(syms, trades=True, quotes=True)
        await seed_daily_figures(history, book, syms)

    watchlist = WatchlistPanel(
        book,
        ctx.bus,
        ctx.settings.watchlist,
        on_symbols_changed=lambda syms: _save_watchlist(ctx, syms),
        subscribe=watch,
        # symbols typed into the add box are checked against the broker's asset list
        assets=asset_directory(services),
        pacer=env.pacer,
    )
    # Symbols already watched at start-up were subscribed by the app; they still need the
    # previous close (for change %) and the day's volume so far.
    watchlist.seed_task = asyncio.ensure_future(  # type: ignore[attr-defined]
        seed_daily_figures(history, book, list(ctx.settings.watchlist))
    )
    return watchlist


def _order_ticket(env: PanelEnv) -> QWidget:
    from widgets.order_ticket import OrderTicket

    engine = need(env.services.engine, "engine", env.services)
    return OrderTicket(
        engine,
        book=env.services.book,
        bus=env.ctx.bus,
        mode=env.ctx.mode,
        confirm_orders=env.ctx.settings.ui.confirm_orders,
        pacer=env.pacer,
    )


def _blotter(env: PanelEnv) -> QWidget:
    from widgets.blotter import BlotterPanel

    s = env.services
    store = need(s.orders, "orders", s)
    return BlotterPanel(store, need(s.engine, "engine", s), env.ctx.bus, fills=_recent_fills(store, None))


def _positions(env: PanelEnv) -> QWidget:
    from services.orders.working import known_working_orders
    from widgets.positions import PositionsPanel

    s = env.services
    orders = need(s.orders, "orders", s)
    return PositionsPanel(orders, need(s.book, "book", s), need(s.engine, "engine", s), env.ctx.bus,
                          working=lambda symbol: known_working_orders(orders, symbol),
                          pacer=env.pacer)  # fmt: skip


def _account(env: PanelEnv) -> QWidget:
    from widgets.account import AccountPanel

    s = env.services
    engine = need(s.engine, "engine", s)
    broker = need(s.broker, "broker", s)
    panel = AccountPanel(
        refresh_account=engine.refresh_account,
        portfolio_history=lambda: equity_history(broker),
        trading=need(s.trading, "trading", s),
        kill_switch=s.kill_switch,
        bus=env.ctx.bus,
    )
    panel.start()
    if env.window is not None and s.kill_switch is not None:  # Trade → Kill switch… (and its keys)
        from widgets.shortcuts import Command

        env.window.connect_command(Command.KILL_SWITCH, panel.trigger_kill_switch)
    return panel


# The watchlist gets a full-height column of its own: six numeric columns need the width, and a
# trader scans many rows at once. The ticket stays on the left, the tables below the chart.
TRADING_PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("watchlist", "watchlistPanel", "Watchlist", "right", _watchlist),
    PanelSpec("order_ticket", "orderTicket", "Order ticket", "left", _order_ticket),
    PanelSpec("blotter", "blotterPanel", "Blotter", "bottom", _blotter),
    PanelSpec("positions", "positionsPanel", "Positions", "bottom", _positions, tab_with="blotterPanel"),
    PanelSpec(
        "account",
        "accountPanel",
        "Account",
        "bottom",
        _account,
        tab_with="blotterPanel",
        deferred=True,
        loading="Account: loading…",
    ),
)
PANEL_NAMES = tuple(spec.key for spec in TRADING_PANELS)


def build_panel(name: str, ctx: AppContext, services: Services) -> QWidget:
    """Build one trading panel from the services; raises LookupError naming a missing service."""
    for spec in TRADING_PANELS:
        if spec.key == name:
            return spec.factory(PanelEnv(ctx, services))
    raise ValueError(f"unknown trading panel {name!r}; known: {', '.join(PANEL_NAMES)}")


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


def _link(window: MainWindow, panels: TradingPanels, selected: dict[str, str]) -> None:
    """Watchlist, blotter and positions selections drive the ticket and the chart; a click on a
    watchlist row's bid or ask stages a sell at the bid or a buy at the ask in the ticket."""

    def select(symbol: str) -> None:
        selected["symbol"] = symbol
        if panels.ticket is not None:
            panels.ticket.set_symbol(symbol)
        if panels.feeder is not None and symbol != panels.feeder.symbol:
            panels.feeder.show(symbol)
        if panels.watchlist is not None:  # its highlighted row is the ticket's symbol, or none
            panels.watchlist.follow(symbol)

    panels.select = select
    for source in (panels.watchlist, panels.blotter, panels.positions):
        if source is not None:
            source.symbolSelected.connect(select)
    if panels.ticket is not None and panels.watchlist is not None:
        ticket = panels.ticket

        def stage_quote(symbol: str, side: str, price: str) -> None:
            from decimal import Decimal

            from services.domain.enums import OrderSide, OrderType

            ticket.stage(symbol, OrderSide(side), OrderType.LIMIT, Decimal(price))

        panels.watchlist.quoteClicked.connect(stage_quote)
    if panels.ticket is not None:
        _order_commands(window, panels.ticket)
        if panels.blotter is not None:
            panels.blotter.duplicateRequested.connect(panels.ticket.prefill)


def _order_commands(window: MainWindow, ticket: OrderTicket) -> None:
    """The Trade menu's commands (and their shortcuts) act on the order ticket."""
    from services.domain.enums import OrderSide
    from widgets.shortcuts import Command

    window.connect_command(Command.BUY, lambda: ticket.submit(OrderSide.BUY))
    window.connect_command(Command.SELL, lambda: ticket.submit(OrderSide.SELL))
    window.connect_command(Command.CANCEL_LAST, ticket.cancel_last)
    window.connect_command(Command.CANCEL_ALL, ticket.cancel_all)
    window.connect_command(Command.FLATTEN_ALL, ticket.flatten_all)


def install(
    window: MainWindow, ctx: AppContext, services: Services, *, defer_plots: bool = False
) -> TradingPanels:
    """Add the trading panels (and the chart, if nobody placed one) and connect them.

    ``defer_plots``: the panels drawn with pyqtgraph (the chart, and the account panel's equity
    curve) are built on the event loop's next idle turns instead, so importing pyqtgraph (about
    0.5 s of CPU) and setting up plots is not on the way to a usable window. The composition root
    does this. Until then the account dock (a background tab at first launch) says it is loading,
    the central area says the chart is loading, and a selection still reaches the ticket.
    """
    from PySide6.QtCore import QTimer

    from widgets.pacer import DisplayPacer

    panels = TradingPanels(pacer=DisplayPacer(parent=window))

    def missing(spec: PanelSpec, exc: LookupError) -> None:
        panels.missing[spec.key] = str(exc)
        log.warning("%s panel left out: %s", spec.key, exc)
        ctx.notify("warning", "panels", f"{spec.title} is not shown: {exc}")

    env = PanelEnv(ctx, services, window, pacer=panels.pacer)
    installed = install_panels(window, TRADING_PANELS, env, defer_plots=defer_plots, on_missing=missing)
    built = installed.built
    panels.watchlist = built.get("watchlist")  # type: ignore[assignment]
    panels.ticket = built.get("order_ticket")  # type: ignore[assignment]
    panels.blotter = built.get("blotter")  # type: ignore[assignment]
    panels.positions = built.get("positions")  # type: ignore[assignment]
    panels.account = None if installed.deferred else built.get("account")  # type: ignore[assignment]
    blotter_dock = window.panel("blotterPanel")
    if blotter_dock is not None:
        blotter_dock.raise_()
    selected = {"symbol": ""}
    _link(window, panels, selected)
    window.trading_panels = panels  # type: ignore[attr-defined]

    def chart_step() -> None:
        install_chart(window, ctx, services, panels)
        # the next turn: the chart has been laid out in the middle by then
        QTimer.singleShot(0, window, lambda: _settle_layout(window))
        if panels.feeder is not None and selected["symbol"]:
            panels.feeder.show(selected["symbol"])

    if not defer_plots:
        chart_step()
    if panels.watchlist is not None and panels.watchlist.symbols():
        panels.watchlist.select_symbol(panels.watchlist.symbols()[0])
    if defer_plots:
        _chart_placeholder(window)
        QTimer.singleShot(0, window, chart_step)
        for spec in installed.deferred:

            def built_account(widget: AccountPanel) -> None:
                panels.account = widget

            build_deferred(window, spec, env, on_built=built_account, on_missing=missing)
    log.info("trading panels installed: %s%s", ", ".join(built) or "none",
             "; chart and account plots follow on the next idle turns" if defer_plots else "")  # fmt: skip
    return panels


def _chart_placeholder(window: MainWindow) -> None:
    """Until the chart is built: a small "loading" note in the middle instead of the window's
    "no panels" placeholder, which would also widen the window to fit its text."""
    chart_module = sys.modules.get("widgets.chart.panel")  # not imported: there is no chart yet
    if chart_module is not None and isinstance(window.centralWidget(), chart_module.ChartPanel):
        return
    note = loading_note("Loading the chart…")
    note.setObjectName("chartPlaceholder")
    window.set_central_panel(note)


def install_chart(
    window: MainWindow, ctx: AppContext, services: Services, panels: TradingPanels
) -> ChartPanel:
    """Put the chart in the central area (unless one is there) and feed it from ``services.history``."""
    import shiboken6

    from widgets.chart.panel import ChartPanel
    from widgets.models.common import TIMES

    chart = window.centralWidget()
    if not isinstance(chart, ChartPanel):
        chart = ChartPanel()
        window.set_central_panel(chart)
    panels.chart = chart

    def follow_zone() -> None:  # the window's display zone, as the tables show times
        if not shiboken6.isValid(chart):  # a chart closed with its window
            TIMES.changed.disconnect(follow_zone)
            return
        chart.set_time_zone(TIMES.tz, TIMES.label())

    follow_zone()
    TIMES.changed.connect(follow_zone)
    for why in chart.restore_indicators(ctx.settings.chart.indicators):
        log.warning("a saved chart indicator was left off: %s", why)
    chart.indicatorsChanged.connect(lambda state: _save_chart_indicators(ctx, state))
    assets = asset_directory(services)
    if assets is not None:  # the watchlist's list: one answer, one message, for a symbol
        chart.set_symbol_check(assets.resolve)

    def chart_symbol(symbol: str) -> None:  # as a watchlist click: the ticket, and its row if listed
        if panels.select is not None:
            panels.select(symbol)
        if panels.watchlist is not None:
            panels.watchlist.select_symbol(symbol)

    history = services.history
    if history is not None and panels.feeder is None:
        panels.feeder = ChartFeeder(chart, history, ctx.bus, panels.pacer)
    chart.symbolRequested.connect(chart_symbol)  # after the feeder: it loads first, once
    _trade_from_chart(chart, ctx, services, panels)
    register_chart_report(services, chart)
    log.info("chart installed")
    return chart


def _trade_from_chart(chart: ChartPanel, ctx: AppContext, services: Services, panels: TradingPanels) -> None:
    """Order lines, fills and trading on the chart: the same engine, risk gate and confirmation
    setting as the ticket; a right-click stages an order in the ticket."""
    from services.domain.enums import Mode, OrderSide, OrderType

    # a chart shown without trading (a preview, services without orders) draws no orders
    store, engine = services.orders, services.engine
    if store is None or engine is None:
        return
    chart.orders.attach(engine, store, ctx.bus, fills=_recent_fills(store))
    ticket = panels.ticket
    if ticket is not None:
        chart.orders.needs_confirmation = ticket.needs_confirmation

        def stage(symbol: str, side: str, order_type: str, price: Decimal) -> None:
            ticket.stage(symbol, OrderSide(side), OrderType(order_type), price)

        chart.stageOrderRequested.connect(stage)
    else:
        chart.orders.needs_confirmation = lambda: ctx.mode is Mode.LIVE or ctx.settings.ui.confirm_orders


RECENT_FILLS = timedelta(days=30)


def _recent_fills(store: OrderStore, within: timedelta | None = RECENT_FILLS) -> list[Fill]:
    """The newest stored fills, oldest first: the chart's markers take those of the last
    :data:`RECENT_FILLS`, the blotter the newest it keeps (``MAX_FILLS``, any age)."""
    from widgets.models.fills_model import MAX_FILLS

    since = None if within is None else datetime.now(UTC) - within
    try:
        return store.recent_fills(MAX_FILLS, since)
    except Exception as exc:  # the database: the panels show new fills only, and the log says why
        log.warning("earlier fills are not shown: %s", exc)
        return []
