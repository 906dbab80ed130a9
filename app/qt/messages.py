"""Qt's own warnings go to the log instead of raw stderr lines."""

from __future__ import annotations

import logging


def route_qt_messages() -> None:
    """Send Qt's own warnings to the log instead of raw stderr lines."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("heron.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }
    # Known-harmless warning of the offscreen platform plugin.
    harmless = ("This plugin does not support propagateSizeHints()",)

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        level = logging.DEBUG if message in harmless else levels.get(kind, logging.WARNING)
        qt_log.log(level, "%s", message)

    qInstallMessageHandler(handler)
