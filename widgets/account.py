"""Account panel (``accountPanel``): equity, cash, buying power, day P&L, PDT status, the equity
curve, the trading state and the kill switch.

- The account is read with ``refresh_account()`` (the engine's, so the risk gate sees the same
  figures) every :data:`ACCOUNT_INTERVAL_MS`; ``AccountEvent`` on the bus also updates it.
- The equity curve comes from the broker's portfolio history every :data:`HISTORY_INTERVAL_MS`;
  the broker runs the REST call on a worker thread, so the loop thread never blocks.
- Trading state follows ``TradingStateEvent``. The kill switch asks for confirmation (with an
  option to also flatten every position) and runs :meth:`KillSwitch.trigger`.

Every field shows "—" until a service reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from services.domain.bus import EventBus, Subscription
from services.domain.enums import TradingState
from services.domain.events import AccountEvent, TradingStateEvent
from services.domain.models import Account
from services.orders.startup import operator as login_name
from widgets import theme
from widgets.lifetime import cancel_on_destroy, cancel_subscriptions
from widgets.message_label import MessageLabel
from widgets.models.common import DASH, TRADING_STATE_COLORS, fmt_money, sign_color
from widgets.protocols import KillSwitchLike, TradingLike
from widgets.tasks import run_async

ACCOUNT_INTERVAL_MS = 5_000
HISTORY_INTERVAL_MS = 60_000

STATE_COLORS = TRADING_STATE_COLORS


class KillSwitchDialog(QDialog):
    """Confirmation for the kill switch, with the flatten option off by default."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("killSwitchDialog")
        self.setWindowTitle("Kill switch")
        text = QLabel(
            "HALT trading and cancel every open order?\n"
            "Trading stays HALTED, also after a restart, until the HALT is released\n"
            "with a reason: Resume trading… in the status bar.",
            self,
        )
        self.flatten_check = QCheckBox("Also flatten every position with market orders", self)
        self.flatten_check.setObjectName("killSwitchFlatten")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Yes | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(text)
        lay.addWidget(self.flatten_check)
        lay.addWidget(buttons)


class MoneyAxis(pg.AxisItem):
    """Price-axis labels as money (``99,999.80``): the default float labels of a flat equity
    curve repeat one number (``100000`` three times) and switch to SI prefixes."""

    def __init__(self, orientation: str = "left") -> None:
        super().__init__(orientation)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [f"{v * scale:,.2f}" for v in values]


#: What the curve shows for each portfolio-history timeframe.
CURVE_TITLES = {"1D": "Equity, daily", "1H": "Equity, hourly", "15Min": "Equity today, 15-minute",
                "5Min": "Equity today, 5-minute", "1Min": "Equity today, 1-minute"}  # fmt: skip


def _when_a_loop_runs(refresh: Callable[[], None]) -> None:
    """A timer's refresh, only while an event loop runs: a panel outliving its loop (Heron shutting
    down, a window left over after its session) would queue a read on a loop that never runs it, and
    the coroutine would be left un-awaited for the garbage collector to warn about much later."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    refresh()


class AccountPanel(QWidget):
    """See the module docstring. GUI thread; bus handlers run on the loop (= GUI) thread."""

    def __init__(
        self,
        *,
        refresh_account: Callable[[], Awaitable[Account | None]] | None = None,
        portfolio_history: Callable[[], Awaitable[Any]] | None = None,
        trading: TradingLike | None = None,
        kill_switch: KillSwitchLike | None = None,
        bus: EventBus | None = None,
        operator: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("accountPanel")
        self._refresh_account = refresh_account
        self._history = portfolio_history
        self.kill_switch = kill_switch
        # who pulls the kill switch, as the journal and the log name them: the login name
        self.operator = operator or login_name()
        self.account: Account | None = None
        #: ``ask_kill() -> None (declined) | bool (flatten)``; the dialog by default
        self.ask_kill: Callable[[], bool | None] = self._kill_dialog
        self._refreshing = False

        left = self._build_figures(kill_switch is not None)
        self._build_curve()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(left)
        layout.addWidget(self.curve_stack, 1)

        if trading is not None:
            self.set_trading_state(trading.state, trading.reason)
        self._subs: list[Subscription] = []
        if bus is not None:
            self._subs.append(bus.subscribe(AccountEvent, lambda e: self.set_account(e.account)))
            self._subs.append(
                bus.subscribe(TradingStateEvent, lambda e: self.set_trading_state(e.state, e.reason))
            )
        cancel_on_destroy(self, self._subs)
        self.account_timer = QTimer(self)
        self.account_timer.setInterval(ACCOUNT_INTERVAL_MS)
        self.account_timer.timeout.connect(lambda: _when_a_loop_runs(self.refresh))
        self.history_timer = QTimer(self)
        self.history_timer.setInterval(HISTORY_INTERVAL_MS)
        self.history_timer.timeout.connect(lambda: _when_a_loop_runs(self.refresh_history))

    def _build_figures(self, can_kill: bool) -> QVBoxLayout:
        """The account figures, the trading state, the kill switch and the message line."""
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        for key, title in (
            ("equity", "Equity"),
            ("cash", "Cash"),
            ("buying_power", "Buying power"),
            ("day_pl", "Day P&&L"),  # "&&": a lone "&" would mark a keyboard mnemonic
            ("pdt", "Pattern day trader"),
            ("status", "Account status"),
        ):
            label = QLabel(DASH, self)
            label.setObjectName(f"account_{key}")
            self.values[key] = label
            form.addRow(title, label)
        self.state_label = QLabel(DASH, self)
        self.state_label.setObjectName("accountTradingState")
        self.state_label.setWordWrap(True)
        self.kill_button = QPushButton("KILL SWITCH", self)
        self.kill_button.setObjectName("killSwitchButton")
        self.kill_button.setStyleSheet(
            f"background: {theme.DANGER_BG}; color: {theme.ON_ACCENT}; font-weight: bold; padding: 6px"
        )
        self.kill_button.setEnabled(can_kill)
        self.kill_button.clicked.connect(self.trigger_kill_switch)
        self.message = MessageLabel("", self)
        self.message.setObjectName("accountMessage")
        self.message.setWordWrap(True)
        left = QVBoxLayout()
        left.addLayout(form)
        left.addWidget(self.state_label)
        left.addWidget(self.kill_button)
        left.addWidget(self.message)
        left.addStretch(1)
        return left

    def _build_curve(self) -> None:
        """The equity curve, behind a note until the broker's history has two points."""
        self.plot = pg.PlotWidget(self, axisItems={"bottom": pg.DateAxisItem(), "left": MoneyAxis()})
        self.plot.setObjectName("accountEquityCurve")
        self.plot.setMinimumHeight(120)
        # Until the broker has two points there is no curve to draw; say so instead of an axis
        # spanning a fraction of a second around one point.
        self.curve_note = QLabel("Equity curve: waiting for the broker's portfolio history", self)
        self.curve_note.setObjectName("accountCurveNote")
        self.curve_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.curve_note.setWordWrap(True)
        self.curve_note.setStyleSheet(f"color: {theme.MUTED}")
        self.curve_stack = QStackedWidget(self)
        self.curve_stack.addWidget(self.curve_note)
        self.curve_stack.addWidget(self.plot)
        self.plot.showGrid(x=False, y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.curve = self.plot.plot([], [], pen=pg.mkPen(theme.INFO, width=2))
        self.history_points = 0

    def start(self) -> None:
        """Begin periodic refreshes (needs a running event loop)."""
        self.refresh()
        self.refresh_history()
        self.account_timer.start()
        self.history_timer.start()

    # -- account ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._refresh_account is None or self._refreshing:
            return
        self._refreshing = True
        run_async(self._refresh_account(), self._account_done)

    def _account_done(self, account: Account | None, error: BaseException | None) -> None:
        self._refreshing = False
        if error is not None:
            self.message.setText(f"account refresh failed: {error}")
        elif account is not None:
            self.set_account(account)

    def set_account(self, account: Account) -> None:
        self.account = account
        v = self.values
        v["equity"].setText(fmt_money(account.equity))
        v["cash"].setText(fmt_money(account.cash))
        v["buying_power"].setText(fmt_money(account.buying_power))
        day = account.day_pl
        v["day_pl"].setText(fmt_money(day, signed=True))
        color = sign_color(day)
        v["day_pl"].setStyleSheet(f"color: {color.name()}" if color is not None else "")
        pdt = "yes" if account.pattern_day_trader else "no"
        v["pdt"].setText(f"{pdt} · {account.daytrade_count} day trades (5 business days)")
        blocked = " · TRADING BLOCKED" if account.trading_blocked or account.account_blocked else ""
        v["status"].setText(f"{account.status}{blocked}")

    # -- equity curve -------------------------------------------------------------------------------
    def refresh_history(self) -> None:
        if self._history is None:
            return
        run_async(self._history(), self._history_done)

    def _history_done(self, history: Any, error: BaseException | None) -> None:
        if error is not None:
            self.message.setText(f"portfolio history unavailable: {error}")
            return
        self.set_history(history.timestamps, history.equity, history.timeframe)

    def set_history(
        self, timestamps: tuple[datetime, ...], equity: tuple[Any, ...], timeframe: str = ""
    ) -> None:
        points = [(t, e) for t, e in zip(timestamps, equity, strict=False) if e is not None]
        self.curve.setData([t.timestamp() for t, _ in points], [float(e) for _, e in points])
        self.history_points = len(points)
        self.plot.setTitle(CURVE_TITLES.get(timeframe, "Equity"), size="9pt", color=theme.MUTED)
        if len(points) >= 2:
            self.curve_stack.setCurrentWidget(self.plot)
            return
        got = "no point" if not points else f"one point ({fmt_money(points[0][1])})"
        self.curve_note.setText(f"Equity curve: the broker's portfolio history has {got} so far; "
                                "the curve starts with the second.")  # fmt: skip
        self.curve_stack.setCurrentWidget(self.curve_note)

    # -- trading state and kill switch --------------------------------------------------------------
    def set_trading_state(self, state: TradingState, reason: str) -> None:
        color = STATE_COLORS.get(state, theme.MUTED)
        self.state_label.setText(f"Trading: {state.value} — {reason}")
        self.state_label.setStyleSheet(f"color: {color}; font-weight: bold")
        self.trading_state = state

    def _kill_dialog(self) -> bool | None:
        dialog = KillSwitchDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.flatten_check.isChecked()

    def trigger_kill_switch(self) -> bool:
        if self.kill_switch is None:
            return False
        flatten = self.ask_kill()
        if flatten is None:
            return False
        self.message.setText("kill switch: halting, cancelling" + (" and flattening…" if flatten else "…"))
        run_async(
            self.kill_switch.trigger(
                operator=self.operator, flatten=flatten, reason="kill switch (account panel)"
            ),
            self._kill_done,
        )
        return True

    def _kill_done(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.message.setText(f"kill switch FAILED: {error}")
        else:
            self.message.setText(f"kill switch done: {result.summary()}")

    def close_subscriptions(self) -> None:
        """Stop polling and following the bus (the bus part is also done when the panel is destroyed)."""
        self.account_timer.stop()
        self.history_timer.stop()
        cancel_subscriptions(self._subs)
