"""Installs the ops panels into the main window and connects them to services.

Called once by :func:`app.bootstrap._populate_window` on the GUI thread, after services are
built. Owned by the panels work; bootstrap only calls :func:`install`.

Installs: ``logPanel`` (over ``ctx.log_hub``), ``reconciliationPanel`` (``services.reconciler``)
with the drift banner in a top toolbar (``driftBannerBar``), ``strategiesPanel``
(``services.runner``, ``services.strategy_registry``) with its backtest dialog (stored history from
``services.candles`` when there is one), ``shadowPanel`` (``services.shadow``, ``services.models``),
a File → Settings… action (``settingsAction``) opening the settings dialog, and toasts for
risk rejections, drift and errors published on ``ctx.bus``. A service that is ``None`` leaves its
panel in a clear "not running" state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.domain.enums import Timeframe
from services.domain.events import NotificationEvent

if TYPE_CHECKING:
    from services.domain.models import Bar
    from widgets.drift_banner import DriftBanner
    from widgets.log_panel import LogPanel, ToastArea
    from widgets.main_window import MainWindow
    from widgets.reconciliation import ReconciliationPanel
    from widgets.shadow import ShadowPanel
    from widgets.strategies import StrategiesPanel

log = logging.getLogger("heron.app.panels_ops")


@dataclass
class OpsPanels:
    """What :func:`install` created (tests and the integration keep it to reach the panels)."""

    log: LogPanel
    reconciliation: ReconciliationPanel
    banner: DriftBanner
    strategies: StrategiesPanel
    #: None until built when ``install(..., defer_plots=True)``.
    shadow: ShadowPanel | None
    toasts: ToastArea
    settings_action: Any
    subscriptions: list[Any] = field(default_factory=list)
    dialogs: list[Any] = field(default_factory=list)


def install(window: MainWindow, ctx: Any, services: Any, *, defer_plots: bool = False) -> OpsPanels:
    """Add the ops panels to ``window`` and wire them to ``services``. GUI thread, once.

    ``defer_plots``: the shadow-models panel (drawn with pyqtgraph) is built on the event loop's
    next idle turn; until then its dock (a background tab) says it is loading and
    ``OpsPanels.shadow`` is None. The backtest dialog's module is imported when one is opened.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu, QToolBar

    from services.strategies.builtin import builtin_registry
    from widgets.drift_banner import DriftBanner
    from widgets.log_panel import LogPanel, ToastArea, wants_toast
    from widgets.reconciliation import ReconciliationPanel
    from widgets.strategies import StrategiesPanel

    log_panel = LogPanel()
    hub = getattr(ctx, "log_hub", None)
    if hub is not None:
        log_panel.attach(hub)
    window.add_panel(log_panel, "logPanel", "Log", "bottom")

    recon = ReconciliationPanel(getattr(services, "reconciler", None))
    window.add_panel(recon, "reconciliationPanel", "Reconciliation", "bottom", tab_with="logPanel")

    registry = dict(getattr(services, "strategy_registry", None) or builtin_registry())
    candles = getattr(services, "candles", None)
    history = None
    if candles is not None:

        def history(symbol: str, start: datetime, end: datetime) -> list[Bar]:
            return list(candles.range_bars(symbol, Timeframe.MIN_1, start, end))

    panels: dict[str, Any] = {}

    def open_backtest(kind: str | None, params: dict[str, str] | None) -> None:
        from widgets.backtest_dialog import BacktestDialog

        dialog = BacktestDialog(registry, history=history, kind=kind, params=params, parent=window)
        panels["dialogs"].append(dialog)
        dialog.finished.connect(lambda _=0, d=dialog: panels["dialogs"].remove(d))
        dialog.show()

    panels["dialogs"] = []
    strategies = StrategiesPanel(getattr(services, "runner", None), registry, open_backtest=open_backtest)
    window.add_panel(strategies, "strategiesPanel", "Strategies", "bottom", tab_with="logPanel")

    def build_shadow() -> ShadowPanel:
        from widgets.shadow import ShadowPanel

        return ShadowPanel(getattr(services, "shadow", None), getattr(services, "models", None))

    shadow: ShadowPanel | None = None
    if defer_plots:
        from PySide6.QtCore import QTimer

        from app.panels_trading import loading_note, swap_in

        window.add_panel(loading_note("Shadow models: loading…"), "shadowPanel", "Shadow models", "bottom",
                         tab_with="logPanel")  # fmt: skip

        def shadow_step() -> None:
            ops.shadow = swap_in(window, "shadowPanel", build_shadow)

        QTimer.singleShot(0, window, shadow_step)
    else:
        shadow = build_shadow()
        window.add_panel(shadow, "shadowPanel", "Shadow models", "bottom", tab_with="logPanel")

    # drift banner across the top: a fixed toolbar, visible only while an incident is open
    banner = DriftBanner()
    bar = QToolBar("Reconciliation drift", window)
    bar.setObjectName("driftBannerBar")
    bar.setMovable(False)
    bar.setFloatable(False)
    bar.toggleViewAction().setVisible(False)
    bar.setStyleSheet("QToolBar#driftBannerBar { border: none; padding: 0; spacing: 0; }")
    bar.addWidget(banner)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    bar.setVisible(False)

    banner.incidentsShown.connect(lambda count: bar.setVisible(count > 0))

    def review() -> None:
        dock = window.panel("reconciliationPanel")
        if dock is not None:
            dock.show()
            dock.raise_()
        recon.setFocus()
        recon.incident_view.setFocus()

    banner.reviewRequested.connect(review)
    reconciler = getattr(services, "reconciler", None)
    if reconciler is not None:
        banner.show_incidents(reconciler.incidents_event())

    toasts = ToastArea(window)
    subs: list[Any] = []
    bus = getattr(ctx, "bus", None)
    if bus is not None:
        subs += [banner.follow(bus), recon.follow(bus)]

        def on_notification(e: NotificationEvent) -> None:
            """Bus handler: loop thread (the GUI thread under qasync)."""
            if wants_toast(e.level, e.source):
                toasts.show_toast(e.level, e.source, e.message)
            if e.source == "reconciliation":
                recon.refresh()

        subs.append(bus.subscribe(NotificationEvent, on_notification))

    action = QAction("&Settings…", window)
    action.setObjectName("settingsAction")
    action.setShortcut("Ctrl+,")
    action.triggered.connect(lambda: open_settings(window, ctx, services))
    menus = [a.menu() for a in window.menuBar().actions()]
    file_menu = next((m for m in menus if isinstance(m, QMenu)), None)
    if file_menu is not None:
        first = file_menu.actions()[0] if file_menu.actions() else None
        file_menu.insertAction(first, action)  # type: ignore[arg-type]
    else:
        window.menuBar().addAction(action)
    window.closing.connect(log_panel.detach)
    ops = OpsPanels(log_panel, recon, banner, strategies, shadow, toasts, action, subs, panels["dialogs"])
    return ops


def open_settings(window: Any, ctx: Any, services: Any, *, show: bool = True) -> Any:
    """Build (and show, non-modal) the settings dialog for this session's profile."""
    from app.secrets import SecretStore
    from widgets.settings_dialog import SettingsDialog

    store = getattr(services, "secret_store", None)
    if store is None:
        redactor = getattr(ctx, "redactor", None)
        store = SecretStore(on_secret=redactor.register if redactor is not None else None)
    exchange = getattr(services, "exchange", None)
    dialog = SettingsDialog(
        ctx.settings,
        ctx.paths.settings_file,
        profile=ctx.paths.profile,
        data_root=ctx.paths.root,
        secret_store=store,
        validator=_validator(exchange, getattr(ctx, "redactor", None)),
        local_base_url=exchange.url if exchange is not None else None,
        parent=window,
    )

    def saved(new: Any) -> None:
        ctx.settings = new

    dialog.saved.connect(saved)
    if show:
        dialog.show()
    return dialog


def _validator(exchange: Any, redactor: Any) -> Any:
    """Credential validation (GET /v2/account) for the settings dialog's "Test connection".

    Local mode tests the running local exchange with its session keys.
    """

    async def validate(key_id: str, secret: str, environment: str) -> Any:
        from services.broker.credentials import validate_credentials

        if redactor is not None and secret:
            redactor.register(secret)
        if environment == "local":
            if exchange is None:
                raise RuntimeError("the local exchange is not running in this session")
            return await validate_credentials(
                exchange.keys.key_id, exchange.keys.secret, environment="local", base_url=exchange.url
            )
        return await validate_credentials(key_id, secret, environment=environment)

    return validate


def panel_names(panels: OpsPanels) -> Sequence[str]:
    names = [p.objectName() for p in (panels.log, panels.reconciliation, panels.strategies)]
    return [*names, panels.shadow.objectName() if panels.shadow is not None else "shadowPanel"]
