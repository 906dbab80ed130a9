"""Times in exchange time (ET, America/New_York) by default, UTC or local as a setting applied live;
every time column's header names its zone.

US equity sessions are defined in New York time (docs/alpaca-rules.md: "OPG orders submitted after
9:28 ET ...", "extended-hours trades (04:00–20:00 ET)"); the offsets below are the IANA tz
database's America/New_York (EST = UTC-5 in winter, EDT = UTC-4 in summer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.logging_setup import LogEntry
from app.qt.settings_access import SettingsFiles, apply_live
from app.settings import load
from services.domain.enums import Mode, OrderSide, OrderStatus, OrderType, TimeInForce
from services.domain.models import Fill, Order
from widgets.main_window import MainWindow
from widgets.models.common import TIMES, TimeDisplay
from widgets.models.fills_model import FillsTableModel
from widgets.models.log_model import LogTableModel
from widgets.models.orders_model import OrderRow, OrdersTableModel
from widgets.settings_dialog import SettingsDialog

WINTER = datetime(2026, 1, 2, 15, 0, 5, tzinfo=UTC)  # 10:00:05 EST
SUMMER = datetime(2026, 7, 1, 14, 30, 0, tzinfo=UTC)  # 10:30:00 EDT


@pytest.fixture(autouse=True)
def exchange_time() -> Iterator[None]:
    TIMES.set(TimeDisplay.EXCHANGE)
    yield
    TIMES.set(TimeDisplay.EXCHANGE)


def _order(ts: datetime, n: int) -> Order:
    return Order(
        id=f"o-{n}", client_order_id=f"c-{n}", symbol="AAPL", side=OrderSide.BUY, type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY, status=OrderStatus.NEW, qty=Decimal(10), filled_qty=Decimal(0),
        created_at=ts, updated_at=ts, submitted_at=ts, limit_price=Decimal("100.5"),
    )  # fmt: skip


def _header(model: Any, column: int = 0) -> str:
    return str(model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole))


def test_blotter_and_fills_show_exchange_time_and_say_so(qtmodeltester: Any) -> None:
    orders = OrdersTableModel()
    orders.stage_many([("c-1", OrderRow(_order(WINTER, 1))), ("c-2", OrderRow(_order(SUMMER, 2)))])
    orders.flush()
    assert _header(orders) == "Time (ET)"
    assert [orders.row_at(i).cells[0] for i in range(2)] == ["2026-01-02 10:00:05", "2026-07-01 10:30:00"]
    fills = FillsTableModel()
    fill = Fill("e-1", "o-1", "c-1", "AAPL", OrderSide.BUY, Decimal(1), Decimal(100), SUMMER)
    fills.stage("o-1:e-1", fill)
    fills.flush()
    assert _header(fills) == "Time (ET)" and fills.row_at(0).cells[0] == "2026-07-01 10:30:00"
    qtmodeltester.check(orders)
    qtmodeltester.check(fills)


def test_switching_to_utc_redraws_cells_and_headers_at_once(qtbot: Any, qtmodeltester: Any) -> None:
    orders = OrdersTableModel()
    orders.stage("c-1", OrderRow(_order(WINTER, 1)))
    orders.flush()
    log = LogTableModel()
    log.enqueue(LogEntry(SUMMER.replace(microsecond=250_000), "INFO", 20, "heron.app", "started"))
    log.flush()
    assert _header(log) == "Time (ET)" and log.index(0, 0).data() == "10:30:00.250"
    with qtbot.waitSignal(orders.headerDataChanged), qtbot.waitSignal(orders.dataChanged):
        TIMES.set(TimeDisplay.UTC)
    assert _header(orders) == "Time (UTC)" and orders.row_at(0).cells[0] == "2026-01-02 15:00:05"
    assert _header(log) == "Time (UTC)" and log.index(0, 0).data() == "14:30:00.250"
    # a row staged after the switch is in the new zone too, and sorting still goes by the instant
    orders.stage("c-2", OrderRow(replace(_order(SUMMER, 2))))
    orders.flush()
    assert orders.row_at(1).cells[0] == "2026-07-01 14:30:00"
    qtmodeltester.check(orders)
    TIMES.set(TimeDisplay.LOCAL)
    local = WINTER.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert orders.row_at(0).cells[0] == local
    assert _header(orders) == f"Time ({datetime.now().astimezone().tzname()})"


def test_the_zone_saved_in_settings_applies_without_restart(qtbot: Any, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from app.context import Services

    path = tmp_path / "settings.json"
    ctx = SimpleNamespace(settings=load(path))
    assert ctx.settings.ui.time_zone == "exchange"
    win = MainWindow(Mode.LOCAL)
    qtbot.addWidget(win)
    assert win.clock_label.text().endswith(" ET")
    services = Services(mode=Mode.LOCAL)
    d = SettingsDialog(ctx.settings, path, backend=SettingsFiles(),
                       apply_live=lambda new: apply_live(win, ctx, services, new))  # fmt: skip
    qtbot.addWidget(d)
    d.time_zone.setCurrentIndex(d.time_zone.findData("utc"))
    assert d.apply() is not None
    assert TIMES.display is TimeDisplay.UTC and win.clock_label.text().endswith(" UTC")
    assert load(path).ui.time_zone == "utc"
