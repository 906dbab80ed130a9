"""What happens to orders reaches the Log panel once per event, at WARNING for a refusal, with the
broker's reason and no traceback: a rejected order is one line, and a cancel the broker refuses on
the request (the blotter's Cancel) is a line too (before, it was only in the journal).

Alpaca: ``POST /v2/orders`` answers 403 for insufficient buying power, ``DELETE /v2/orders/{id}``
422 when the order is no longer cancelable (Alpaca docs, "Orders")."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from PySide6.QtCore import Qt

from app.logging_setup import LogHub, LogHubHandler
from services.broker.base import BrokerRejected
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.models import OrderRequest
from services.orders.activity import ActivityLog
from tests.widgets import trading_rig
from tests.widgets.trading_rig import Rig, settle_until
from widgets.blotter import BlotterPanel
from widgets.log_panel import LogPanel

qloop = trading_rig.qloop
rig = trading_rig.rig

LIMIT = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(3),
                     limit_price=Decimal("100.5"))  # fmt: skip


@pytest.fixture
def log_panel(qtbot, rig: Rig) -> Iterator[LogPanel]:  # type: ignore[no-untyped-def]
    hub = LogHub(capacity=100)
    handler = LogHubHandler(hub, logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    activity = ActivityLog(rig.bus, rig.store)
    panel = LogPanel(capacity=100)
    qtbot.addWidget(panel)
    panel.attach(hub)
    yield panel
    activity.close()
    root.removeHandler(handler)


def _warnings(panel: LogPanel) -> list[str]:
    panel.model.flush()
    m = panel.model
    rows = [
        [str(m.data(m.index(r, c), Qt.ItemDataRole.DisplayRole)) for c in range(4)]
        for r in range(m.rowCount())
    ]
    return [row[3] for row in rows if row[1] == "WARNING"]


@pytest.mark.expected_log(r"rejected: insufficient buying power")
def test_a_rejected_order_is_one_warning_line_with_the_brokers_reason(
    log_panel: LogPanel, rig: Rig, qloop
) -> None:  # type: ignore[no-untyped-def]
    rig.broker.faults.reject_submit.append("insufficient buying power")
    res = qloop.run_until_complete(rig.engine.submit(LIMIT))
    assert not res.accepted
    assert _warnings(log_panel) == [
        f"AAPL buy 3 limit 100.5 rejected: insufficient buying power (manual, {res.client_order_id})"
    ]


@pytest.mark.expected_log(r"cancel refused by the broker: .*order is not cancelable")
def test_a_cancel_refused_from_the_blotter_is_a_warning_line_with_the_reason(  # type: ignore[no-untyped-def]
    qtbot, log_panel: LogPanel, rig: Rig, qloop
) -> None:
    blotter = BlotterPanel(rig.store, rig.engine, rig.bus)
    qtbot.addWidget(blotter)
    res = qloop.run_until_complete(rig.engine.submit(LIMIT))
    blotter.flush()

    async def refuse(order_id: str) -> None:
        raise BrokerRejected("order is not cancelable", status=422)

    rig.broker.cancel_order = refuse  # type: ignore[method-assign]
    order = blotter.orders.order(str(res.client_order_id))
    assert order is not None and blotter.cancel(order)
    settle_until(qloop, "the refusal in the Log panel", lambda: _warnings(log_panel))
    assert _warnings(log_panel) == [
        "cancel refused by the broker: AAPL buy 3 limit 100.5 keeps working as it was "
        f"({res.client_order_id}): order is not cancelable"
    ]
    assert "[traceback]" not in " ".join(_warnings(log_panel))
