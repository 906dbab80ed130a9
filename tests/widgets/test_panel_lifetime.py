"""A destroyed trading panel leaves the event bus: its subscriptions are cancelled, and events
published afterwards reach no handler of it (before, they reached a panel whose Qt objects were
gone and each failed in the bus)."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QWidget

from services.domain.bus import Subscription
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.events import AccountEvent, PositionsEvent
from services.domain.models import OrderRequest
from services.marketdata.pipeline import MarketDataBatch, MarketDataBatchEvent, RawQuote
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig
from widgets.account import AccountPanel
from widgets.blotter import BlotterPanel
from widgets.lifetime import cancel_on_destroy
from widgets.positions import PositionsPanel
from widgets.watchlist import WatchlistPanel

qloop = trading_rig.qloop
rig = trading_rig.rig


def panels(rig: Rig) -> list[QWidget]:
    return [
        BlotterPanel(rig.store, rig.engine, rig.bus),
        PositionsPanel(rig.store, rig.book, rig.engine, rig.bus),
        WatchlistPanel(rig.book, rig.bus, ["AAPL"]),
        AccountPanel(
            refresh_account=rig.engine.refresh_account,
            portfolio_history=rig.broker.get_portfolio_history,
            trading=rig.trading,
            kill_switch=rig.kill_switch,
            bus=rig.bus,
        ),
    ]


def every_event(rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """An order and its fill, a positions report, a market-data batch, an account report and a
    trading-state change: every event type the four panels follow."""
    request = OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(10), limit_price=Decimal(100)
    )
    res = qloop.run_until_complete(rig.engine.submit(request))
    rec = rig.store.find(client_order_id=res.client_order_id)
    rig.broker.fill(rec.broker_order_id, Decimal(10), Decimal(100))  # type: ignore[union-attr]
    qloop.run_until_complete(rig.engine.refresh_account())
    rig.bus.publish(PositionsEvent(rig.clock(), ()))
    quotes = {"AAPL": RawQuote(1, 1, 1, 1, 0)}
    rig.bus.publish(MarketDataBatchEvent(rig.clock(), MarketDataBatch(quotes, {}, (), (), (), (), 0, 1, 1)))
    account = qloop.run_until_complete(rig.broker.get_account())
    rig.bus.publish(AccountEvent(rig.clock(), account))
    rig.trading.set(TradingState.REDUCING, "lifetime test", source="test")


def test_destroyed_panels_no_longer_receive_events(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    built = panels(rig)
    subs: list[Subscription] = [s for p in built for s in p._subs]  # type: ignore[attr-defined]
    assert len(subs) == 8 and all(s.active for s in subs)
    for p in built:
        p.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not any(s.active for s in subs)
    every_event(rig, qloop)
    assert rig.bus.handler_errors == 0


def test_live_panels_keep_receiving_events(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    built = panels(rig)
    for p in built:
        qtbot.addWidget(p)
    every_event(rig, qloop)
    assert rig.bus.handler_errors == 0
    blotter, positions = built[0], built[1]
    assert isinstance(blotter, BlotterPanel) and isinstance(positions, PositionsPanel)
    qtbot.waitUntil(lambda: blotter.orders.rowCount() == 1 and positions.model.rowCount() == 1, timeout=2000)


def test_close_subscriptions_cancels_at_once(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    for p in panels(rig):
        qtbot.addWidget(p)
        held = list(p._subs)  # type: ignore[attr-defined]
        p.close_subscriptions()  # type: ignore[attr-defined]
        assert held and not any(s.active for s in held) and p._subs == []  # type: ignore[attr-defined]


def test_cancel_on_destroy_holds_the_list_not_the_widget(qapp, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    w = QWidget()
    subs = [rig.bus.subscribe(PositionsEvent, lambda e: None)]
    cancel_on_destroy(w, subs)
    assert subs[0].active
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert subs == []
