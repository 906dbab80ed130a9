"""Trading from the chart: working orders as price lines, fills as markers, drag to replace,
cancel from the line, right-click to stage an order in the ticket.

:class:`ChartOrders` adapts the order engine for the chart of one symbol. It follows the engine's
events on the bus (``OrderChangedEvent`` and ``FillEvent``, as the blotter does; no polling): a
line appears when an order starts working, moves when it is replaced, shows its remaining quantity
after a partial fill and goes away when the order is canceled, filled or expires. What a line shows
is :mod:`widgets.chart.order_model`.

Dragging a line (left button) shows the price it would be replaced at, rounded to the instrument's
tick, and the risk pre-check of that replacement (``ExecutionEngine.preview_replace``, the same
RiskGate the ticket and the engine use). On release: nothing happens if the price did not change;
a failing pre-check snaps the line back and says why; otherwise the app's confirmation setting is
honoured (the same one the ticket uses) and the replace goes through
``ExecutionEngine.replace`` (PATCH /v2/orders/{id} at Alpaca). A refused replace snaps back and
says why; the line follows the broker's answer, never the mouse.

Right-click on the chart: on a line, "Cancel …" for its order; anywhere, "Buy limit at P",
"Sell limit at P", "Buy stop at P", "Sell stop at P", which emit :attr:`stageRequested` (nothing
is sent: the ticket is filled in for the trader to review).

Signals:
    stageRequested(str, str, str, object): symbol, side, order type and Decimal price to stage.
    replaceRequested(str, str, object): an order key, the price field and the Decimal price sent.
    message(str): what the last chart action did (also shown in :attr:`status_label`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from services.domain.bus import EventBus, Subscription
from services.domain.enums import OrderSide, OrderType
from services.domain.events import FillEvent, OrderChangedEvent
from services.domain.models import Asset, Fill, Order
from services.domain.symbols import is_crypto, normalize_symbol
from services.risk.context import RiskReport
from widgets.chart.order_model import LineRole, OrderLine, PriceField, format_price, lines_for, round_to_tick
from widgets.chart.overlays import Overlays
from widgets.chart.store import BarStore
from widgets.models.common import confirm
from widgets.tasks import run_async
from widgets.theme import MUTED, WARN, ChartColors

log = logging.getLogger("heron.widgets.chart")

MAX_FILLS_PER_SYMBOL = 1000
PICK_PX = 6.0  # how close (pixels) a right-click must be to a line to offer its cancel
REPLACED = "replaced"  # ExecutionEngine.replace's message when the broker took the replacement
STAGE_ITEMS = (
    (OrderSide.BUY, OrderType.LIMIT, "Buy limit"),
    (OrderSide.SELL, OrderType.LIMIT, "Sell limit"),
    (OrderSide.BUY, OrderType.STOP, "Buy stop"),
    (OrderSide.SELL, OrderType.STOP, "Sell stop"),
)


def _color(side: OrderSide) -> str:
    return ChartColors.up if side is OrderSide.BUY else ChartColors.down


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Label(pg.InfLineLabel):
    """The label of a horizontal order line, placed with plain arithmetic: pyqtgraph's general
    placement (line-box intersections for any angle) runs for every label on every view change,
    which is every new bar while the chart follows the market."""

    def updatePosition(self) -> None:
        vr = self.line.viewRect()
        if vr is None:
            return
        self.setPos(QtCore.QPointF(vr.left() + self.orthoPos * vr.width(), 0.0))
        self.setAnchor(self.anchors[0 if vr.center().y() < 0 else 1])


class OrderLineItem(pg.InfiniteLine):
    """One order line: a horizontal line at the price with its label; movable when draggable."""

    def __init__(self, line: OrderLine) -> None:
        super().__init__(
            pos=float(line.price),
            angle=0,
            movable=line.draggable,
        )
        self.label = _Label(self, text="", position=0.04, fill=ChartColors.order_label,
                            anchors=[(0, 1), (0, 1)])  # fmt: skip
        self.setZValue(16)
        self.line = line
        self.note = ""
        self._look: tuple[str, QtCore.Qt.PenStyle] | None = None
        self._label_color = ""
        self._text = ""
        self.show_line(line)

    def show_line(self, line: OrderLine, price: Decimal | None = None, note: str = "") -> None:
        """Draw ``line`` (at ``price`` instead of its own while a replace is on its way)."""
        self.line, self.note = line, note
        self.setMovable(line.draggable and price is None)
        shown = line.price if price is None else price
        color = _color(line.side)
        dashed = line.role in (LineRole.STOP, LineRole.STOP_LIMIT, LineRole.STOP_LOSS, LineRole.TRAIL)
        style = QtCore.Qt.PenStyle.DotLine if (line.pending or price is not None) else (
            QtCore.Qt.PenStyle.DashLine if dashed else QtCore.Qt.PenStyle.SolidLine)  # fmt: skip
        if (color, style) != self._look:  # only what changed: a trailing stop moves every new high
            self._look = (color, style)
            self.setPen(pg.mkPen(color, width=1, style=style))
            self.setHoverPen(pg.mkPen(color, width=2, style=style))
        if not self.moving and self.value() != float(shown):
            self.setValue(float(shown))
        self.set_text(line.label(shown) + (f"  {note}" if note else ""), color)

    def set_text(self, text: str, color: str) -> None:
        assert self.label is not None
        if color != self._label_color:
            self._label_color = color
            self.label.setColor(color)
        if text != self._text:
            self._text = text
            self.label.setFormat(text.replace("{", "{{").replace("}", "}}"))  # lays the text out once

    @property
    def text(self) -> str:
        assert self.label is not None
        return str(self.label.toPlainText())


class ChartOrders(QtCore.QObject):
    """See the module docstring. GUI thread; bus handlers run on the loop (= GUI) thread."""

    stageRequested = QtCore.Signal(str, str, str, object)
    replaceRequested = QtCore.Signal(str, str, object)
    message = QtCore.Signal(str)

    def __init__(self, plot: pg.PlotItem, overlays: Overlays, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self._plot = plot
        self._overlays = overlays
        self._widget = parent
        self.symbol = ""
        self.items: dict[str, OrderLineItem] = {}  # line key → item, the chart symbol's lines only
        self._lines: dict[str, list[OrderLine]] = {}  # order key → its lines, every symbol
        self._replacing: dict[str, Decimal] = {}  # line key → price sent, until the broker answers
        self._trailing: dict[str, Decimal | None] = {}  # trailing line key → the mark the prints made
        self._fills: dict[str, deque[tuple[datetime, Decimal, str]]] = {}
        self._drag_check: tuple[str, Decimal, RiskReport | str] | None = None
        self._subs: list[Subscription] = []
        self.engine: Any = None
        self.store: Any = None
        self._assets: dict[str, Asset | None] = {}  # the instruments read from the broker
        #: whether a replace asks first: the ticket's setting (live mode always asks)
        self.needs_confirmation: Callable[[], bool] = lambda: True
        #: ``ask(title, text) -> bool``; replaced in tests
        self.ask: Callable[[str, str], bool] = lambda title, text: confirm(parent, title, text)
        self.last_menu: QtWidgets.QMenu | None = None
        self.status_label = QtWidgets.QLabel("", parent)
        self.status_label.setObjectName("chartOrderStatus")
        self.status_label.setStyleSheet(f"color: {MUTED}")
        self.status_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                        QtWidgets.QSizePolicy.Policy.Preferred)  # fmt: skip
        plot.getViewBox().setMenuEnabled(False)  # the right-click menu is the trading one
        scene = plot.scene()
        if scene is not None:
            scene.sigMouseClicked.connect(self._on_click)

    # ------------------------------------------------------------------ feeding

    def attach(self, engine: Any, store: Any, bus: EventBus, *, fills: Iterable[Fill] = ()) -> None:
        """Follow ``engine`` (replace, cancel, pre-check) and ``store`` (orders) through ``bus``;
        start from the store's working orders and ``fills`` (oldest first)."""
        self.detach()
        self.engine, self.store = engine, store
        self._subs = [bus.subscribe(OrderChangedEvent, self.on_order_event),
                      bus.subscribe(FillEvent, self.on_fill_event)]  # fmt: skip
        for rec in store.orders():
            self.show_order(store.view(rec), rec)
        for fill in fills:
            self._add_fill(fill)
        self._place_fills()
        self._load_asset(self.symbol)

    def detach(self) -> None:
        for sub in self._subs:
            sub.cancel()
        self._subs = []

    def set_symbol(self, symbol: str) -> None:
        """The chart now shows ``symbol``: draw its orders and fills."""
        symbol = normalize_symbol(symbol) if symbol else ""
        if symbol == self.symbol:
            return
        self.symbol = symbol
        self._drag_check = None
        self._sync()
        self._place_fills()
        self._load_asset(symbol)

    def increment(self, symbol: str) -> Decimal | None:
        """A crypto pair's own price increment (the asset's ``price_increment``, once read); None
        for stocks, whose prices follow Alpaca's sub-penny rule."""
        asset = self._assets.get(normalize_symbol(symbol)) if symbol else None
        return asset.price_increment if asset is not None and is_crypto(asset.symbol) else None

    def _load_asset(self, symbol: str) -> None:
        """Read the instrument once per symbol from the broker, off the GUI thread, as the ticket
        does: the pre-check of a dragged line needs it (none fails closed) and a crypto pair's
        prices step by its own increment."""
        get_asset = getattr(getattr(self.engine, "broker", None), "get_asset", None)
        if not symbol or symbol in self._assets or get_asset is None:
            return
        self._assets[symbol] = None

        def loaded(asset: Any, error: BaseException | None) -> None:
            if error is None and asset is not None:
                self._assets[symbol] = asset
                self._drag_check = None
            else:
                del self._assets[symbol]  # read again on the next look at the symbol

        try:
            run_async(get_asset(symbol), loaded, log_errors=False)
        except RuntimeError:  # no event loop (a preview): the pre-check fails closed
            del self._assets[symbol]

    def on_order_event(self, event: OrderChangedEvent) -> None:
        rec = None
        if self.store is not None:
            rec = self.store.find(client_order_id=event.order.client_order_id)
        self.show_order(event.order, rec)

    def on_fill_event(self, event: FillEvent) -> None:
        self._add_fill(event.fill)
        if normalize_symbol(event.fill.symbol) == self.symbol:
            self._place_fills()

    def show_order(self, order: Order, rec: Any = None) -> None:
        """Draw (or move, or remove) the lines of ``order``; ``rec``: the store's record of it (its
        logical key, the broker's last snapshot, whether it is an exit leg)."""
        key = rec.client_order_id if rec is not None else order.client_order_id
        snap = getattr(rec, "snapshot", None)
        leg = getattr(rec, "parent_client_order_id", None) is not None
        lines = [_keyed(line, key) for line in lines_for(order, snap, leg=leg)]
        if lines:
            self._lines[key] = lines
        elif self._lines.pop(key, None) is None:
            return
        if normalize_symbol(order.symbol) == self.symbol:
            self._sync()

    def on_bars(self, store: BarStore) -> None:
        """The chart's bars changed: its trailing stops trail the prints seen since their last
        report, as Alpaca's do (the broker tracks ``hwm`` on prints and says nothing until it
        reports the order again). The live bar's high (low for a buy stop) counts when the bar
        began after the report, else only its last print. Labelled ≈ until the broker reports."""
        if not self._trailing:
            return
        live = store.live
        if live is None:
            return
        for key in list(self._trailing):
            item = self.items.get(key)
            trail = item.line.trailing if item is not None else None
            if item is None or trail is None:
                continue
            if live.t >= trail.as_of_ns:
                seen = live.h if trail.side is OrderSide.SELL else live.l
            else:
                seen = live.c
            price = Decimal(str(seen))
            if not trail.beyond(price, self._trailing[key] or trail.mark):
                continue
            self._trailing[key] = price
            stop = trail.stop(price)
            if stop is not None and stop > 0:
                item.show_line(replace(item.line, price=stop, estimated=True))

    def lines(self) -> list[OrderLine]:
        """The lines drawn now (the chart symbol's working orders)."""
        return [item.line for item in self.items.values()]

    # ------------------------------------------------------------------ drawing

    def _sync(self) -> None:
        wanted = {ln.key: ln for lines in self._lines.values() for ln in lines
                  if normalize_symbol(ln.symbol) == self.symbol}  # fmt: skip
        for key in [k for k in self.items if k not in wanted]:
            self._plot.removeItem(self.items.pop(key))
            self._replacing.pop(key, None)
            self._trailing.pop(key, None)
        for key, line in wanted.items():
            item = self.items.get(key)
            sent = self._replacing.get(key)
            if sent is not None and line.price == sent:
                self._replacing.pop(key)  # the broker works the new price
                sent = None
            if line.trailing is not None and (item is None or item.line.trailing != line.trailing):
                self._trailing[key] = None  # a new report: trail the prints from it
            if item is not None and item.line.estimated and item.line.trailing == line.trailing:
                line = replace(line, price=item.line.price, estimated=True)  # where the prints moved it
            if item is None:
                item = OrderLineItem(line)
                item.sigDragged.connect(self._on_dragged)
                item.sigPositionChangeFinished.connect(self._on_drag_finished)
                self._plot.addItem(item, ignoreBounds=True)
                self.items[key] = item
            if item.moving:
                item.line = line  # the trader is dragging it: the label is the drag's
            elif sent is not None:
                item.show_line(line, sent, "replacing…")
            else:
                item.show_line(line)

    def _add_fill(self, fill: Fill) -> None:
        sym = normalize_symbol(fill.symbol)
        fills = self._fills.get(sym)
        if fills is None:
            fills = self._fills[sym] = deque(maxlen=MAX_FILLS_PER_SYMBOL)
        fills.append((fill.ts, fill.price, fill.side.value))

    def _place_fills(self) -> None:
        self._overlays.set_fills(self._fills.get(self.symbol, ()))

    # ------------------------------------------------------------------ drag to replace

    def _rounded(self, item: OrderLineItem) -> Decimal:
        return round_to_tick(float(item.value()), self.increment(item.line.symbol))

    def check_replace(self, line: OrderLine, price: Decimal) -> RiskReport | str:
        """The engine's pre-check of replacing ``line``'s price with ``price`` (cached while dragging)."""
        cached = self._drag_check
        if cached is not None and cached[0] == line.key and cached[1] == price:
            return cached[2]
        if self.engine is None:
            result: RiskReport | str = "orders are not connected"
        else:
            asset = self._assets.get(normalize_symbol(line.symbol))
            if asset is None:
                self._load_asset(normalize_symbol(line.symbol))  # fails closed until it is read
            result = self.engine.preview_replace(line.order_key, asset=asset, **{line.field.value: price})
        self._drag_check = (line.key, price, result)
        return result

    @staticmethod
    def _verdict(result: RiskReport | str) -> str:
        if isinstance(result, str):
            return f"✗ {result}"
        return "✓ risk ok" if result.passed else f"✗ {result.explain()}"

    def _on_dragged(self, item: OrderLineItem) -> None:
        line = item.line
        price = self._rounded(item)
        verdict = self._verdict(self.check_replace(line, price))
        item.set_text(f"{line.label(price)} ← {format_price(line.price)}  {_short(verdict)}",
                      _color(line.side) if verdict.startswith("✓") else WARN)  # fmt: skip

    def _on_drag_finished(self, item: OrderLineItem) -> None:
        line = item.line
        price = self._rounded(item)
        if price == line.price:
            item.show_line(line)
            return
        self.replace_line(line, price)

    def replace_line(self, line: OrderLine, price: Decimal) -> bool:
        """Replace ``line``'s price with ``price`` as a drag release does: pre-check, confirmation,
        then the engine. Returns whether the replace was sent; the line snaps back otherwise."""
        item = self.items.get(line.key)
        result = self.check_replace(line, price)
        self._drag_check = None
        if isinstance(result, str) or not result.passed:
            why = result if isinstance(result, str) else result.explain()
            return self._snap_back(line, f"not replaced: {why}", warn=True)
        if self.needs_confirmation():
            text = (f"Replace {line.symbol} {line.label()}\nwith {format_price(price)}?\n\n"
                    f"The order keeps its quantity ({line.qty} left) and everything else.")  # fmt: skip
            if not self.ask("Replace order", text):
                return self._snap_back(line, "not replaced (confirmation declined)")
        self._replacing[line.key] = price
        if item is not None:
            item.show_line(line, price, "replacing…")
        self.replaceRequested.emit(line.order_key, line.field.value, price)
        self._say(f"replacing {line.symbol} {line.label()} with {format_price(price)} …")
        coro = self.engine.replace(line.order_key, source="manual", **{line.field.value: price})
        run_async(coro, lambda r, e: self._replaced(line, price, r, e), log_errors=False)
        return True

    def _replaced(self, line: OrderLine, price: Decimal, result: Any, error: BaseException | None) -> None:
        """The engine's answer: the line follows the order's events from now on."""
        message = str(error) if error is not None else str(getattr(result, "message", "") or "")
        if self._replacing.get(line.key) == price:
            del self._replacing[line.key]
        if message != REPLACED:
            self._snap_back(line, f"replace refused: {message or 'no answer'}", warn=True)
            return
        self._say(f"replaced: {line.symbol} {line.side.value} {line.role.value} at {format_price(price)}")
        self._sync()

    def _snap_back(self, line: OrderLine, why: str, *, warn: bool = False) -> bool:
        item = self.items.get(line.key)
        if item is not None:
            current = next((ln for ln in self._lines.get(line.order_key, []) if ln.key == line.key), line)
            item.show_line(current)
        self._say(f"{line.symbol} {line.label()}: {why}", warn=warn)
        return False

    # ------------------------------------------------------------------ cancel, stage, menu

    def cancel(self, order_key: str) -> bool:
        """Cancel the order through the engine (no risk check, as everywhere)."""
        if self.engine is None:
            return False
        lines = self._lines.get(order_key, [])
        what = f"{lines[0].symbol} {lines[0].label()}" if lines else order_key
        self._say(f"cancel {what} …")
        run_async(
            self.engine.cancel(order_key, source="manual"),
            lambda ok, e: self._say(
                f"cancel {what}: requested"
                if ok
                else f"cancel {what}: not possible ({e or 'order is not open'})",
                warn=not ok,
            ),
            log_errors=False,
        )
        return True

    def stage(self, side: OrderSide, order_type: OrderType, price: Decimal) -> None:
        if self.symbol:
            self.stageRequested.emit(self.symbol, side.value, order_type.value, price)
            self._say(f"staged in the ticket: {side.value} {order_type.value} {self.symbol} at "
                      f"{format_price(price)} (not sent)")  # fmt: skip

    def line_near(self, scene_y: float) -> OrderLineItem | None:
        """The order line within :data:`PICK_PX` of ``scene_y`` (the nearest), if any."""
        vb = self._plot.getViewBox()
        best: tuple[float, OrderLineItem] | None = None
        for item in self.items.values():
            y = vb.mapViewToScene(QtCore.QPointF(0.0, float(item.value()))).y()
            d = abs(y - scene_y)
            if d <= PICK_PX and (best is None or d < best[0]):
                best = (d, item)
        return best[1] if best else None

    def menu_at(self, price: Decimal, line: OrderLineItem | None = None) -> QtWidgets.QMenu:
        """The chart's context menu at ``price`` (and on ``line``, if the click was on one)."""
        menu = QtWidgets.QMenu(self._widget)
        menu.setObjectName("chartOrderMenu")
        if line is not None:
            ln = line.line
            act = menu.addAction(f"Cancel {ln.label()}")
            act.setObjectName("chartCancelOrder")
            act.triggered.connect(lambda: self.cancel(ln.order_key))
            menu.addSeparator()
        for side, otype, text in STAGE_ITEMS:
            act = menu.addAction(f"{text} at {format_price(price)}")
            act.setObjectName(f"chartStage_{side.value}_{otype.value}")
            act.setEnabled(bool(self.symbol))
            act.triggered.connect(lambda _=False, s=side, t=otype: self.stage(s, t, price))
        self.last_menu = menu
        return menu

    def _on_click(self, ev: Any) -> None:
        if ev.button() != QtCore.Qt.MouseButton.RightButton:
            return
        vb = self._plot.getViewBox()
        pos = ev.scenePos()
        if not vb.sceneBoundingRect().contains(pos):
            return  # the volume or oscillator pane, or an axis
        y = vb.mapSceneToView(pos).y()
        if y <= 0:
            return
        price = round_to_tick(float(y), self.increment(self.symbol))
        menu = self.menu_at(price, self.line_near(pos.y()))
        ev.accept()
        menu.popup(ev.screenPos().toPoint())

    def _say(self, text: str, *, warn: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
        self.status_label.setStyleSheet(f"color: {WARN if warn else MUTED}")
        (log.warning if warn else log.info)("chart: %s", text)
        self.message.emit(text)


def _keyed(line: OrderLine, key: str) -> OrderLine:
    """``line`` under the engine's key for its order (the logical client order id)."""
    return line if line.order_key == key else replace(line, order_key=key)


__all__ = ["ChartOrders", "OrderLineItem", "PriceField"]
