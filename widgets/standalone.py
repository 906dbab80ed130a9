"""Shared plumbing for the ops panels' standalone previews (``python -m widgets.<panel>``).

``--screenshot FILE`` renders the widget to a PNG after ``--after`` seconds and exits; without it
the preview window stays open. Not used by the application itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget


def preview_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the widget and exit")
    parser.add_argument("--after", type=float, default=1.5, help="seconds before the screenshot")
    return parser.parse_args()


def make_app() -> QApplication:
    from widgets.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")
    return app


def show_preview(
    app: QApplication,
    widget: QWidget,
    args: argparse.Namespace,
    *,
    before_shot: Callable[[], None] | None = None,
) -> int:
    """Show ``widget``; with ``--screenshot`` grab it after ``--after`` seconds and quit."""
    widget.show()
    if args.screenshot is not None:
        path: Path = args.screenshot

        def shoot() -> None:
            if before_shot is not None:
                before_shot()
            app.processEvents()
            ok = widget.grab().save(str(path), "PNG")
            print(f"screenshot {'written to' if ok else 'FAILED for'} {path}")
            app.exit(0 if ok else 1)

        QTimer.singleShot(int(args.after * 1000), shoot)
    return app.exec()
