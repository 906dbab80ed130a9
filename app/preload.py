"""Start-up imports in two lanes: the service layer on a worker thread, the window on the main one.

Importing is most of a cold start (Qt and the panels on one side; the broker client with pandas,
SQLAlchemy and the order engine on the other). The two sets barely overlap, and an import does not
hold the GIL all the time (reading files, loading shared libraries), so running them side by side
ends sooner than one after the other (measured on the 2-core machine: 1.4-1.9 s instead of
2.0-2.1 s for the same modules). main.py calls :func:`start_service_imports`, imports the window
modules itself with :func:`import_window_modules`, then :meth:`ServiceImports.wait` before running.

Only the standard library is imported here. A module that fails to import on the worker is simply
imported again by the code that needs it, on the main thread, and fails there with its real error.
"""

from __future__ import annotations

import importlib
import threading
import time

#: Everything the composition root imports at module level (services, alpaca, SQLAlchemy...).
SERVICE_MODULES = ("app.bootstrap",)

#: What the GUI needs before the window is usable: Qt, the event loop glue, the window, the panels.
#: Not the panels drawn with pyqtgraph (chart, account, shadow models, backtest dialog): those are
#: built after the window is usable (``defer_plots`` in app/qt/panels).
WINDOW_MODULES = (
    "PySide6.QtWidgets",
    "qasync",
    "widgets.theme",
    "widgets.main_window",
    "widgets.watchlist",
    "widgets.order_ticket",
    "widgets.blotter",
    "widgets.positions",
    "widgets.log_panel",
    "widgets.reconciliation",
    "widgets.strategies",
    "widgets.drift_banner",
    "app.qt.panels.trading",
    "app.qt.panels.ops",
)


class ServiceImports:
    """The worker thread importing :data:`SERVICE_MODULES`."""

    def __init__(self, modules: tuple[str, ...] = SERVICE_MODULES) -> None:
        self.modules = modules
        self.failed: dict[str, str] = {}
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name="service-imports", daemon=True)

    def start(self) -> ServiceImports:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.perf_counter()
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # the main thread imports it again and reports the error
                self.failed[name] = f"{type(exc).__name__}: {exc}"
        self.seconds = time.perf_counter() - started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the imports are done; False if ``timeout`` ran out first."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def start_service_imports() -> ServiceImports:
    return ServiceImports().start()


def import_window_modules(modules: tuple[str, ...] = WINDOW_MODULES) -> dict[str, str]:
    """Import the window's modules now (main thread); returns ``{module: error}`` for failures,
    which the code that needs the module meets again, with its real traceback, when it imports it."""
    failed: dict[str, str] = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed
