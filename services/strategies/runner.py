"""The strategy runner: lifecycle, event fan-out, intent attribution, per-strategy books.

One runner drives many strategies over many symbols. Market data (closed bars, quotes) is fanned
out only to the running strategies subscribed to that symbol; trade updates and fills are routed to
the strategy that owns the order (by client order id), whatever its state, so positions stay right
even while a strategy is paused or stopped.

Intents leave through an :class:`~services.strategies.intents.IntentSink`, synchronously: live,
:class:`~services.strategies.intents.OrderSinkBridge` queues them for an async
:class:`~services.strategies.api.OrderSink` (the execution engine); in a backtest the simulated
broker takes them directly. Everything else (hooks, attribution, books, persistence,
isolation) is the same code in both cases.

Thread: all methods run on the thread that drives the runner (the event-loop thread live, a worker
thread in a backtest); the runner is not thread-safe and needs no locks because of that.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.domain.bus import EventBus, Subscription
from services.domain.enums import NotificationLevel, OrderSide, OrderType, TimeInForce, TradeUpdateKind
from services.domain.events import BarEvent, FillEvent, NotificationEvent, QuoteEvent, TradeUpdateEvent
from services.domain.models import Bar, Fill, OrderRequest, Quote
from services.domain.money import to_decimal
from services.domain.symbols import is_crypto, normalize_symbol
from services.storage.errors import describe_os_error
from services.strategies.api import (
    OrderIntent,
    Signal,
    SignalRecord,
    Strategy,
    StrategyInfo,
    StrategyPosition,
    StrategyState,
)
from services.strategies.intents import IntentSink, OrderSinkBridge
from services.strategies.managed import ManagedStrategy, PendingOrder
from services.strategies.portfolio import PortfolioManager
from services.strategies.store import StrategyStateStore

log = logging.getLogger(__name__)

ZERO = Decimal(0)
_FILL_KINDS = frozenset({TradeUpdateKind.FILL, TradeUpdateKind.PARTIAL_FILL})
_ENDED_KINDS = frozenset({TradeUpdateKind.REJECTED, TradeUpdateKind.CANCELED, TradeUpdateKind.EXPIRED})
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class StrategyRunnerError(ValueError):
    """A lifecycle request that cannot be honoured (unknown name, duplicate name, ...)."""


class _Context:
    """The runner's implementation of :class:`~services.strategies.api.StrategyContext`."""

    __slots__ = ("_m", "_r", "source")

    def __init__(self, runner: StrategyRunner, managed: ManagedStrategy) -> None:
        self._r = runner
        self._m = managed
        self.source = f"strategy:{managed.name}"

    @property
    def name(self) -> str:
        return self._m.name

    @property
    def now(self) -> datetime | None:
        return self._r.now

    @property
    def state(self) -> dict[str, Any]:
        return self._m.custom

    @property
    def restored(self) -> bool:
        return self._m.restored

    def submit(
        self,
        symbol: str,
        side: OrderSide,
        qty: Decimal,
        *,
        type: OrderType = OrderType.MARKET,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.DAY,
    ) -> str:
        return self._r._submit(self._m, symbol, side, qty, type, limit_price, stop_price, time_in_force)

    def cancel(self, client_order_id: str) -> None:
        self._r._cancel(self._m, client_order_id)

    def target_position(self, symbol: str, qty: Decimal) -> str | None:
        return self._r._target(self._m, symbol, qty)

    def position(self, symbol: str) -> Decimal:
        pos = self._m.positions.get(symbol)
        return pos.qty if pos is not None else ZERO

    def pending_qty(self, symbol: str) -> Decimal:
        return sum((p.remaining for p in self._m.pending.values() if p.symbol == symbol), ZERO)

    def signal(self, symbol: str, signal: Signal, reason: str = "") -> None:
        self._r._signal(self._m, symbol, signal, reason)


class StrategyRunner:
    """Starts, stops, pauses and feeds strategies; attributes and forwards their intents."""

    def __init__(
        self,
        intents: IntentSink,
        *,
        portfolio: PortfolioManager | None = None,
        store: StrategyStateStore | None = None,
        run_token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        signal_log_size: int = 10_000,
    ) -> None:
        self._intents = intents
        if isinstance(intents, OrderSinkBridge):
            intents.on_failure = self.on_intent_failed
        self.portfolio = portfolio or PortfolioManager()
        self._store = store
        self._token = run_token or uuid.uuid4().hex[:8]
        self._clock = clock or (lambda: datetime.now(UTC))
        self._managed: dict[str, ManagedStrategy] = {}
        self._by_symbol: dict[str, list[ManagedStrategy]] = {}
        self._marks: dict[str, list[StrategyPosition]] = {}
        self._owners: dict[str, ManagedStrategy] = {}
        self._seen_executions: set[str] = set()
        self._seq = 0
        self._bus: EventBus | None = None
        self._subs: list[Subscription] = []
        self.now: datetime | None = None
        self.signals: deque[SignalRecord] = deque(maxlen=signal_log_size)
        self._signal_listeners: list[Callable[[SignalRecord], None]] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def add(self, strategy: Strategy, name: str | None = None) -> str:
        """Register ``strategy`` (state ``created``); returns its unique name."""
        name = name or strategy.KEY or type(strategy).__name__.lower()
        if not _NAME_RE.match(name):
            raise StrategyRunnerError(f"strategy name {name!r} must be 1-40 of A-Z a-z 0-9 _ . -")
        if name in self._managed:
            raise StrategyRunnerError(f"a strategy named {name!r} already exists")
        managed = ManagedStrategy(name, strategy)
        managed.ctx = _Context(self, managed)
        strategy.bind(managed.ctx)
        self._managed[name] = managed
        return name

    def names(self) -> list[str]:
        return list(self._managed)

    def strategy(self, name: str) -> Strategy:
        return self._get(name).strategy

    def state(self, name: str) -> StrategyState:
        return self._get(name).state

    def start(self, name: str) -> None:
        """Run ``on_start`` and begin feeding events. Restarting a stopped or failed strategy is allowed."""
        m = self._get(name)
        if m.state in (StrategyState.RUNNING, StrategyState.PAUSED):
            return
        m.error = None
        m.traceback = None
        m.state = StrategyState.RUNNING
        if self._call(m, m.strategy.on_start):
            self._rebuild()
        self.save()

    def pause(self, name: str) -> None:
        """Stop feeding market data; fills and trade updates still reach the strategy's book."""
        m = self._get(name)
        if m.state is StrategyState.RUNNING:
            m.state = StrategyState.PAUSED
            self._rebuild()
            self.save()

    def resume(self, name: str) -> None:
        m = self._get(name)
        if m.state is StrategyState.PAUSED:
            m.state = StrategyState.RUNNING
            self._rebuild()
            self.save()

    def stop(self, name: str, *, flatten: bool = False) -> None:
        """Run ``on_stop`` and stop feeding. With ``flatten``, first emit intents to go flat."""
        m = self._get(name)
        if m.state not in (StrategyState.RUNNING, StrategyState.PAUSED):
            return
        if flatten:
            for symbol, pos in list(m.positions.items()):
                if pos.qty != 0:
                    self._target(m, symbol, ZERO)
        # on_stop runs while the strategy may still emit intents (e.g. to go flat itself)
        ok = self._call(m, m.strategy.on_stop)
        if ok:
            m.state = StrategyState.STOPPED
        self._rebuild()
        self.save()

    def stop_all(self, *, flatten: bool = False) -> None:
        for name in list(self._managed):
            self.stop(name, flatten=flatten)

    def remove(self, name: str) -> None:
        """Forget a strategy that is not running (its state is dropped from persistence too)."""
        m = self._get(name)
        if m.state in (StrategyState.RUNNING, StrategyState.PAUSED):
            raise StrategyRunnerError(f"stop {name!r} before removing it")
        del self._managed[name]
        self.portfolio.forget(name)
        self._rebuild()
        self.save()

    # -- bus wiring ----------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> None:
        """Subscribe to closed bars, quotes, trade updates and fills on ``bus``."""
        self.detach()
        self._bus = bus
        self._subs = [
            bus.subscribe(BarEvent, self.on_bar_event),
            bus.subscribe(QuoteEvent, self.on_quote_event),
            bus.subscribe(TradeUpdateEvent, self.on_trade_update),
            bus.subscribe(FillEvent, self.on_fill_event),
        ]

    def detach(self) -> None:
        for sub in self._subs:
            sub.cancel()
        self._subs = []
        self._bus = None

    # -- market data (hot path) ----------------------------------------------------------------
    def on_bar_event(self, event: BarEvent) -> None:
        """Bus handler (event-loop thread). Partial bars are ignored: strategies act on closed bars."""
        if not event.is_partial:
            self.on_bar(event.bar)

    def on_bar(self, bar: Bar) -> None:
        symbol = bar.symbol
        self.now = bar.ts
        marks = self._marks.get(symbol)
        if marks:
            close = bar.close
            for pos in marks:
                pos.last_price = close
        subs = self._by_symbol.get(symbol)
        if not subs:
            return
        for m in subs:
            try:
                m.strategy.on_bar(bar)
            except Exception as exc:
                self._fail(m, exc)

    def on_quote_event(self, event: QuoteEvent) -> None:
        self.on_quote(event.quote)

    def on_quote(self, quote: Quote) -> None:
        symbol = quote.symbol
        self.now = quote.ts
        marks = self._marks.get(symbol)
        if marks and quote.bid > 0 and quote.ask > 0:
            mid = quote.mid
            for pos in marks:
                pos.last_price = mid
        for m in self._by_symbol.get(symbol, ()):
            try:
                m.strategy.on_quote(quote)
            except Exception as exc:
                self._fail(m, exc)

    # -- execution feedback ----------------------------------------------------------------------
    def on_trade_update(self, event: TradeUpdateEvent) -> None:
        """Route a trade update to the strategy owning the order; apply its fill (deduplicated)."""
        order = event.order
        coid = order.client_order_id
        m = self._owners.get(coid)
        if m is None:
            return
        if event.event in _FILL_KINDS and event.qty is not None and event.price is not None:
            exec_id = event.execution_id or f"{order.id}:{order.filled_qty}"
            self._apply_fill(m, coid, exec_id, order.symbol, order.side, event.qty, event.price)
        if order.status.is_terminal:
            m.pending.pop(coid, None)
        if event.event in _ENDED_KINDS:
            m.pending.pop(coid, None)
        if m.state in (StrategyState.RUNNING, StrategyState.PAUSED):
            self._call(m, lambda: m.strategy.on_trade_update(event))

    def on_fill_event(self, event: FillEvent) -> None:
        """Fills published by the orders layer; deduplicated with trade updates by execution id."""
        fill: Fill = event.fill
        m = self._owners.get(fill.client_order_id)
        if m is not None:
            self._apply_fill(
                m, fill.client_order_id, fill.execution_id, fill.symbol, fill.side, fill.qty, fill.price
            )

    def on_intent_failed(self, client_order_id: str, reason: str) -> None:
        """The order sink refused an intent (e.g. risk rejection): drop it from pending, count it."""
        m = self._owners.get(client_order_id)
        if m is None:
            return
        m.pending.pop(client_order_id, None)
        m.rejected += 1
        m.last_rejection = reason
        self.save()

    def _apply_fill(
        self,
        m: ManagedStrategy,
        coid: str,
        exec_id: str,
        symbol: str,
        side: OrderSide,
        qty: Decimal,
        price: Decimal,
    ) -> None:
        if exec_id in self._seen_executions:
            return
        self._seen_executions.add(exec_id)
        pos = self._position(m, symbol)
        pos.apply_fill(side, qty, price)
        pending = m.pending.get(coid)
        if pending is not None:
            signed = qty if side is OrderSide.BUY else -qty
            pending.remaining -= signed
            if pending.remaining == 0 or (pending.remaining > 0) != (signed > 0):
                m.pending.pop(coid, None)
        self.save()

    # -- intents -------------------------------------------------------------------------------
    def _next_coid(self, m: ManagedStrategy) -> str:
        self._seq += 1
        return f"st-{m.name[:20]}-{self._token}-{self._seq}"

    def _submit(
        self,
        m: ManagedStrategy,
        symbol: str,
        side: OrderSide,
        qty: Decimal,
        type: OrderType,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        tif: TimeInForce,
    ) -> str:
        if m.state not in (StrategyState.RUNNING, StrategyState.PAUSED):
            raise StrategyRunnerError(f"strategy {m.name!r} is {m.state.value}; it cannot send orders")
        qty = to_decimal(qty, field="qty")
        if qty <= 0:
            raise ValueError(f"order qty must be positive, got {qty}")
        symbol = normalize_symbol(symbol)
        coid = self._next_coid(m)
        request = OrderRequest(
            symbol=symbol,
            side=OrderSide(side),
            type=OrderType(type),
            time_in_force=TimeInForce(tif),
            qty=qty,
            limit_price=limit_price,
            stop_price=stop_price,
            client_order_id=coid,
        )
        self._owners[coid] = m
        m.pending[coid] = PendingOrder(symbol, qty if request.side is OrderSide.BUY else -qty)
        m.orders += 1
        self._intents.accept(OrderIntent(m.name, f"strategy:{m.name}", request, self.now))
        return coid

    def _cancel(self, m: ManagedStrategy, coid: str) -> None:
        if self._owners.get(coid) is not m:
            raise StrategyRunnerError(f"strategy {m.name!r} does not own order {coid!r}")
        self._intents.cancel(m.name, coid)

    def _target(self, m: ManagedStrategy, symbol: str, qty: Decimal) -> str | None:
        symbol = normalize_symbol(symbol)
        granted = self.portfolio.request_target(m.name, symbol, to_decimal(qty, field="target qty"))
        pos = m.positions.get(symbol)
        have = pos.qty if pos is not None else ZERO
        for p in m.pending.values():
            if p.symbol == symbol:
                have += p.remaining
        delta = granted - have
        if delta == 0:
            return None
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        # Alpaca refuses day orders for crypto: gtc and ioc only ("Crypto Orders" docs)
        tif = TimeInForce.GTC if is_crypto(symbol) else TimeInForce.DAY
        return self._submit(m, symbol, side, abs(delta), OrderType.MARKET, None, None, tif)

    def _signal(self, m: ManagedStrategy, symbol: str, signal: Signal, reason: str) -> None:
        signal = Signal(signal)
        if m.signals.get(symbol) is signal:
            return
        m.signals[symbol] = signal
        m.last_signal = signal
        record = SignalRecord(m.name, symbol, self.now, signal, reason)
        self.signals.append(record)
        for listener in self._signal_listeners:
            listener(record)

    def add_signal_listener(self, listener: Callable[[SignalRecord], None]) -> None:
        """``listener(record)`` is called on the runner's thread for every signal change."""
        self._signal_listeners.append(listener)

    # -- books and reports ---------------------------------------------------------------------
    def _position(self, m: ManagedStrategy, symbol: str) -> StrategyPosition:
        pos = m.positions.get(symbol)
        if pos is None:
            pos = m.positions[symbol] = StrategyPosition()
            self._marks.setdefault(symbol, []).append(pos)
        return pos

    def position(self, name: str, symbol: str) -> Decimal:
        pos = self._get(name).positions.get(symbol)
        return pos.qty if pos is not None else ZERO

    def pnl(self, name: str) -> Decimal:
        return sum((p.pnl for p in self._get(name).positions.values()), ZERO)

    def info(self, name: str) -> StrategyInfo:
        m = self._get(name)
        return StrategyInfo(
            name=m.name,
            key=m.strategy.KEY,
            state=m.state,
            params=m.strategy.params_as_text(),
            symbols=m.strategy.symbols,
            orders=m.orders,
            pnl=sum((p.pnl for p in m.positions.values()), ZERO),
            realized=sum((p.realized for p in m.positions.values()), ZERO),
            positions={s: p.qty for s, p in m.positions.items()},
            last_signal=m.last_signal,
            error=m.error,
            traceback=m.traceback,
            rejected=m.rejected,
            last_rejection=m.last_rejection,
        )

    def infos(self) -> list[StrategyInfo]:
        return [self.info(name) for name in self._managed]

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {m.name: m.to_record() for m in self._managed.values()}

    def save(self) -> None:
        """Write the state file (no-op without a store). A write failure is logged, never raised."""
        if self._store is None:
            return
        try:
            self._store.save(self.snapshot())
        except OSError as exc:  # a full disk: the previous file stays whole (written atomically)
            why = describe_os_error(exc, self._store.path)
            log.error("strategy state not saved: %s; the previous state file stays, and the state is "
                      "saved again with the next change", why)  # fmt: skip
        except (TypeError, ValueError):
            log.exception("could not save strategy state (custom state must be JSON-able)")

    def restore(self, registry: Mapping[str, type[Strategy]], *, resume: bool = True) -> list[str]:
        """Recreate the strategies saved in the store; returns their names.

        Positions, P&L, pending orders, custom state and last signals come back as they were. With
        ``resume``, strategies that were running (or paused) are started again (``ctx.restored``
        is True in ``on_start``); failed ones stay in ``error`` until someone restarts them.
        """
        if self._store is None:
            return []
        restored: list[str] = []
        for name, rec in self._store.load().items():
            cls = registry.get(rec.get("key", ""))
            if cls is None:
                log.error("cannot restore strategy %r: unknown kind %r", name, rec.get("key"))
                continue
            strategy = cls(rec.get("params", {}))
            self.add(strategy, name)
            m = self._managed[name]
            m.load_record(rec)
            for symbol, pos in m.positions.items():
                self._marks.setdefault(symbol, []).append(pos)
            for coid in m.pending:
                self._owners[coid] = m
            for symbol, pos in m.positions.items():
                if pos.qty != 0:
                    self.portfolio.request_target(name, symbol, pos.qty)
            saved_state = StrategyState(rec.get("state", "stopped"))
            if saved_state is StrategyState.ERROR:
                m.state = StrategyState.ERROR
                m.error = rec.get("error")
                m.traceback = rec.get("traceback")
            elif resume and saved_state in (StrategyState.RUNNING, StrategyState.PAUSED):
                self.start(name)
                if saved_state is StrategyState.PAUSED:
                    self.pause(name)
            else:
                m.state = StrategyState.STOPPED if saved_state is not StrategyState.CREATED else saved_state
            restored.append(name)
        return restored

    # -- internals -----------------------------------------------------------------------------
    def _get(self, name: str) -> ManagedStrategy:
        try:
            return self._managed[name]
        except KeyError:
            known = ", ".join(self._managed) or "none"
            raise StrategyRunnerError(f"no strategy named {name!r} (running: {known})") from None

    def _rebuild(self) -> None:
        by_symbol: dict[str, list[ManagedStrategy]] = {}
        for m in self._managed.values():
            if m.state is StrategyState.RUNNING:
                for symbol in m.strategy.symbols:
                    by_symbol.setdefault(symbol, []).append(m)
        self._by_symbol = by_symbol

    def _call(self, m: ManagedStrategy, fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:
            self._fail(m, exc)
            return False

    def _fail(self, m: ManagedStrategy, exc: BaseException) -> None:
        """Isolate a failing strategy: state error, message and traceback kept, others go on."""
        m.state = StrategyState.ERROR
        m.error = f"{type(exc).__name__}: {exc}"
        lines = traceback.format_exception(exc)
        m.traceback = "".join(lines[-12:])
        self._rebuild()
        log.error("strategy %s failed and was stopped: %s", m.name, m.error, exc_info=exc)
        if self._bus is not None:
            self._bus.publish(
                NotificationEvent(
                    self._clock(),
                    NotificationLevel.ERROR,
                    f"strategy:{m.name}",
                    f"stopped after error: {m.error}",
                )
            )
        self.save()


def make_runner_for(
    strategies: Iterable[Strategy], intents: IntentSink, **kwargs: Any
) -> tuple[StrategyRunner, list[str]]:
    """Convenience: a runner with ``strategies`` added (not started)."""
    runner = StrategyRunner(intents, **kwargs)
    names = [runner.add(s) for s in strategies]
    return runner, names
