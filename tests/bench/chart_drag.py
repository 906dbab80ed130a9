"""``chart_drag_replace_ms``: release of a dragged order line → the replaced order's line drawn at
its new price (part of the chart benchmark, tests/bench/bench_chart.py).

The real local exchange runs as a subprocess (tests/support/exchange.py), reached through the real
alpaca-py adapter; the chart, the execution engine, the order store and the risk gate run on one
qasync loop, as in the app. A resting buy limit far below the market is dragged with real Qt
mouse events (press, moves, release) on the chart's view; each sample runs from the release to the
moment the line shows the broker's new price (no "replacing…" note) and a frame has been painted.
The confirmation is off (what is measured is the machinery, not a person reading a dialog); the
risk gate runs its full pre-check on release and again in the engine.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SAMPLES = 30
SYMBOL = "AAPL"
PRICES = (Decimal("90.00"), Decimal("89.50"))  # far below the exchange's AAPL: the order rests


def _engine(broker: Any, db: Any) -> Any:
    from services.domain.bus import EventBus
    from services.orders.engine import ExecutionEngine
    from services.orders.journal import OrderJournal
    from services.orders.store import OrderStore
    from services.risk.gate import RiskGate
    from services.risk.limits import RiskLimits
    from services.risk.trading_state import TradingStateMachine
    from tests.bench.bench_order import _Open, _StaticPrices

    def now() -> datetime:
        return datetime.now(UTC)

    bus = EventBus()
    journal = OrderJournal(db, now)
    store = OrderStore(bus, db, now, batch=journal.batch)
    trading = TradingStateMachine(bus, now, journal)
    limits = RiskLimits(max_orders_per_minute=10**6, duplicate_window_s=Decimal(0))
    return ExecutionEngine(broker, store, journal, RiskGate(limits), trading, bus, now,
                           prices=_StaticPrices(Decimal(100)), hours=_Open())  # fmt: skip


def _mouse(chart: Any, kind: Any, price: float, button: Any, buttons: Any) -> None:
    from PySide6 import QtCore, QtGui, QtWidgets

    x0, x1 = chart.visible_index_range()
    scene = chart.price_plot.getViewBox().mapViewToScene(QtCore.QPointF((x0 + x1) / 2, price))
    pos = QtCore.QPointF(chart.plot_widget.mapFromScene(scene))
    vp = chart.plot_widget.viewport()
    ev = QtGui.QMouseEvent(kind, pos, QtCore.QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                           QtCore.Qt.KeyboardModifier.NoModifier)  # fmt: skip
    QtWidgets.QApplication.sendEvent(vp, ev)


async def _samples(chart: Any, engine: Any, app: Any) -> list[float]:
    from PySide6 import QtCore

    from services.domain.enums import OrderSide, OrderType, TimeInForce
    from services.domain.events import OrderChangedEvent
    from services.domain.models import OrderRequest

    await engine.refresh_account()
    engine.trading.enable()
    req = OrderRequest(SYMBOL, OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1),
                       limit_price=PRICES[0])  # fmt: skip
    res = await engine.submit(req)
    if not res.accepted:
        raise RuntimeError(f"benchmark order refused: {res.message}")
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    move, ev_type = QtCore.QEvent.Type.MouseMove, QtCore.QEvent.Type
    out: list[float] = []
    waiting: dict[str, Any] = {}

    def drawn(_: object) -> None:  # after the chart's own handler: is the line at the new price?
        fut, item, target = waiting.get("fut"), waiting.get("item"), waiting.get("target")
        if fut is not None and not fut.done() and item.note == "" and abs(item.value() - target) < 0.006:
            fut.set_result(None)

    sub = engine.bus.subscribe(OrderChangedEvent, drawn)
    for i in range(SAMPLES + 3):
        (item,) = chart.orders.items.values()
        start, target = Decimal(str(round(item.value(), 2))), PRICES[(i + 1) % 2]
        _mouse(chart, ev_type.MouseButtonPress, float(start), left, left)
        for k in range(1, 9):
            _mouse(chart, move, float(start + (target - start) * k / 8), none, left)
        waiting.update(fut=asyncio.get_running_loop().create_future(), item=item, target=float(target))
        t0 = time.perf_counter()
        _mouse(chart, ev_type.MouseButtonRelease, float(target), left, none)
        await waiting["fut"]
        app.processEvents()  # the frame that shows it
        out.append((time.perf_counter() - t0) * 1000)
        while chart.orders._replacing or engine.store.open_orders()[0].pending_replace_client_id:
            await asyncio.sleep(0.001)  # the engine's answer settles before the next drag
    sub.cancel()
    return out[3:]


def run() -> dict[str, dict[str, Any]]:
    import pyqtgraph as pg
    import qasync
    from PySide6 import QtWidgets

    from services.broker.alpaca import AlpacaBroker
    from services.broker.budget import RequestBudget
    from services.orders.tables import ORDERS_SCHEMA
    from services.storage import Database
    from tests.support.exchange import ExchangeProcess
    from widgets.chart.panel import ChartPanel
    from widgets.chart.sample import random_walk_bars

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pg.setConfigOption("mouseRateLimit", 0)  # every synthetic move counts, as a person's do
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with ExchangeProcess.start() as ex, tempfile.TemporaryDirectory(prefix="heron-bench-drag-") as tmp:
        db = Database.open(None, Path(tmp), [ORDERS_SCHEMA])
        broker = AlpacaBroker(ex.key_id, ex.secret, environment="local", base_url=ex.url,
                              budget=RequestBudget(per_minute=1_000_000))  # fmt: skip
        engine = _engine(broker, db)
        chart = ChartPanel(visible_bars=200)
        chart.resize(1600, 900)
        chart.show()
        chart.set_history(SYMBOL, "1Min", random_walk_bars(2000, seed=5, start_price=90.0))
        chart.orders.attach(engine, engine.store, engine.bus)
        chart.orders.needs_confirmation = lambda: False
        chart.price_plot.getViewBox().setYRange(88, 92, padding=0)
        app.processEvents()
        try:
            samples = loop.run_until_complete(_samples(chart, engine, app))
            loop.run_until_complete(engine.cancel_all())
        finally:
            engine.close()
            loop.run_until_complete(broker.close())
            chart.close()
            db.dispose()
            loop.close()
            asyncio.set_event_loop(None)
    return {
        "chart_drag_replace_ms": {
            "value": round(statistics.median(samples), 2),
            "unit": "ms",
            "goal": "p50 <= 50",
            "p95_ms": round(float(sorted(samples)[int(len(samples) * 0.95) - 1]), 2),
            "samples": len(samples),
        }
    }
