"""The strategies panel's backtest dialogs: non-modal, several at once, each on stored history when
the session has a candle store. The dialog's module is imported when the first one is opened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.domain.enums import Timeframe

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from services.domain.models import Bar
    from services.storage.candles import CandleStore

History = Callable[[str, datetime, datetime], list["Bar"]]


def stored_history(candles: CandleStore | None) -> History | None:
    """One-minute bars from the candle store, or None without one."""
    if candles is None:
        return None

    def history(symbol: str, start: datetime, end: datetime) -> list[Bar]:
        return list(candles.range_bars(symbol, Timeframe.MIN_1, start, end))

    return history


class BacktestDialogs:
    """Opens backtest dialogs over ``parent`` and keeps the open ones."""

    def __init__(self, parent: QWidget | None, registry: dict[str, Any], history: History | None) -> None:
        self.parent, self.registry, self.history = parent, registry, history
        self.dialogs: list[Any] = []

    def open(self, kind: str | None, params: dict[str, str] | None) -> None:
        from widgets.backtest_dialog import BacktestDialog

        dialog = BacktestDialog(
            self.registry, history=self.history, kind=kind, params=params, parent=self.parent
        )
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _=0, d=dialog: self.dialogs.remove(d))
        dialog.show()
