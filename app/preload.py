"""Start-up imports in two lanes: the service layer on a worker thread, the window on the main one.

Importing is most of a cold start (Qt and the panels on one side; the broker client with pandas,
SQLAlchemy and the order engine on the other). The two sets barely overlap, and an import does not
hold the GIL all the time (reading files, loading shared libraries), so running them side by side
ends sooner than one after the other (measured on the 2-core machine: 1.4-1.9 s instead of
2.0-2.1 s for the same modules). main.py calls :func:`start_service_imports`, imports the window
modules itself with :func:`import_window_modules`, then :meth:`ServiceImports.wait` before running.

Only the standard library is imported here (and ``shiboken6``, just before Qt itself, to keep its
import hook from holding every module's source in memory). A module that fails to import on the
worker is simply imported again by the code that needs it, on the main thread, and fails there with
its real error.
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
    if "PySide6.QtWidgets" in modules:
        scan_sources_without_keeping_them()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


def scan_sources_without_keeping_them() -> bool:
    """Make PySide6's import hook read module sources without keeping them in memory.

    Once ``shiboken6`` is imported, every module imported in the process (and, when PySide6 starts,
    every module already imported) is checked for the text "PySide6" by ``inspect.getsource``, which
    stores the whole source file in ``linecache`` for good: some 40 MB of lines for numpy, pandas,
    SQLAlchemy and the rest, and more or less of it from run to run, as the two import lanes race
    (the mechanism: pyzo/pyzo#851; napari/napari#8584). The same question is answered here from the
    file's bytes, which are then dropped. True when the hook was found and replaced; an unknown
    PySide6 layout is left as it is.
    """
    import sys

    try:
        import shiboken6  # noqa: F401 - installs the import hook whose check is replaced below
    except ImportError:
        return False
    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or not callable(original) or getattr(original, "reads_bytes", False):
        return False

    def mod_uses_pyside(module: object) -> bool:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            return bool(original(module))  # built-in, extension or source-less: as PySide6 decides
        try:
            with open(path, "rb") as source:
                return b"PySide6" in source.read()
        except OSError:
            return False  # as PySide6 answers for a module whose source cannot be read

    mod_uses_pyside.reads_bytes = True  # type: ignore[attr-defined]
    setattr(feature, "_mod_uses_pyside", mod_uses_pyside)  # noqa: B010 - a module attribute mypy cannot see
    return True
