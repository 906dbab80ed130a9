"""The operations panels (:data:`OPS_PANELS`): ``logPanel`` (over ``ctx.log_hub``),
``reconciliationPanel`` (``services.reconciler``), ``strategiesPanel`` (``services.runner``,
``services.strategy_registry``; backtests on stored history from ``services.candles`` when there is
one) and ``shadowPanel`` (``services.shadow``, ``services.models``); and around them the drift banner
in a top toolbar (``driftBannerBar``), toasts for risk rejections, drift and errors published on
``ctx.bus``, and the File → Settings… command (``settingsAction``) opening the settings dialog.

Installed once by :func:`app.qt.runner.populate_window` on the GUI thread, after services are
built. A service that is ``None`` leaves its panel in a clear "not running" state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.qt.panels import lab as lab_panel
from app.qt.panels.backtests import BacktestDialogs, stored_history
from app.qt.panels.spec import PanelEnv, PanelSpec, build_deferred, install_panels
from app.qt.settings_access import open_settings
from services.domain.events import NotificationEvent

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.context import AppContext, Services
    from widgets.drift_banner import DriftBanner
    from widgets.log_panel import LogPanel, ToastArea
    from widgets.main_window import MainWindow
    from widgets.reconciliation import ReconciliationPanel
    from widgets.shadow import ShadowPanel
    from widgets.strategies import StrategiesPanel

log = logging.getLogger("heron.app.panels_ops")

__all__ = ["OPS_PANELS", "OpsPanels", "install", "open_settings", "panel_names"]


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
    #: Strategies → Strategy lab… (None without a database)
    lab: Any = None


def _log(env: PanelEnv) -> QWidget:
    from widgets.log_panel import LogPanel

    panel = LogPanel()
    panel.attach(env.ctx.log_hub)
    return panel


def _reconciliation(env: PanelEnv) -> QWidget:
    from widgets.reconciliation import ReconciliationPanel

    return ReconciliationPanel(env.services.reconciler)


def _strategies(env: PanelEnv) -> QWidget:
    from services.strategies.builtin import builtin_registry
    from widgets.strategies import StrategiesPanel

    services = env.services
    registry = dict(services.strategy_registry or builtin_registry())
    env.backtests = BacktestDialogs(env.window, registry, stored_history(services.candles))
    return StrategiesPanel(services.runner, registry, open_backtest=env.backtests.open)


def _shadow(env: PanelEnv) -> QWidget:
    from widgets.shadow import ShadowPanel

    wanted = env.services.shadow_models_wanted
    return ShadowPanel(env.services.shadow, env.services.models, on_first_shown=wanted.set)


OPS_PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("log", "logPanel", "Log", "bottom", _log),
    PanelSpec(
        "reconciliation",
        "reconciliationPanel",
        "Reconciliation",
        "bottom",
        _reconciliation,
        tab_with="logPanel",
    ),
    PanelSpec("strategies", "strategiesPanel", "Strategies", "bottom", _strategies, tab_with="logPanel"),
    PanelSpec(
        "shadow",
        "shadowPanel",
        "Shadow models",
        "bottom",
        _shadow,
        tab_with="logPanel",
        deferred=True,
        loading="Shadow models: loading…",
    ),
)


def install(
    window: MainWindow, ctx: AppContext, services: Services, *, defer_plots: bool = False
) -> OpsPanels:
    """Add the ops panels to ``window`` and wire them to ``services``. GUI thread, once.

    ``defer_plots``: the shadow-models panel (drawn with pyqtgraph) is built on the event loop's
    next idle turn; until then its dock (a background tab) says it is loading and
    ``OpsPanels.shadow`` is None. The backtest dialog's module is imported when one is opened.
    """
    from widgets.log_panel import ToastArea

    def missing(spec: PanelSpec, exc: LookupError) -> None:  # these panels show "not running" instead
        log.warning("%s panel left out: %s", spec.key, exc)

    env = PanelEnv(ctx, services, window)
    built = install_panels(window, OPS_PANELS, env, defer_plots=defer_plots, on_missing=missing).built
    log_panel: LogPanel = built["log"]  # type: ignore[assignment]
    recon: ReconciliationPanel = built["reconciliation"]  # type: ignore[assignment]
    strategies: StrategiesPanel = built["strategies"]  # type: ignore[assignment]
    shadow: ShadowPanel | None = None if defer_plots else built["shadow"]  # type: ignore[assignment]
    banner = _drift_banner(window, recon)
    if services.reconciler is not None:
        banner.show_incidents(services.reconciler.incidents_event())
    toasts = ToastArea(window)
    subs = [
        ctx.bus.subscribe(NotificationEvent, _toaster(toasts, recon)),
        banner.follow(ctx.bus),
        recon.follow(ctx.bus),
    ]
    action = _settings_action(window, ctx, services)
    window.closing.connect(log_panel.detach)
    dialogs = env.backtests.dialogs if env.backtests is not None else []
    ops = OpsPanels(log_panel, recon, banner, strategies, shadow, toasts, action, subs, dialogs)
    ops.lab = lab_panel.install(window, ctx, services, env.backtests)
    if defer_plots:

        def built_shadow(widget: ShadowPanel) -> None:
            ops.shadow = widget

        for spec in OPS_PANELS:
            if spec.deferred:
                build_deferred(window, spec, env, on_built=built_shadow, on_missing=missing)
    return ops


def _drift_banner(window: MainWindow, recon: ReconciliationPanel) -> DriftBanner:
    """The drift banner across the top: a fixed toolbar, visible only while an incident is open
    (the banner follows the reconciler's IncidentsChangedEvent on the bus)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QToolBar

    from widgets.drift_banner import DriftBanner

    banner = DriftBanner()
    bar = QToolBar("Reconciliation drift", window)
    bar.setObjectName("driftBannerBar")
    bar.setMovable(False)
    bar.setFloatable(False)
    bar.toggleViewAction().setVisible(False)
    bar.setStyleSheet("QToolBar#driftBannerBar { border: none; padding: 0; spacing: 0; }")
    # a widget in a toolbar is shown and hidden through its action (QToolBar.addWidget): the
    # banner's own setVisible is ignored there
    shown = bar.addWidget(banner)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    shown.setVisible(False)
    bar.setVisible(False)

    def on_shown(count: int) -> None:
        shown.setVisible(count > 0)
        bar.setVisible(count > 0)

    banner.incidentsShown.connect(on_shown)

    def review() -> None:
        dock = window.panel("reconciliationPanel")
        if dock is not None:
            dock.show()
            dock.raise_()
        recon.setFocus()
        recon.incident_view.setFocus()

    banner.reviewRequested.connect(review)
    return banner


def _toaster(toasts: ToastArea, recon: ReconciliationPanel) -> Any:
    from widgets.log_panel import wants_toast

    def on_notification(e: NotificationEvent) -> None:
        """Bus handler: loop thread (the GUI thread under qasync)."""
        if wants_toast(e.level, e.source):
            toasts.show_toast(e.level, e.source, e.message)
        if e.source == "reconciliation":
            recon.refresh()

    return on_notification


def _settings_action(window: MainWindow, ctx: AppContext, services: Services) -> Any:
    """File → Settings… (the window's command, with its configurable shortcut)."""
    from widgets.shortcuts import Command

    return window.connect_command(Command.SETTINGS, lambda: open_settings(window, ctx, services))


def panel_names(panels: OpsPanels) -> Sequence[str]:
    names = [p.objectName() for p in (panels.log, panels.reconciliation, panels.strategies)]
    return [*names, panels.shadow.objectName() if panels.shadow is not None else "shadowPanel"]
