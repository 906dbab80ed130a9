"""Account: figures from the broker's account (via the engine), trading state, equity curve from
portfolio history, kill switch with confirmation and the flatten option."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.account import AccountPanel

qloop = trading_rig.qloop
rig = trading_rig.rig


def make(qtbot, rig: Rig) -> AccountPanel:  # type: ignore[no-untyped-def]
    a = AccountPanel(
        refresh_account=rig.engine.refresh_account,
        portfolio_history=rig.broker.get_portfolio_history,
        trading=rig.trading,
        kill_switch=rig.kill_switch,
        bus=rig.bus,
    )
    qtbot.addWidget(a)
    return a


def test_account_figures_and_state(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    a = make(qtbot, rig)
    assert a.values["equity"].text() == "—"  # nothing shown before the broker answers
    assert "ACTIVE" in a.state_label.text()
    a.refresh()
    settle_until(qloop, "the account figures", lambda: a.values["equity"].text() != "—")
    assert a.values["equity"].text() == "100,000.00"
    assert a.values["buying_power"].text() == "200,000.00"
    assert a.values["day_pl"].text() == "+0.00"
    assert a.values["pdt"].text().startswith("no")
    rig.trading.set(TradingState.REDUCING, "drift on AAPL", source="test")
    assert "REDUCING — drift on AAPL" in a.state_label.text()


def test_equity_curve_from_history(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from services.broker.base import PortfolioHistory

    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    hist = PortfolioHistory(
        tuple(t0 + timedelta(days=i) for i in range(4)),
        (Decimal(100_000), None, Decimal(100_250), Decimal(99_900)),  # a gap (no value) is skipped
        (),
        (),
        Decimal(100_000),
        "1D",
    )

    async def history() -> PortfolioHistory:
        return hist

    a = make(qtbot, rig)
    a._history = history
    a.refresh_history()
    settle_until(qloop, "the equity history drawn", lambda: a.history_points)
    assert a.history_points == 3
    xs, ys = a.curve.getData()
    assert list(ys) == [100_000.0, 100_250.0, 99_900.0] and xs[1] == (t0 + timedelta(days=2)).timestamp()


@pytest.mark.expected_log(r"KILL SWITCH pulled|kill switch done")
def test_kill_switch_confirms_then_halts_cancels_and_flattens(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    a = make(qtbot, rig)
    res = qloop.run_until_complete(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(2),
                limit_price=Decimal(100),
            )
        )
    )
    a.ask_kill = lambda: None  # declined
    assert a.trigger_kill_switch() is False
    assert rig.trading.state is TradingState.ACTIVE
    a.ask_kill = lambda: True  # confirmed, with flatten
    assert a.trigger_kill_switch() is True
    settle_until(qloop, "the kill switch done", lambda: "kill switch done" in a.message.text())
    assert rig.trading.state is TradingState.HALTED
    assert "HALTED" in a.state_label.text()
    assert rig.store.find(client_order_id=res.client_order_id).cancel_requested  # type: ignore[union-attr]
    assert "kill switch done" in a.message.text()


def test_one_point_of_history_is_said_in_words_and_two_draw_the_curve(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    a = make(qtbot, rig)
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    a.set_history((t0,), (Decimal("100000.5"),), "1Min")
    assert a.curve_stack.currentWidget() is a.curve_note
    assert "one point (100,000.50)" in a.curve_note.text()
    a.set_history((t0, t0 + timedelta(minutes=1)), (Decimal(100_000), Decimal("99999.8")), "1Min")
    assert a.curve_stack.currentWidget() is a.plot and a.history_points == 2
    assert a.plot.getPlotItem().titleLabel.text == "Equity today, 1-minute"
    axis = a.plot.getPlotItem().getAxis("left")
    labels = axis.tickStrings([99_999.8, 100_000.0, 100_000.2], 1.0, 0.2)
    assert labels == ["99,999.80", "100,000.00", "100,000.20"]


def test_day_pl_title_shows_its_ampersand(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QFormLayout, QLabel

    a = make(qtbot, rig)
    form = next(lay for lay in a.findChildren(QFormLayout))
    title = form.labelForField(a.values["day_pl"])
    assert isinstance(title, QLabel) and title.text() == "Day P&&L"  # shown as "Day P&L", no mnemonic


def test_kill_switch_dialog_says_how_the_halt_is_released(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The HALT is latched: it survives a restart and only a release with a typed reason lifts it,
    "Resume trading…" in the status bar (README, "Releasing a kill-switch HALT"). The confirmation
    must not promise that trading simply resumes."""
    from PySide6.QtWidgets import QLabel

    from widgets.account import KillSwitchDialog

    d = KillSwitchDialog()
    qtbot.addWidget(d)
    text = " ".join(lbl.text() for lbl in d.findChildren(QLabel))
    assert "resumes trading" not in text
    assert "also after a restart" in text
    assert "with a reason: Resume trading…" in text


@pytest.mark.expected_log(r"KILL SWITCH pulled", r"kill switch done")
def test_trade_menu_kill_switch_reaches_the_account_panels_confirmation(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """The kill switch is in the Trade menu with its keys (Ctrl+Shift+H by default), not only on the
    account panel, which may sit behind another tab; it asks first, as the panel's button does."""
    from types import SimpleNamespace

    from app.context import Services
    from app.qt.panels.spec import PanelEnv
    from app.qt.panels.trading import _account
    from services.domain.enums import Mode
    from widgets.main_window import MainWindow
    from widgets.shortcuts import Command

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    action = window.commands[Command.KILL_SWITCH]
    assert not action.isEnabled()  # nothing to pull before the account panel is built
    services = Services(mode=Mode.LOCAL, engine=rig.engine, broker=rig.broker, trading=rig.trading,
                        kill_switch=rig.kill_switch)  # fmt: skip
    panel = _account(PanelEnv(SimpleNamespace(bus=rig.bus), services, window))  # type: ignore[arg-type]
    qtbot.addWidget(panel)
    assert action.isEnabled() and action.shortcut().toString() == "Ctrl+Shift+H"
    assert action in window.findChild(type(window.menuBar().actions()[0].menu()), "tradeMenu").actions()
    asked: list[bool] = []
    panel.ask_kill = lambda: asked.append(True)  # declined (None): nothing happens
    action.trigger()
    assert asked == [True] and rig.trading.state is TradingState.ACTIVE
    panel.ask_kill = lambda: False  # confirmed, without flatten
    action.trigger()
    settle_until(qloop, "the kill switch done", lambda: rig.trading.state is TradingState.HALTED)


@pytest.mark.expected_log(r"KILL SWITCH pulled by alice|kill switch done")
def test_the_kill_switch_names_who_pulled_it(qtbot, rig: Rig, qloop, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """The journal and the log say who pulled it: the computer's login name, not a made-up one."""
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    a = make(qtbot, rig)
    a.ask_kill = lambda: False  # confirmed, no flatten
    assert a.trigger_kill_switch() is True
    settle_until(qloop, "the kill switch done", lambda: "kill switch done" in a.message.text())
    assert any(r.getMessage().startswith("KILL SWITCH pulled by alice") for r in caplog.records)
    assert rig.trading.state is TradingState.HALTED


def test_without_a_login_name_the_operator_is_said_as_operator(qtbot, rig: Rig, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def no_user() -> str:
        raise OSError("no login name in this environment")

    monkeypatch.setattr("getpass.getuser", no_user)
    assert make(qtbot, rig).operator == "operator"


def test_a_timer_refresh_with_no_loop_running_queues_nothing(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A panel outliving its event loop (a window left over after its session, Heron shutting down)
    queued each timer refresh on a loop that never ran it; the un-awaited coroutines were reported by
    the garbage collector in whichever later test it ran, failing that test. With no loop running
    the timers now read nothing; while one runs they refresh as before."""
    import asyncio
    from types import SimpleNamespace

    reads: list[str] = []

    async def refresh_account() -> None:
        reads.append("account")

    async def history() -> SimpleNamespace:
        reads.append("history")
        return SimpleNamespace(timestamps=(), equity=(), timeframe="1D")

    a = AccountPanel(refresh_account=refresh_account, portfolio_history=history)  # type: ignore[arg-type]
    qtbot.addWidget(a)
    idle = asyncio.new_event_loop()  # the current loop, never run again
    asyncio.set_event_loop(idle)
    try:
        a.account_timer.timeout.emit()
        a.history_timer.timeout.emit()
        assert reads == [] and not asyncio.all_tasks(idle)

        async def a_loop_runs() -> None:
            a.account_timer.timeout.emit()
            a.history_timer.timeout.emit()
            await asyncio.sleep(0.05)

        idle.run_until_complete(a_loop_runs())
        assert sorted(reads) == ["account", "history"]
    finally:
        asyncio.set_event_loop(None)
        idle.close()
