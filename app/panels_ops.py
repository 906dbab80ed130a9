"""Installs the ops panels into the main window and connects them to services.

Called once by :func:`app.bootstrap._populate_window` on the GUI thread, after services are
built. Owned by the panels work; bootstrap only calls :func:`install`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from widgets.main_window import MainWindow


def install(window: MainWindow, ctx: Any, services: Any) -> None:
    """Add the ops panels to ``window``. No panels are installed by this module yet."""
    return None
