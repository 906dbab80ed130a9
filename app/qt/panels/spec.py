"""A panel declared as data (:class:`PanelSpec`) and the one installer that puts a list of them into the
main window, building the ones drawn with pyqtgraph on a later idle turn when asked to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.context import AppContext, Services
    from app.qt.panels.backtests import BacktestDialogs
    from widgets.main_window import MainWindow
    from widgets.pacer import DisplayPacer

log = logging.getLogger("heron.app.panels")

T = TypeVar("T")


@dataclass
class PanelEnv:
    """What a panel factory is given: the context, the typed services, the window (None in a
    single-panel preview), once the strategies panel is built, its backtest dialogs, and the display
    pace the market-data panels share (None: they show every batch at once)."""

    ctx: AppContext
    services: Services
    window: MainWindow | None = None
    backtests: BacktestDialogs | None = None
    pacer: DisplayPacer | None = None


#: Builds one panel; raises LookupError naming a service the panel cannot do without.
PanelFactory = Callable[[PanelEnv], "QWidget"]
#: Told when a panel is left out: ``(spec, why)``.
OnMissing = Callable[["PanelSpec", LookupError], None]


@dataclass(frozen=True)
class PanelSpec:
    """One dock of the main window."""

    key: str
    object_name: str
    title: str
    area: str
    factory: PanelFactory
    #: Share a tab group with this dock when it exists.
    tab_with: str | None = None
    #: Drawn with pyqtgraph: with ``defer_plots`` a "loading" note stands in until an idle turn.
    deferred: bool = False
    loading: str = ""


@dataclass
class Installed:
    """What :func:`install_panels` put in the window."""

    built: dict[str, QWidget] = field(default_factory=dict)
    #: Specs whose dock holds a loading note until :func:`build_deferred` replaces it.
    deferred: list[PanelSpec] = field(default_factory=list)


def need(value: T | None, name: str, services: Services) -> T:
    """``value``, or LookupError saying why the service ``name`` is not there."""
    if value is None:
        why = services.failures.get(name, "not running")
        raise LookupError(f"{name} is not available ({why})")
    return value


def install_panels(
    window: MainWindow, specs: Sequence[PanelSpec], env: PanelEnv, *, defer_plots: bool, on_missing: OnMissing
) -> Installed:
    """Add a dock per spec, in order; a factory's LookupError leaves that panel out (``on_missing``)."""
    out = Installed()
    for spec in specs:
        try:
            if defer_plots and spec.deferred:
                widget = loading_note(spec.loading)
                out.deferred.append(spec)
            else:
                widget = spec.factory(env)
        except LookupError as exc:
            on_missing(spec, exc)
            continue
        tab_with = spec.tab_with
        if tab_with is not None and window.panel(tab_with) is None:
            tab_with = None
        window.add_panel(widget, spec.object_name, spec.title, spec.area, tab_with=tab_with)
        out.built[spec.key] = widget
    return out


def build_deferred(
    window: MainWindow,
    spec: PanelSpec,
    env: PanelEnv,
    *,
    on_built: Callable[[Any], None],
    on_missing: OnMissing,
) -> None:
    """On the loop's next idle turn: build ``spec``'s panel in place of its loading note; if it cannot
    be built, the note says why."""
    from PySide6.QtCore import QTimer

    def step() -> None:
        try:
            widget = swap_in(window, spec.object_name, lambda: spec.factory(env))
        except LookupError as exc:
            on_missing(spec, exc)
            from PySide6.QtWidgets import QLabel

            dock = window.panel(spec.object_name)
            note = dock.widget() if dock is not None else None
            if isinstance(note, QLabel):
                note.setText(f"{spec.title} is not shown: {exc}")
            return
        on_built(widget)

    QTimer.singleShot(0, window, step)


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


def swap_in(window: MainWindow, object_name: str, build: Callable[[], QWidget]) -> QWidget:
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
