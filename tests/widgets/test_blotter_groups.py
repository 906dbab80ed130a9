"""Blotter: bracket / OCO / OTO legs grouped under their parent, order class and trail columns, the
symbol filter on the Fills tab, Cancel all naming its count, and the CSV files' bytes.

Alpaca's rule (docs/alpaca-rules.md, "Brackets, OCO, OTO"): with ``nested=true`` Alpaca "will roll up
multi-leg orders under the legs field of primary order", each leg an order with its own ``id`` and
``client_order_id`` (alpaca-py ``GetOrdersRequest.nested``; the Order entity's ``legs``); the
take-profit leg is a ``limit`` order and the stop-loss leg a ``stop`` / ``stop_limit`` order
[Alpaca docs "Orders", bracket orders].
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import Qt

from services.domain.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.events import TradeUpdateEvent
from services.domain.models import Fill, Order
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.blotter import BlotterPanel, cancel_all_question
from widgets.models.fills_model import FillsFilterProxy, FillsTableModel, fill_key
from widgets.models.orders_model import OrderRow, OrdersFilterProxy, OrdersTableModel
from widgets.models.row_view import PAD

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
COL = {name: i for i, name in enumerate(OrdersTableModel.COLUMNS)}

qloop = trading_rig.qloop
rig = trading_rig.rig


def order(cid: str, i: int, status: OrderStatus = OrderStatus.NEW, **kw: object) -> Order:
    ts = T0 + timedelta(seconds=i)
    base = Order(
        id=f"b-{cid}", client_order_id=cid, symbol="AAPL", side=OrderSide.BUY, type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY, status=status, qty=Decimal(10), filled_qty=Decimal(0),
        created_at=ts, updated_at=ts, submitted_at=ts, limit_price=Decimal("100.5"),
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def bracket(i: int, entry: OrderStatus = OrderStatus.NEW, tp: OrderStatus = OrderStatus.HELD,
            sl: OrderStatus = OrderStatus.HELD) -> list[tuple[str, OrderRow]]:  # fmt: skip
    """A bracket buy: the entry (parent) and its take-profit limit and stop-loss stop legs."""
    p = f"br-{i}"
    legs = [
        (f"{p}-tp", OrderRow(order(f"{p}-tp", i, tp, side=OrderSide.SELL, limit_price=Decimal(110),
                                   order_class=OrderClass.BRACKET), "manual", p)),
        (f"{p}-sl", OrderRow(order(f"{p}-sl", i, sl, side=OrderSide.SELL, type=OrderType.STOP,
                                   limit_price=None, stop_price=Decimal(95),
                                   order_class=OrderClass.BRACKET), "manual", p)),
    ]  # fmt: skip
    return [(p, OrderRow(order(p, i, entry, order_class=OrderClass.BRACKET), "manual")), *legs]


def shown_keys(p: OrdersFilterProxy) -> list[str]:
    return [p.source_key(r) for r in range(p.rowCount())]


def test_legs_sit_under_their_parent_whatever_the_sort(qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    qtmodeltester.check(m)
    qtmodeltester.check(p)
    m.stage("c-0", OrderRow(order("c-0", 0, limit_price=Decimal(105))))
    m.flush()
    for key, row in bracket(1):
        m.stage(key, row)
    m.flush()
    m.stage("c-2", OrderRow(order("c-2", 2, limit_price=Decimal(101))))
    m.flush()
    p.sort(COL["Time"], Qt.SortOrder.DescendingOrder)
    assert shown_keys(p) == ["c-2", "br-1", "br-1-tp", "br-1-sl", "c-0"]
    # the group sorts by its parent's value; the legs' own prices (110, none) do not break it
    p.sort(COL["Limit"], Qt.SortOrder.AscendingOrder)
    assert shown_keys(p) == ["br-1", "br-1-tp", "br-1-sl", "c-2", "c-0"]
    p.sort(COL["Limit"], Qt.SortOrder.DescendingOrder)
    assert shown_keys(p) == ["c-0", "c-2", "br-1", "br-1-tp", "br-1-sl"]
    # a parent whose sort value changes takes its legs along
    m.stage("br-1", OrderRow(order("br-1", 1, limit_price=Decimal(200), order_class=OrderClass.BRACKET)))
    m.flush()
    assert shown_keys(p) == ["br-1", "br-1-tp", "br-1-sl", "c-0", "c-2"]
    cells = {k: m.row_at(m.row_of(k)).cells for k in ("br-1", "br-1-tp", "br-1-sl", "c-0")}  # type: ignore[arg-type]
    assert cells["br-1"][0].startswith("▾ ") and cells["br-1-tp"][0].startswith("   └ ")
    assert not cells["c-0"][0].startswith(("▾", "▸", " "))
    assert [cells[k][COL["Class"]] for k in cells] == ["bracket", "take profit", "stop loss", "simple"]


def test_a_leg_arriving_before_its_parent_is_regrouped(qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    qtmodeltester.check(p)
    parent, tp, sl = bracket(1)
    m.stage("c-9", OrderRow(order("c-9", 9)))
    m.stage(*tp)
    m.flush()
    m.stage(*parent)
    m.stage(*sl)
    m.flush()
    p.sort(COL["Time"], Qt.SortOrder.DescendingOrder)
    assert shown_keys(p) == ["c-9", "br-1", "br-1-tp", "br-1-sl"]


def test_folding_a_group_hides_its_legs(qtbot) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(_NoStore())
    qtbot.addWidget(b)
    for key, row in bracket(1):
        b.orders.stage(key, row)
    b.flush()
    assert b.proxy.rowCount() == 3
    view = b.orders_view
    leg_time = b.orders.row_at(b.orders.row_of("br-1-tp")).cells[0]  # type: ignore[arg-type]
    assert view.columnWidth(0) >= view.fontMetrics().horizontalAdvance(leg_time) + 2 * PAD  # not elided
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(b.proxy.index(0, 0)).center()
    )
    assert shown_keys(b.proxy) == ["br-1"]
    assert b.orders.row_at(b.orders.row_of("br-1")).cells[0].startswith("▸ ")  # type: ignore[arg-type]
    b.toggle_legs("br-1")
    assert shown_keys(b.proxy) == ["br-1", "br-1-tp", "br-1-sl"]
    # a click on another column selects, it does not fold
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(b.proxy.index(0, 1)).center()
    )
    assert b.proxy.rowCount() == 3


def test_a_filled_entry_with_working_exits_is_an_open_group(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    for key, row in bracket(1, OrderStatus.FILLED, OrderStatus.NEW, OrderStatus.HELD):
        m.stage(key, row)
    m.stage("c-5", OrderRow(order("c-5", 5, OrderStatus.FILLED)))
    m.flush()
    p.set_group("Open")
    assert sorted(shown_keys(p)) == ["br-1", "br-1-sl", "br-1-tp"]
    p.set_group("Filled")
    assert sorted(shown_keys(p)) == ["br-1", "c-5"]
    # the take-profit fills, the stop-loss is canceled: the group is no longer open
    m.stage("br-1-tp", replace(m.payload("br-1-tp"), order=order("br-1-tp", 1, OrderStatus.FILLED)))
    m.stage("br-1-sl", replace(m.payload("br-1-sl"), order=order("br-1-sl", 1, OrderStatus.CANCELED)))
    m.flush()
    p.set_group("Open")
    assert shown_keys(p) == []
    p.set_group("Filled")
    assert sorted(shown_keys(p)) == ["br-1", "br-1-tp", "c-5"]


def test_class_and_trail_columns(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    trailing = dict(type=OrderType.TRAILING_STOP, limit_price=None, side=OrderSide.SELL)
    m.stage("t-1", OrderRow(order("t-1", 1, trail_price=Decimal("1.50"), **trailing)))  # type: ignore[arg-type]
    m.stage("t-2", OrderRow(order("t-2", 2, trail_percent=Decimal("2.5"), **trailing)))  # type: ignore[arg-type]
    m.stage("o-3", OrderRow(order("o-3", 3, order_class=OrderClass.OCO)))
    m.flush()
    cell = lambda k, c: m.row_at(m.row_of(k)).cells[COL[c]]  # type: ignore[arg-type]  # noqa: E731
    assert (cell("t-1", "Trail"), cell("t-2", "Trail"), cell("o-3", "Trail")) == ("$1.5", "2.5%", "—")
    assert cell("o-3", "Class") == "oco" and cell("t-1", "Class") == "simple"
    assert "trail percent" in m.headerData(
        COL["Trail"], Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )


def test_the_store_s_bracket_legs_reach_the_blotter_under_their_parent(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    """A bracket placed outside Heron arrives on the trade stream with its legs nested (Alpaca's
    ``legs`` array, each leg with its own id); the store adopts each leg as a record of its own
    and the blotter shows them under the parent, with the class and the legs' roles."""
    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    _, (_, tp), (_, sl) = bracket(1)
    legs = (replace(tp.order, id="leg-tp-id"), replace(sl.order, id="leg-sl-id"))
    parent = order("ext-1", 1, order_class=OrderClass.BRACKET, legs=legs, id="parent-id")
    rig.engine.on_trade_update(TradeUpdateEvent(T0, "new", parent))
    b.flush()
    keys = shown_keys(b.proxy)
    assert keys == ["ext-1", "br-1-tp", "br-1-sl"]
    classes = [b.proxy.data(b.proxy.index(r, COL["Class"])) for r in range(3)]
    assert classes == ["bracket", "take profit", "stop loss"]
    # a restart reads the same records back, still grouped
    b2 = BlotterPanel(rig.store, rig.engine)
    qtbot.addWidget(b2)
    assert shown_keys(b2.proxy) == keys


def test_legs_nested_in_a_broker_order_are_grouped_without_the_store(qtbot) -> None:  # type: ignore[no-untyped-def]
    """An order event carrying Alpaca's nested ``legs`` (as a resync reads them with nested=true)
    shows each leg under its parent even when the store has no record of the legs."""
    from services.domain.bus import EventBus
    from services.domain.events import OrderChangedEvent

    bus = EventBus()
    b = BlotterPanel(_NoStore(), None, bus)
    qtbot.addWidget(b)
    _, (_, tp), (_, sl) = bracket(1)
    parent = order("p-1", 1, order_class=OrderClass.BRACKET, legs=(tp.order, sl.order))
    bus.publish(OrderChangedEvent(T0, parent, "resync"))
    b.flush()
    assert shown_keys(b.proxy) == ["p-1", "br-1-tp", "br-1-sl"]
    assert b.orders.parent_of("br-1-sl") == "p-1"


def test_symbol_filter_applies_to_fills(qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(_NoStore())
    qtbot.addWidget(b)
    for i, sym in enumerate(["AAPL", "MSFT", "BTC/USD"]):
        f = Fill(f"e{i}", f"o{i}", f"c{i}", sym, OrderSide.BUY, Decimal(1), Decimal(100), T0)
        b.fills.stage(fill_key(f), f)
    b.flush()
    qtmodeltester.check(b.fills_proxy)
    b.symbol_filter.setText("btc")
    assert [b.fills_proxy.data(b.fills_proxy.index(r, 1)) for r in range(b.fills_proxy.rowCount())] == [
        "BTC/USD"
    ]
    b.symbol_filter.setText("")
    assert b.fills_proxy.rowCount() == 3
    proxy = FillsFilterProxy()
    proxy.setSourceModel(FillsTableModel())
    qtmodeltester.check(proxy)


def test_cancel_all_names_the_count_and_reports_the_result(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    from services.domain.models import OrderRequest

    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    for sym, price in (("AAPL", 100), ("AAPL", 99), ("MSFT", 100)):
        req = OrderRequest(sym, OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1),
                           limit_price=Decimal(price))  # fmt: skip
        assert qloop.run_until_complete(rig.engine.submit(req)).accepted
    asked: list[str] = []
    b.ask = lambda title, text: asked.append(text) or True  # type: ignore[func-returns-value]
    rig.broker.faults.pending_cancel = True  # the broker answers the cancels later
    assert b.cancel_all()
    assert asked[0].startswith("Cancel the 3 working orders (AAPL 2, MSFT 1)?")
    settle_until(qloop, "the cancel-all result", lambda: "sent" in b.status_label.text())
    b.flush()
    assert b.status_label.text() == (
        "cancel all: 3 cancel request(s) sent; 0 of 3 working order(s) no longer working, 3 still working"
    )
    # the status follows the broker's answers until none of those orders works any more
    for rec in rig.store.open_orders():
        rig.broker.confirm_cancel(rec.broker_order_id)  # type: ignore[arg-type]
    b.flush()
    assert b.status_label.text() == (
        "cancel all: 3 cancel request(s) sent; 3 of 3 working order(s) no longer working"
    )
    assert cancel_all_question([]).startswith("No working order")


class _NoStore:
    def orders(self) -> list[object]:
        return []

    def view(self, rec: object) -> Order:
        raise AssertionError("no records")

    def find(self, **_: object) -> None:
        return None


def test_csv_bytes_are_data_not_display_text(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(_NoStore())
    qtbot.addWidget(b)
    ts = datetime(2026, 3, 2, 15, 4, 5, 120000, tzinfo=UTC)
    big = order("c-1", 1, qty=Decimal("12345.000001"), limit_price=Decimal("0.1") + Decimal("0.2"),
                created_at=ts, updated_at=ts, id="")  # fmt: skip
    b.orders.stage("c-1", OrderRow(big, ""))
    for key, row in bracket(2, OrderStatus.FILLED):
        b.orders.stage(key, row)
    f = Fill("e1", "b-c-1", "c-1", "AAPL", OrderSide.BUY, Decimal("3"), Decimal("100.10"), ts)
    b.fills.stage(fill_key(f), f)
    b.flush()
    b.toggle_legs("br-2")  # folded legs are still exported
    b.orders_view.sortByColumn(COL["Time"], Qt.SortOrder.AscendingOrder)
    b.export_to(tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_bytes() == (
        b"created_at,symbol,side,type,order_class,leg_role,parent_client_order_id,qty,notional,filled_qty,"
        b"limit_price,stop_price,trail_price,trail_percent,filled_avg_price,status,time_in_force,source,"
        b"client_order_id,order_id\r\n"
        b"2026-03-02T15:00:02+00:00,AAPL,buy,limit,bracket,,,10,,0,100.5,,,,,filled,day,manual,br-2,b-br-2\r\n"
        b"2026-03-02T15:00:02+00:00,AAPL,sell,limit,bracket,take profit,br-2,10,,0,110,,,,,held,day,manual,"
        b"br-2-tp,b-br-2-tp\r\n"
        b"2026-03-02T15:00:02+00:00,AAPL,sell,stop,bracket,stop loss,br-2,10,,0,,95,,,,held,day,manual,"
        b"br-2-sl,b-br-2-sl\r\n"
        b"2026-03-02T15:04:05.120000+00:00,AAPL,buy,limit,simple,,,12345.000001,,0,0.3,,,,,new,day,,c-1,\r\n"
    )
    b.export_to(tmp_path / "f.csv", fills=True)
    assert (tmp_path / "f.csv").read_bytes() == (
        b"time,symbol,side,qty,price,value,order_id,client_order_id,execution_id\r\n"
        b"2026-03-02T15:04:05.120000+00:00,AAPL,buy,3,100.1,300.3,b-c-1,c-1,e1\r\n"
    )
