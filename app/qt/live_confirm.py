"""The live-trading confirmation: the person must type LIVE before an alpaca-live connection."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from app.cli import LIVE_CONFIRMATION

if TYPE_CHECKING:
    from widgets.main_window import MainWindow


async def ask_live_confirmation(window: MainWindow) -> bool:
    """A non-blocking dialog: the person must type LIVE to connect to alpaca-live."""
    from PySide6.QtWidgets import QInputDialog, QLineEdit

    dialog = QInputDialog(window)
    dialog.setObjectName("liveConfirmDialog")
    dialog.setWindowTitle("Connect to LIVE trading")
    dialog.setLabelText(
        f"You are connecting to Alpaca LIVE: orders use real money.\nType {LIVE_CONFIRMATION} to connect."
    )
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not future.done():
            future.set_result(bool(result) and dialog.textValue().strip() == LIVE_CONFIRMATION)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await future
    finally:
        dialog.deleteLater()
