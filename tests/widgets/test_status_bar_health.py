"""The status bar shows the services' derivation, and single events no longer overwrite it."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from services.broker.health import LinkState, LinkVerdict
from services.broker.latency import LatencyState, LatencyView
from services.broker.status import derive_status
from services.domain.enums import ConnectionState, Mode, TradingState
from services.domain.feeds import FeedVerdict
from widgets.status_bar import HeronStatusBar


def _text(bar: HeronStatusBar, name: str) -> str:
    label = bar.findChild(QLabel, name)
    assert label is not None
    return label.text()


def test_a_frozen_broker_is_never_shown_as_live_fresh_and_active(qtbot) -> None:  # type: ignore[no-untyped-def]
    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.show_health(
        derive_status(
            connection=LinkVerdict(LinkState.LIVE, "answered 0.1 s ago"),
            feeds=[FeedVerdict("stock", False, 0.2, "newest 0.2 s ago")],
            watched=2,
            trading_state=TradingState.ACTIVE,
            trading_reason="clean",
            latency=LatencyView(LatencyState.OK, "42 ms", "get_clock answered in 42 ms", 0.042),
        )
    )
    assert (_text(bar, "connectionLabel"), _text(bar, "stalenessLabel"), _text(bar, "tradingStateLabel")) == (
        "Connection: live",
        "Data: fresh",
        "Trading: ACTIVE",
    )
    frozen = derive_status(
        connection=LinkVerdict(LinkState.UNRESPONSIVE, "the broker has not answered get_clock for 6 s"),
        feeds=[FeedVerdict("stock", True, 14.0, "newest stock data message is 14 s old (limit 10 s)")],
        watched=2,
        trading_state=TradingState.ACTIVE,
        trading_reason="clean",
        latency=LatencyView(LatencyState.SLOW, "6.0 s… (waiting)", "get_clock has waited 6.0 s", 6.0),
    )
    bar.show_health(frozen)
    assert _text(bar, "connectionLabel") == "Connection: unresponsive"
    assert "get_clock" in bar.findChild(QLabel, "connectionLabel").toolTip()
    assert _text(bar, "stalenessLabel") == "Data: stock data 14 s old"
    assert _text(bar, "tradingStateLabel") == "Trading: ACTIVE (broker unreachable)"
    assert _text(bar, "latencyLabel") == "Latency: 6.0 s… (waiting)"
    # a stream event saying "live" must not overwrite the derived connection or trading state
    bar.set_connection("trading", ConnectionState.LIVE)
    bar.set_trading_state(TradingState.ACTIVE)
    assert _text(bar, "connectionLabel") == "Connection: unresponsive"
    assert _text(bar, "tradingStateLabel") == "Trading: ACTIVE (broker unreachable)"


def test_a_failing_call_is_shown_as_failing(qtbot) -> None:  # type: ignore[no-untyped-def]
    bar = HeronStatusBar(Mode.PAPER)
    qtbot.addWidget(bar)
    bar.show_health(
        derive_status(
            connection=LinkVerdict(LinkState.FAILING, "get_account failed: connection refused"),
            trading_state=TradingState.DISABLED,
            trading_reason="waiting",
            latency=LatencyView(LatencyState.FAILING, "failing", "get_account failed after 3 ms", 0.003),
        )
    )
    assert _text(bar, "latencyLabel") == "Latency: failing"
    assert _text(bar, "connectionLabel") == "Connection: failing"
    assert _text(bar, "tradingStateLabel") == "Trading: DISABLED"


def test_a_long_message_is_cut_short_of_the_badge_with_the_whole_in_the_tooltip(qtbot) -> None:  # type: ignore[no-untyped-def]
    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.resize(1366, 24)
    bar.show()
    qtbot.waitExposed(bar)
    message = "the watchlist could not be saved: " + "a long reason from the disk " * 30
    bar.notify("error", message)
    shown = bar.currentMessage()
    assert shown.endswith("…") and shown.startswith("Error: the watchlist")
    # it ends before the mode badge, with room between them
    assert bar.fontMetrics().horizontalAdvance(shown) + 6 + 20 <= bar.mode_badge.x()
    assert bar.toolTip() == " ".join(("Error: " + message).split())
    bar.clearMessage()
    assert bar.toolTip() == ""


def test_halted_since_is_shown_in_the_display_zone(qtbot) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from widgets.models.common import TIMES, TimeDisplay

    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    since = datetime(2026, 12, 5, 5, 35, 55, tzinfo=UTC)
    TIMES.set(TimeDisplay.EXCHANGE)
    try:
        bar.set_trading_state(TradingState.HALTED, "kill switch", since=since)
        # the same zone as the window's clock and tables: 05:35:55 UTC is 00:35:55 in New York
        assert "since 00:35:55 ET" in _text(bar, "tradingStateLabel")
        TIMES.set(TimeDisplay.UTC)
        assert "since 05:35:55 UTC" in _text(bar, "tradingStateLabel")
    finally:
        TIMES.set(TimeDisplay.EXCHANGE)


def test_on_a_narrow_bar_the_halt_leaves_room_for_the_other_fields(qtbot) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.resize(1366, 24)
    bar.show()
    qtbot.waitExposed(bar)
    since = datetime(2026, 12, 5, 5, 35, 55, tzinfo=UTC)
    bar.set_trading_state(TradingState.HALTED, "kill switch (account panel) (operator manual)", since=since)
    label = bar.findChild(QLabel, "tradingStateLabel")
    assert label is not None and label.text().startswith("Trading: HALTED since")
    # a quarter of the bar at most: the latency, rate and data fields keep their words
    assert label.fontMetrics().horizontalAdvance(label.text()) <= 1366 // 4


def test_short_fields_keep_their_values_on_a_1366_bar(qtbot) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from widgets.message_label import MessageLabel

    bar = HeronStatusBar(Mode.LOCAL)
    qtbot.addWidget(bar)
    bar.resize(1366, 24)
    bar.show()
    qtbot.waitExposed(bar)
    bar.set_exchange("http://127.0.0.1:38735 (started by Heron)", True)
    bar.set_connection("trading", ConnectionState.RECONNECTING)
    bar.set_latency_ms(913)
    bar.set_message_rate(12_345)
    bar.set_staleness({"AAPL": "old"}, 12)
    since = datetime(2026, 12, 5, 5, 35, 55, tzinfo=UTC)
    bar.set_trading_state(TradingState.HALTED, "kill switch HALT by manual " * 5, since=since)

    def cut(name: str) -> bool:
        label = bar.findChild(MessageLabel, name)
        assert label is not None
        return label.cut

    qtbot.waitUntil(lambda: bar.findChild(MessageLabel, "latencyLabel").width() > 0)
    assert not any(cut(n) for n in ("connectionLabel", "latencyLabel", "messageRateLabel", "stalenessLabel"))
    # the HALT is cut once, at its reason, never again at its time
    assert not cut("tradingStateLabel") and "since 00:35:55 ET" in bar.trading_state_label.text()
