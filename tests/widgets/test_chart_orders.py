"""Trading from the chart: order lines follow the engine's events; drag to replace, cancel from the
line, right-click stages the ticket. A real engine, order store and risk gate over the fake broker
(tests/widgets/trading_rig.py); mouse input is sent to the chart's view as real Qt mouse events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pyqtgraph as pg
import pytest
import qasync
from PySide6 import QtCore, QtGui, QtWidgets

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from services.domain.models import Order, OrderLegSpec, OrderRequest
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, run_until_idle, settle_until
from widgets.chart.order_model import LineRole, round_to_tick
from widgets.chart.orders import OrderLineItem
from widgets.chart.panel import ChartPanel

qloop = trading_rig.qloop
rig = trading_rig.rig
MIN = 60 * 10**9


def flat_bars(n: int = 120) -> dict[str, np.ndarray]:
    """Bars around 100 (the rig quotes AAPL 99.90 / 100.10)."""
    rng = np.random.default_rng(3)
    c = 100 + rng.normal(0, 0.3, n)
    o = np.r_[100.0, c[:-1]]
    return {
        "t": 1_704_205_800 * 10**9 + np.arange(n, dtype=np.int64) * MIN,
        "o": o,
        "h": np.maximum(o, c) + 0.2,
        "l": np.minimum(o, c) - 0.2,
        "c": c,
        "v": np.full(n, 1000.0),
    }


@pytest.fixture
def every_mouse_move() -> Iterator[None]:
    """pyqtgraph drops mouse moves closer than 10 ms apart; synthetic ones all come at once."""
    before = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", 0)
    yield
    pg.setConfigOption("mouseRateLimit", before)


@pytest.fixture
def chart(qtbot, rig: Rig, every_mouse_move: None) -> ChartPanel:  # type: ignore[no-untyped-def]
    p = ChartPanel(visible_bars=100)
    qtbot.addWidget(p)
    p.resize(1000, 600)
    p.show()
    qtbot.waitExposed(p)
    p.set_history("AAPL", "1Min", flat_bars())
    p.orders.attach(rig.engine, rig.store, rig.bus)
    p.orders.needs_confirmation = lambda: False
    p.price_plot.getViewBox().setYRange(97, 103, padding=0)
    QtWidgets.QApplication.processEvents()
    return p


def submit(loop: qasync.QEventLoop, rig: Rig, **kw: object) -> str:
    fields: dict[str, object] = dict(
        symbol="AAPL",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        qty=Decimal(10),
        limit_price=Decimal("99"),
    )
    fields.update(kw)
    result = loop.run_until_complete(rig.engine.submit(OrderRequest(**fields), source="manual"))  # type: ignore[arg-type]
    assert result.accepted, result.message
    assert result.client_order_id is not None
    return result.client_order_id


def only_item(chart: ChartPanel) -> OrderLineItem:
    items = list(chart.orders.items.values())
    assert len(items) == 1, [i.text for i in items]
    return items[0]


def broker_order(rig: Rig, cid: str):  # type: ignore[no-untyped-def]
    rec = rig.store.find(client_order_id=cid)
    return rig.broker.orders[rec.broker_order_id]


# ---------------------------------------------------------------------------- mouse


def view_point(chart: ChartPanel, price: float, frac: float = 0.5) -> QtCore.QPointF:
    """Where ``price`` is on the chart's view widget, ``frac`` of the way across the visible bars."""
    x0, x1 = chart.visible_index_range()
    scene = chart.price_plot.getViewBox().mapViewToScene(QtCore.QPointF(x0 + frac * (x1 - x0), price))
    return QtCore.QPointF(chart.plot_widget.mapFromScene(scene))


def send(
    chart: ChartPanel,
    kind: QtCore.QEvent.Type,
    pos: QtCore.QPointF,
    button: QtCore.Qt.MouseButton,
    buttons: QtCore.Qt.MouseButton,
) -> None:
    vp = chart.plot_widget.viewport()
    ev = QtGui.QMouseEvent(
        kind,
        pos,
        QtCore.QPointF(vp.mapToGlobal(pos.toPoint())),
        button,
        buttons,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(vp, ev)


def drag(chart: ChartPanel, start: float, end: float, *, release: bool = True) -> None:
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    a, b = view_point(chart, start), view_point(chart, end)
    send(chart, QtCore.QEvent.Type.MouseButtonPress, a, left, left)
    for i in range(1, 11):
        p = QtCore.QPointF(a.x(), a.y() + (b.y() - a.y()) * i / 10)
        send(chart, QtCore.QEvent.Type.MouseMove, p, none, left)
    if release:
        send(chart, QtCore.QEvent.Type.MouseButtonRelease, b, left, none)


def release(chart: ChartPanel, at: float) -> None:
    left = QtCore.Qt.MouseButton.LeftButton
    send(
        chart,
        QtCore.QEvent.Type.MouseButtonRelease,
        view_point(chart, at),
        left,
        QtCore.Qt.MouseButton.NoButton,
    )


def right_click(chart: ChartPanel, price: float) -> QtWidgets.QMenu:
    right = QtCore.Qt.MouseButton.RightButton
    p = view_point(chart, price)
    chart.orders.last_menu = None
    send(chart, QtCore.QEvent.Type.MouseButtonPress, p, right, right)
    send(chart, QtCore.QEvent.Type.MouseButtonRelease, p, right, QtCore.Qt.MouseButton.NoButton)
    menu = chart.orders.last_menu
    assert menu is not None, "no context menu"
    menu.hide()
    return menu


def action(menu: QtWidgets.QMenu, name: str) -> QtGui.QAction:
    found = [a for a in menu.actions() if a.objectName() == name]
    assert found, [a.objectName() for a in menu.actions()]
    return found[0]


# ---------------------------------------------------------------------------- tests


def test_a_working_limit_order_is_a_line_at_its_price(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    submit(qloop, rig, limit_price=Decimal("99.25"))
    item = only_item(chart)
    assert item.value() == pytest.approx(99.25)
    assert item.text == "BUY 10 LMT 99.25"
    assert item.movable
    submit(qloop, rig, symbol="MSFT", limit_price=Decimal("190"))  # another symbol: not on this chart
    assert len(chart.orders.items) == 1
    chart.orders.set_symbol("MSFT")
    assert only_item(chart).text == "BUY 10 LMT 190.00"


def test_line_moves_on_replace_follows_partial_fill_and_goes_on_cancel(
    chart: ChartPanel, rig: Rig, qloop
) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.25"))
    result = qloop.run_until_complete(rig.engine.replace(cid, limit_price=Decimal("98.50")))
    assert result.message == "replaced"
    item = only_item(chart)
    assert item.value() == pytest.approx(98.5) and item.text == "BUY 10 LMT 98.50"
    rig.broker.fill(broker_order(rig, cid).id, Decimal(4), Decimal("98.50"))
    assert only_item(chart).text == "BUY 6 LMT 98.50"  # what is left to work
    markers = chart.fill_positions()
    assert len(markers) == 1 and markers[0][1:] == (98.5, "buy")
    assert qloop.run_until_complete(rig.engine.cancel(cid))
    assert chart.orders.items == {}


def test_stop_limit_trailing_and_bracket_legs_are_labelled(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    submit(
        qloop,
        rig,
        side=OrderSide.BUY,
        type=OrderType.STOP_LIMIT,
        stop_price=Decimal("101"),
        limit_price=Decimal("101.5"),
    )
    texts = sorted(i.text for i in chart.orders.items.values())
    assert texts == ["BUY 10 STP LMT limit 101.50", "BUY 10 STP LMT stop 101.00"]
    qloop.run_until_complete(rig.engine.cancel_all())
    assert chart.orders.items == {}
    cid = submit(
        qloop,
        rig,
        type=OrderType.LIMIT,
        limit_price=Decimal("99.5"),
        order_class=OrderClass.BRACKET,
        take_profit=OrderLegSpec(limit_price=Decimal("102")),
        stop_loss=OrderLegSpec(stop_price=Decimal("98")),
    )
    rig.broker.fill(broker_order(rig, cid).id, Decimal(10), Decimal("99.5"))  # entry filled: exits work
    roles = {(i.line.role, i.text) for i in chart.orders.items.values()}
    assert roles == {(LineRole.TAKE_PROFIT, "SELL 10 TP 102.00"), (LineRole.STOP_LOSS, "SELL 10 SL 98.00")}


def test_a_trailing_stop_is_drawn_at_the_stop_the_broker_reports_with_its_trail(chart: ChartPanel) -> None:
    # Alpaca reports a trailing stop's current stop as stop_price and tracks hwm (docs/alpaca-rules.md)
    t = datetime(2026, 3, 2, 15, tzinfo=UTC)
    order = Order(
        id="b1",
        client_order_id="c1",
        symbol="AAPL",
        side=OrderSide.SELL,
        type=OrderType.TRAILING_STOP,
        time_in_force=TimeInForce.DAY,
        status=OrderStatus.NEW,
        qty=Decimal(5),
        filled_qty=Decimal(0),
        created_at=t,
        updated_at=t,
        submitted_at=t,
        trail_price=Decimal("1.5"),
        hwm=Decimal("101"),
    )
    chart.orders.show_order(order)
    item = only_item(chart)
    assert item.value() == pytest.approx(99.5) and not item.movable  # a trail is not a price to drag
    assert item.text == "SELL 5 TRAIL 1.50 stop 99.50"
    chart.orders.show_order(replace(order, stop_price=Decimal("99.80"), hwm=Decimal("101.3")))
    assert only_item(chart).value() == pytest.approx(99.8)
    chart.orders.show_order(replace(order, trail_price=Decimal("0.4"), stop_price=Decimal("100.9")))
    assert only_item(chart).text == "SELL 5 TRAIL 0.40 stop 100.90"  # in the stock's steps, not 0.4000
    chart.orders.show_order(
        replace(order, trail_price=None, trail_percent=Decimal("0.5"), stop_price=Decimal("100.5"))
    )
    assert only_item(chart).text == "SELL 5 TRAIL 0.5% stop 100.50"
    chart.orders.show_order(replace(order, status=OrderStatus.CANCELED))
    assert chart.orders.items == {}


def test_a_trailing_stop_trails_the_prints_until_the_broker_reports_it_again(chart: ChartPanel) -> None:
    # Alpaca moves hwm with each print and reports the order only when it changes state
    # (docs/alpaca-rules.md "Trailing stops ... Alpaca tracks hwm")
    t = datetime(2026, 3, 2, 15, tzinfo=UTC)
    order = Order(id="b1", client_order_id="c1", symbol="AAPL", side=OrderSide.SELL,
                  type=OrderType.TRAILING_STOP, time_in_force=TimeInForce.DAY, status=OrderStatus.NEW,
                  qty=Decimal(5), filled_qty=Decimal(0), created_at=t, updated_at=t, submitted_at=t,
                  trail_price=Decimal("1.5"), hwm=Decimal("101"), stop_price=Decimal("99.5"))  # fmt: skip
    chart.orders.show_order(order)
    minute = 60 * 10**9
    t_ns = int(t.timestamp()) * 10**9 + minute  # a bar that began after the report
    chart.update_last_bar(t_ns, 100.8, 101.6, 100.7, 101.4, 10)
    item = only_item(chart)
    assert item.value() == pytest.approx(100.1) and item.text == "SELL 5 TRAIL 1.50 stop ≈ 100.10"
    chart.update_last_bar(t_ns + minute, 101.4, 101.5, 100.0, 100.2, 10)  # no new high: stays
    assert only_item(chart).value() == pytest.approx(100.1)
    reported = replace(
        order, hwm=Decimal("101.8"), stop_price=Decimal("100.3"), updated_at=t.replace(minute=5)
    )
    chart.orders.show_order(reported)  # the broker's word replaces the estimate
    assert (
        only_item(chart).value() == pytest.approx(100.3)
        and only_item(chart).text == "SELL 5 TRAIL 1.50 stop 100.30"
    )


def test_dragging_a_line_replaces_the_order_at_the_dropped_price_on_the_tick(
    chart: ChartPanel, rig: Rig, qloop
) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.00"))
    sent: list[tuple[str, str, Decimal]] = []
    chart.orders.replaceRequested.connect(lambda k, f, p: sent.append((k, f, p)))
    drag(chart, 99.0, 98.4371, release=False)
    assert only_item(chart).text.endswith("✓ risk ok")
    release(chart, 98.4371)
    # Alpaca refuses sub-penny increments: 0.01 at $1.00 and above (docs/alpaca-rules.md, [ORD])
    assert len(sent) == 1
    key, field, price = sent[0]
    assert (key, field) == (cid, "limit_price")
    assert price.as_tuple().exponent == -2 and abs(price - Decimal("98.4371")) < Decimal("0.05")
    settle_until(qloop, "the broker works the new price", lambda: broker_order(rig, cid).limit_price == price)
    settle_until(
        qloop, "the line at the new price", lambda: only_item(chart).value() == pytest.approx(float(price))
    )
    assert only_item(chart).text == f"BUY 10 LMT {price}"


def test_an_order_heron_did_not_place_is_dragged_with_the_instrument_the_chart_read(
    chart: ChartPanel, rig: Rig, qloop
) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.00"))
    rig.engine._assets.clear()  # as after a restart that adopted the order: the engine read no asset
    chart.orders._assets.clear()
    chart.orders.set_symbol("MSFT")
    chart.orders.set_symbol("AAPL")  # the chart reads the instrument when it shows the symbol
    settle_until(qloop, "the chart's instrument", lambda: chart.orders._assets.get("AAPL") is not None)
    drag(chart, 99.0, 98.5)
    settle_until(qloop, "the replace", lambda: broker_order(rig, cid).limit_price != Decimal("99.00"))


def test_round_to_tick_follows_alpacas_sub_penny_rule() -> None:
    # docs/alpaca-rules.md "Prices": 0.01 at $1.00 and above, 0.0001 below [ORD]
    assert round_to_tick(98.4371) == Decimal("98.44")
    assert round_to_tick(Decimal("1.005")) == Decimal("1.01")
    assert round_to_tick(0.123456) == Decimal("0.1235")
    assert round_to_tick(Decimal("0.00001")) == Decimal("0.0001")
    assert round_to_tick(Decimal("60123.456"), Decimal("1")) == Decimal("60123")


@pytest.mark.expected_log(r"not replaced: trading_state: HALTED")
def test_a_drag_the_risk_gate_refuses_snaps_back_without_sending(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.00"))
    rig.trading.escalate(TradingState.HALTED, "halted for the test", source="test")
    sent: list[object] = []
    chart.orders.replaceRequested.connect(lambda *a: sent.append(a))
    drag(chart, 99.0, 98.0, release=False)
    text = only_item(chart).text  # while dragging: the new price, the old one and the pre-check
    assert re.fullmatch(r"BUY 10 LMT 98\.0\d ← 99\.00  ✗ trading_state: HALTED.*", text), text
    release(chart, 98.0)
    assert sent == [] and "replace_order" not in rig.broker.calls
    item = only_item(chart)
    assert item.value() == pytest.approx(99.0) and item.text == "BUY 10 LMT 99.00"
    assert "not replaced" in chart.orders.status_label.text()
    assert broker_order(rig, cid).limit_price == Decimal("99.00")


@pytest.mark.expected_log(r"replace refused")
def test_a_replace_the_broker_refuses_snaps_back_and_says_why(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.00"))
    # the order fills at the broker before the PATCH arrives; Heron has not heard yet
    rig.broker.faults.drop_all_events = True
    rig.broker.fill(broker_order(rig, cid).id, Decimal(10), Decimal("99"))
    drag(chart, 99.0, 98.0)
    settle_until(qloop, "the broker's refusal", lambda: "replace refused" in chart.orders.status_label.text())
    assert "unable to replace order in current state" in chart.orders.status_label.text()
    item = only_item(chart)
    assert item.value() == pytest.approx(99.0) and item.text == "BUY 10 LMT 99.00"


def test_declined_confirmation_snaps_back(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    submit(qloop, rig, limit_price=Decimal("99.00"))
    asked: list[str] = []
    chart.orders.needs_confirmation = lambda: True
    chart.orders.ask = lambda title, text: asked.append(text) is not None and False
    drag(chart, 99.0, 98.0)
    assert asked and "with 98.0" in asked[0]
    assert "replace_order" not in rig.broker.calls
    assert only_item(chart).value() == pytest.approx(99.0)


def test_cancel_from_the_line(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    cid = submit(qloop, rig, limit_price=Decimal("99.00"))
    menu = right_click(chart, 99.0)
    cancel = action(menu, "chartCancelOrder")
    assert cancel.text() == "Cancel BUY 10 LMT 99.00"
    cancel.trigger()
    settle_until(qloop, "the line to go", lambda: chart.orders.items == {})
    assert broker_order(rig, cid).status is OrderStatus.CANCELED
    assert all(a.objectName() != "chartCancelOrder" for a in right_click(chart, 101.0).actions())


def test_right_click_stages_an_order_at_the_price_without_sending(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    staged: list[tuple[str, str, str, Decimal]] = []
    chart.stageOrderRequested.connect(lambda *a: staged.append(a))
    menu = right_click(chart, 101.2345)
    act = action(menu, "chartStage_sell_limit")
    assert re.fullmatch(r"Sell limit at 101\.2\d", act.text()), act.text()
    act.trigger()
    action(right_click(chart, 98.0), "chartStage_buy_stop").trigger()
    (sym, side, otype, price), second = staged
    assert (sym, side, otype) == ("AAPL", "sell", "limit") and f"Sell limit at {price}" == act.text()
    assert price.as_tuple().exponent == -2  # on the tick (docs/alpaca-rules.md "Prices", [ORD])
    assert second[:3] == ("AAPL", "buy", "stop") and abs(second[3] - Decimal(98)) < Decimal("0.05")
    run_until_idle(qloop)
    assert rig.broker.submits_received == []


@pytest.mark.expected_log(r"^heron\.app\.panels: \w+ panel left out: ")
def test_the_app_wires_the_chart_to_the_engine_and_the_ticket(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from app.context import Services
    from app.logging_setup import LogHub
    from app.qt.panels.trading import install
    from app.settings import Settings
    from services.domain.enums import Mode
    from widgets.main_window import MainWindow

    window = MainWindow(Mode.LOCAL)
    qtbot.addWidget(window)
    settings = Settings()
    settings.ui.confirm_orders = False
    ctx = SimpleNamespace(bus=rig.bus, settings=settings, mode=Mode.LOCAL, notify=lambda *a: None,
                          paths=None, log_hub=LogHub())  # fmt: skip
    services = Services(mode=Mode.LOCAL, orders=rig.store, engine=rig.engine, book=rig.book)
    panels = install(window, ctx, services)
    chart, ticket = panels.chart, panels.ticket
    assert chart is not None and ticket is not None
    assert chart.orders.engine is rig.engine and not chart.orders.needs_confirmation()
    ticket.confirm_orders = True  # the ticket's setting is the chart's
    assert chart.orders.needs_confirmation()
    chart.orders.set_symbol("AAPL")
    submit(qloop, rig, limit_price=Decimal("99.10"))
    assert only_item(chart).text == "BUY 10 LMT 99.10"
    chart.orders.stage(OrderSide.SELL, OrderType.STOP, Decimal("98.75"))  # what the menu item does
    assert ticket.symbol() == "AAPL" and ticket.side() is OrderSide.SELL
    assert ticket.order_type() is OrderType.STOP and ticket.stop_edit.text() == "98.75"
    run_until_idle(qloop)
    assert [o.type for o in rig.broker.orders.values()] == [OrderType.LIMIT]  # the staged one is not sent


def test_crypto_prices_step_by_the_pairs_own_increment(chart: ChartPanel, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    # Alpaca's sub-penny rule is for stocks (docs/alpaca-rules.md "Prices", [ORD]); a crypto pair has
    # its own increment, the asset's price_increment (Alpaca's Asset entity)
    from services.domain.models import Asset

    pair = Asset("BTC/USD", "crypto", "CRYPTO", True, False, True, price_increment=Decimal("0.5"))
    rig.broker._assets["BTC/USD"] = pair
    chart.set_history("BTC/USD", "1Min", flat_bars())
    chart.price_plot.getViewBox().setYRange(97, 103, padding=0)
    settle_until(qloop, "the pair's increment", lambda: chart.orders.increment("BTC/USD") == Decimal("0.5"))
    menu = right_click(chart, 100.37)
    assert action(menu, "chartStage_buy_limit").text() in ("Buy limit at 100.50", "Buy limit at 100.00")
    assert chart.orders.increment("AAPL") is None
