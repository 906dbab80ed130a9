"""Blotter: model contract, per-frame coalescing, bounded rows, status/symbol filter, sorting,
context actions (cancel / replace / duplicate), cancel-all confirmation and CSV export."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import Qt

from services.domain.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Fill, Order
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.blotter import BlotterPanel, ReplaceDialog, write_csv
from widgets.models.fills_model import FillsTableModel
from widgets.models.orders_model import OrderRow, OrdersFilterProxy, OrdersTableModel
from widgets.models.table import clusters

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
COL = {name: i for i, name in enumerate(OrdersTableModel.COLUMNS)}
STATUS, LIMIT, SOURCE = COL["Status"], COL["Limit"], COL["Source"]

qloop = trading_rig.qloop
rig = trading_rig.rig


def order(i: int, status: OrderStatus = OrderStatus.NEW, symbol: str = "AAPL", **kw: object) -> Order:
    ts = T0 + timedelta(seconds=i)
    base = Order(
        id=f"b-{i}", client_order_id=f"c-{i}", symbol=symbol, side=OrderSide.BUY, type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY, status=status, qty=Decimal(10), filled_qty=Decimal(0),
        created_at=ts, updated_at=ts, submitted_at=ts, limit_price=Decimal("100.5"),
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_models_pass_qtmodeltester(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    m.stage_many(
        (f"c-{i}", OrderRow(order(i, OrderStatus.FILLED if i % 2 else OrderStatus.NEW))) for i in range(20)
    )
    m.flush()
    qtmodeltester.check(m)
    proxy = OrdersFilterProxy()
    proxy.setSourceModel(m)
    proxy.set_group("Open")
    qtmodeltester.check(proxy)
    f = FillsTableModel()
    f.stage("o:e", Fill("e", "o", "c", "AAPL", OrderSide.BUY, Decimal(1), Decimal("100.25"), T0))
    f.flush()
    qtmodeltester.check(f)


def test_flush_coalesces_to_one_data_changed_per_cluster(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel(max_rows=10_000)
    m.stage_many((f"c-{i}", OrderRow(order(i))) for i in range(1000))
    m.flush()
    spans: list[tuple[int, int]] = []
    m.dataChanged.connect(lambda a, b, *_: spans.append((a.row(), b.row())))
    for i in (3, 5, 9, 700, 701):
        m.stage(f"c-{i}", OrderRow(order(i, OrderStatus.PARTIALLY_FILLED)))
    m.stage(f"c-{5}", OrderRow(order(5, OrderStatus.FILLED)))  # the newest staged payload wins
    assert m.rowCount() == 1000 and m.pending == 5
    m.flush()
    assert spans == [(3, 9), (700, 701)]
    assert m.order("c-5").status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert clusters([1, 2, 100], gap=10) == [(1, 2), (100, 100)]


def test_rows_are_bounded_and_closed_orders_go_first(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel(max_rows=100)
    m.stage("open-0", OrderRow(order(0, OrderStatus.NEW, client_order_id="open-0")))
    m.flush()
    m.stage_many((f"c-{i}", OrderRow(order(i, OrderStatus.FILLED))) for i in range(1, 300))
    m.flush()
    assert m.rowCount() <= 100
    assert m.row_of("open-0") == 0  # the open order survives trimming
    assert m.row_of("c-299") is not None and m.row_of("c-1") is None
    assert m.trimmed_total >= 200


def test_filter_by_status_group_and_symbol(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    statuses = [OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED,
                OrderStatus.PARTIALLY_FILLED]  # fmt: skip
    m.stage_many(
        (f"c-{i}", OrderRow(order(i, s, "AAPL" if i % 2 else "MSFT"))) for i, s in enumerate(statuses)
    )
    m.flush()
    p.set_group("Open")
    assert p.rowCount() == 2
    p.set_group("Filled")
    assert p.rowCount() == 1
    p.set_group("Canceled")
    assert p.rowCount() == 1
    p.set_group("All")
    p.set_symbol_text("msf")
    assert p.rowCount() == 3
    # a status change moves the row between groups at the next flush (dynamic filter)
    p.set_symbol_text("")
    p.set_group("Open")
    m.stage("c-0", OrderRow(order(0, OrderStatus.FILLED, "MSFT")))
    m.flush()
    assert p.rowCount() == 1


def test_sort_uses_numbers_not_text(qtbot) -> None:  # type: ignore[no-untyped-def]
    m = OrdersTableModel()
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    for i, price in enumerate(["9.5", "100", "20"]):
        m.stage(f"c-{i}", OrderRow(order(i, limit_price=Decimal(price))))
    m.flush()
    limit = OrdersTableModel.COLUMNS.index("Limit")
    p.sort(limit, Qt.SortOrder.AscendingOrder)
    assert [p.data(p.index(r, limit)) for r in range(3)] == ["9.50", "20.00", "100.00"]


def test_panel_follows_the_store_and_exports_csv(qtbot, rig: Rig, qloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    req_limit = __import__("services.domain.models", fromlist=["OrderRequest"]).OrderRequest
    res = qloop.run_until_complete(
        rig.engine.submit(
            req_limit(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(4),
                limit_price=Decimal(100),
            )
        )
    )
    assert res.accepted
    # staged and applied at the next frame (~33 ms); on a busy machine the submit itself can take
    # longer than a frame, so the row may already be shown — it is never shown twice
    assert (b.orders.rowCount(), b.orders.pending) in ((0, 1), (1, 0))
    qtbot.waitUntil(lambda: b.orders.rowCount() == 1, timeout=1000)
    row = b.orders.row_at(0)
    assert row.cells[1] == "AAPL" and row.cells[STATUS] == "new" and row.cells[SOURCE] == "manual"
    # the broker fills it: fills tab and status update
    rec = rig.store.find(client_order_id=res.client_order_id)
    rig.broker.fill(rec.broker_order_id, Decimal(4), Decimal("100"))  # type: ignore[union-attr]
    b.flush()
    assert b.orders.row_at(0).cells[STATUS] == "filled"
    assert b.fills.rowCount() == 1 and b.fills.row_at(0).cells[4] == "100.00"
    out = tmp_path / "orders.csv"
    assert b.export_to(out) == 1
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][:3] == ["created_at", "symbol", "side"] and rows[1][1] == "AAPL"
    assert rows[1][rows[0].index("status")] == "filled"
    assert b.export_to(tmp_path / "fills.csv", fills=True) == 1
    # the filter narrows what is exported
    b.group_combo.setCurrentText("Open")
    assert b.export_to(tmp_path / "open.csv") == 0
    assert write_csv(tmp_path / "x.csv", ["a"], [["1"], ["2"]]) == 2


def test_context_actions_cancel_replace_duplicate(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    from services.domain.models import OrderRequest

    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    res = qloop.run_until_complete(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(4),
                limit_price=Decimal(100),
            )
        )
    )
    b.flush()
    o = b.orders.order(res.client_order_id)
    assert o is not None
    got: list[Order] = []
    b.duplicateRequested.connect(got.append)
    b.duplicate(o)
    assert got == [o]
    b.replace_values = lambda order: {"limit_price": Decimal("100.02")}
    assert b.replace(o)
    cid = res.client_order_id
    settle_until(qloop, "the replace booked", lambda: rig.store.meta(cid).limit_price == Decimal("100.02"))  # type: ignore[union-attr]
    b.flush()
    assert rig.store.meta(res.client_order_id).limit_price == Decimal("100.02")  # type: ignore[union-attr]
    assert b.orders.order(res.client_order_id).limit_price == Decimal("100.02")  # type: ignore[union-attr]
    o = b.orders.order(res.client_order_id)
    assert b.cancel(o)  # type: ignore[arg-type]
    settle_until(qloop, "the cancel requested", lambda: rig.store.find(client_order_id=cid).cancel_requested)  # type: ignore[union-attr]
    assert rig.store.find(client_order_id=res.client_order_id).cancel_requested  # type: ignore[union-attr]


def test_cancel_all_needs_confirmation(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    asked: list[str] = []
    b.ask = lambda title, text: asked.append(title) or False  # type: ignore[func-returns-value]
    assert b.cancel_all() is False
    assert asked == ["Cancel all orders"] and "list_orders" not in rig.broker.calls
    b.ask = lambda title, text: True
    assert b.cancel_all() is True
    settle_until(qloop, "the orders listed for cancel all", lambda: "list_orders" in rig.broker.calls)
    assert "list_orders" in rig.broker.calls


def test_replace_dialog_validates(qtbot) -> None:  # type: ignore[no-untyped-def]
    d = ReplaceDialog(order(1))
    qtbot.addWidget(d)
    assert d.read() == "nothing changed"
    d.limit_edit.setText("abc")
    assert "not a number" in str(d.read())
    d.limit_edit.setText("101")
    d.qty_edit.setText("0")
    assert "greater than zero" in str(d.read())
    d.qty_edit.setText("12")
    assert d.read() == {"qty": Decimal(12), "limit_price": Decimal(101)}


def test_replace_dialog_asks_what_the_replacement_works(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Alpaca PATCH /v2/orders/{order_id} (Alpaca's Trading API reference, patchOrderByOrderId): the
    replacement is a new order whose filled_qty starts at 0 and whose qty (PatchOrderRequest:
    "number of shares to trade") is what it works. On a 100-share buy with 60 filled the dialog
    offers the 40 left, shows the 60 filled, and says what typing 120 ends with (180 bought)."""
    o = order(1, OrderStatus.PARTIALLY_FILLED, qty=Decimal(100), filled_qty=Decimal(60))
    d = ReplaceDialog(o, position=Decimal(60))
    qtbot.addWidget(d)
    assert d.qty_edit.text() == "40"
    assert d.filled_label.text() == "60 of 100"
    assert "buy 100 in total (60 filled + 40)" in d.outcome.text()
    assert d.read() == "nothing changed"  # the default works what is left: nothing to replace
    d.limit_edit.setText("101")
    assert d.read() == {"limit_price": Decimal(101)}  # qty unchanged: the engine sends the 40 left
    d.qty_edit.setText("120")
    assert "buy 180 in total (60 filled + 120)" in d.outcome.text()
    assert "AAPL position 60 → 180" in d.outcome.text()
    assert d.read() == {"qty": Decimal(120), "limit_price": Decimal(101)}


def test_bounded_note_is_shown(qtbot, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(rig.store, rig.engine, rig.bus, max_orders=5000, max_fills=10000)
    qtbot.addWidget(b)
    assert "5,000 orders" in b.note.text() and "10,000 fills" in b.note.text() and "database" in b.note.text()


class _NoStore:
    def orders(self) -> list[object]:
        return []

    def view(self, rec: object) -> Order:
        raise AssertionError("no records")

    def find(self, **_: object) -> None:
        return None


def test_view_paints_the_visible_rows_from_their_row_cache(qtbot) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(_NoStore(), max_orders=1000)
    qtbot.addWidget(b)
    b.resize(900, 400)
    b.show()
    b.orders.stage_many((f"c-{i}", OrderRow(order(i, symbol=f"S{i}"))) for i in range(500))
    b.flush()
    view = b.orders_view
    before = view.paints
    image = view.viewport().grab().toImage()
    assert view.paints > before
    # newest first (time descending): view row 0 is the last order, and its cached texts were laid out
    top = view.row_source(0)  # type: ignore[misc]
    assert top is not None and top.key == "c-499" and top.static is not None
    assert [s.text() for s in top.static] == top.cells
    # rows far below the viewport are never laid out
    assert b.orders.row_at(b.orders.row_of("c-0")).static is None  # type: ignore[arg-type]
    # text really reached the pixels of the first row (not only the background)
    y = view.rowViewportPosition(0) + view.rowHeight(0) // 2
    colours = {image.pixel(x, y) for x in range(0, view.columnWidth(0) + view.columnWidth(1))}
    assert len(colours) > 2
    # an update replaces the row, so its stale layout is dropped and rebuilt on the next paint
    b.orders.stage("c-499", OrderRow(order(499, OrderStatus.FILLED, symbol="S499")))
    b.flush()
    view.viewport().grab()
    top = view.row_source(0)  # type: ignore[misc]
    assert top is not None and top.static is not None and top.static[STATUS].text() == "filled"


def test_model_keeps_its_sort_order_through_inserts_moves_and_trims(qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    import random

    from widgets.models.table import SORT_ROLE

    m = OrdersTableModel(max_rows=300)
    p = OrdersFilterProxy()
    p.setSourceModel(m)
    qtmodeltester.check(p)  # stays connected: every signal below is checked for consistency
    p.sort(LIMIT, Qt.SortOrder.DescendingOrder)  # by limit price, the header click path
    rng = random.Random(5)
    statuses = [OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED]
    for _ in range(25):
        for _u in range(20):
            i = rng.randrange(400)
            price = Decimal(rng.randrange(1, 60))  # many ties: arrival order breaks them
            m.stage(f"c-{i}", OrderRow(order(i, rng.choice(statuses), limit_price=price)))
        m.flush()
        keys = m.keys()
        prices = [m.payload(k).order.limit_price for k in keys]
        assert prices == sorted(prices, reverse=True)
        assert all(m.row_of(k) == n for n, k in enumerate(keys))
        assert m.rowCount() <= 300
    # the proxy shows the model's order and never asked the model for sort keys
    asked: list[int] = []
    orig = m.data
    m.data = lambda ix, role=0: (asked.append(role), orig(ix, role))[1]  # type: ignore[method-assign]
    m.reset_rows((f"c-{i}", OrderRow(order(i, limit_price=Decimal(i % 7 + 1)))) for i in range(250))
    assert SORT_ROLE not in asked
    shown = [p.data(p.index(r, LIMIT)) for r in range(p.rowCount())]
    assert shown == sorted(shown, key=float, reverse=True)
    # back to arrival order (column -1), then ascending time
    p.sort(0, Qt.SortOrder.AscendingOrder)
    assert m.keys() == [f"c-{i}" for i in range(250)]


def test_a_moved_row_keeps_its_selection(qtbot) -> None:  # type: ignore[no-untyped-def]
    b = BlotterPanel(_NoStore(), max_orders=1000)
    qtbot.addWidget(b)
    b.orders_view.sortByColumn(LIMIT, Qt.SortOrder.AscendingOrder)
    b.orders.stage_many((f"c-{i}", OrderRow(order(i, limit_price=Decimal(10 + i)))) for i in range(20))
    b.flush()
    b.orders_view.selectRow(0)
    assert b.selected_order().client_order_id == "c-0"  # type: ignore[union-attr]
    b.orders.stage("c-0", OrderRow(order(0, limit_price=Decimal(500))))  # replaced: now the dearest
    b.flush()
    assert b.orders.row_of("c-0") == 19
    assert b.selected_order().client_order_id == "c-0"  # type: ignore[union-attr]
    assert b.selected_order().limit_price == Decimal(500)  # type: ignore[union-attr]


def test_timestamp_cells_match_strftime_in_the_display_zone() -> None:
    from datetime import timezone

    from widgets.models.common import EXCHANGE_TZ, fmt_timestamp

    for ts in (T0, datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5))),
               datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)):  # fmt: skip
        assert fmt_timestamp(ts) == ts.astimezone(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M:%S")


def test_a_filled_limit_order_keeps_its_limit_price(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """The fill's trade update carries the order with its limit price (Alpaca docs, "Websocket
    Streaming": trade_updates ``order`` is the full order entity): the Limit column keeps it
    through partial and complete fills."""
    from services.domain.models import OrderRequest

    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    res = qloop.run_until_complete(rig.engine.submit(OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(4), limit_price=Decimal("99.5"),
    )))  # fmt: skip
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.broker_order_id is not None
    for qty, status in ((Decimal(1), "partially_filled"), (Decimal(3), "filled")):
        rig.broker.fill(rec.broker_order_id, qty, Decimal("99.4"))
        b.flush()
        row = b.orders.row_at(0)
        assert row.cells[STATUS] == status and row.cells[LIMIT] == "99.50"


def test_the_stored_fills_are_in_the_fills_tab_after_a_restart(qtbot, rig: Rig, qloop) -> None:  # type: ignore[no-untyped-def]
    """After a restart the orders show filled from the database, and so do their fills: the blotter
    the app builds starts with the stored fills, the newest ``MAX_FILLS`` of them at most."""
    from types import SimpleNamespace

    from app.context import Services
    from app.qt.panels.spec import PanelEnv
    from app.qt.panels.trading import _blotter
    from services.domain.enums import Mode
    from services.domain.models import OrderRequest
    from services.orders.store import OrderStore

    res = qloop.run_until_complete(
        rig.engine.submit(
            OrderRequest(
                "AAPL",
                OrderSide.BUY,
                OrderType.LIMIT,
                TimeInForce.DAY,
                qty=Decimal(4),
                limit_price=Decimal(100),
            )
        )
    )
    rec = rig.store.find(client_order_id=res.client_order_id)
    assert rec is not None and rec.broker_order_id is not None
    rig.broker.fill(rec.broker_order_id, Decimal(1), Decimal("99.50"))
    rig.clock.advance(60)
    rig.broker.fill(rec.broker_order_id, Decimal(3), Decimal("100"))
    rig.store.flush()
    restarted = OrderStore(rig.bus, rig.db, rig.clock)  # a new process on the same database
    restarted.load()
    services = Services(mode=Mode.LOCAL, orders=restarted, engine=rig.engine)
    b = _blotter(PanelEnv(SimpleNamespace(bus=rig.bus), services))  # type: ignore[arg-type]
    qtbot.addWidget(b)
    assert isinstance(b, BlotterPanel)
    assert b.orders.rowCount() == 1 and b.orders.row_at(0).cells[STATUS] == "filled"
    assert b.fills.rowCount() == 2
    assert sorted(b.fills.row_at(i).cells[4] for i in range(2)) == ["100.00", "99.50"]
    assert {b.fills.row_at(i).payload.qty for i in range(2)} == {Decimal(1), Decimal(3)}
    # bounded: the newest fills only, oldest first
    newest = restarted.recent_fills(1)
    assert [f.price for f in newest] == [Decimal("100")]


def test_an_oco_exit_the_broker_refused_shows_its_class_and_prices(
    qtbot, rig: Rig, qloop, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The broker never reported the order, so the row comes from the request: class "oco", the
    take-profit's limit and the stop-loss's stop, in the table and in its CSV (an OCO's body has no
    top-level limit_price: docs/alpaca-rules.md, "Brackets, OCO, OTO")."""
    from services.domain.enums import OrderClass
    from services.domain.models import OrderLegSpec, OrderRequest

    b = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(b)
    # an exit needs a position to exit (Heron's qty_available rule refuses it before the broker)
    buy = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(5),
                       limit_price=Decimal(100))  # fmt: skip
    entry = qloop.run_until_complete(rig.engine.submit(buy))
    rec = rig.store.find(client_order_id=entry.client_order_id)
    assert rec is not None and rec.broker_order_id is not None
    rig.broker.fill(rec.broker_order_id, Decimal(5), Decimal(100))
    rig.broker.faults.reject_submit.append("potential wash trade detected")
    request = OrderRequest("AAPL", OrderSide.SELL, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(5),
                           order_class=OrderClass.OCO, take_profit=OrderLegSpec(limit_price=Decimal("110.5")),
                           stop_loss=OrderLegSpec(stop_price=Decimal("95.25")))  # fmt: skip
    assert not qloop.run_until_complete(rig.engine.submit(request)).accepted
    b.flush()
    rows = [b.orders.row_at(i) for i in range(b.orders.rowCount())]
    row = next(r for r in rows if r.cells[STATUS] == "rejected")
    assert (row.cells[4], row.cells[7], row.cells[8]) == ("oco", "110.50", "95.25")
    out = tmp_path / "orders.csv"
    assert b.export_to(out) == 2
    header, *lines = list(csv.reader(out.read_text().splitlines()))
    got = next(d for d in (dict(zip(header, ln, strict=True)) for ln in lines) if d["status"] == "rejected")
    assert (got["order_class"], got["limit_price"], got["stop_price"]) == ("oco", "110.5", "95.25")
