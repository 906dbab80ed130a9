"""Replay and backtest: any strategy over stored or generated bars, through the live code path.

The backtest builds a real :class:`~services.strategies.runner.StrategyRunner`, adds the strategy
and feeds it bars one at a time with ``runner.on_bar`` (the method the live ``BarEvent`` handler
calls). Intents go to :class:`SimulatedBroker`, which answers with the same ``TradeUpdateEvent``
objects the live orders layer publishes, through ``runner.on_trade_update``. Strategy, runner,
attribution and books are therefore the very code that trades live.

Fill model (bars only, documented simplification of the local exchange's quote-based paper rules;
``services.exchange.matching`` matches against a simulated NBBO with random partials and has no
bar-level pure function to reuse):

* Nothing fills on the bar whose handling produced the order: an order can fill from the next bar
  of its symbol (strictly later timestamp) on.
* Market orders fill in full at that next bar's **open**.
* Buy limit: fills at the open if the open is at or below the limit, else at the limit if the bar
  trades *through* it (low strictly below the limit). Sell limit mirrored (high strictly above).
* Buy stop: triggers at the open if the open is at or above the stop (fill at the open), else at
  the stop price if the high reaches it. Sell stop mirrored.
* IOC/FOK orders get one bar; other time-in-force values rest until filled or cancelled (no session
  expiry in replay). Other order types are rejected with a trade update.
* Fills are whole (no random partials: replays must be deterministic). An optional per-share
  commission is charged to cash.
* Optional slippage, in basis points of the fill price, makes market and stop fills worse: a buy
  pays ``price x (1 + bps / 10,000)``, a sell gets ``price x (1 - bps / 10,000)``. Limit fills are
  not slipped (a limit order never fills beyond its limit).

Results: equity curve (cash + positions marked at each bar's close), closed trades (flat-to-flat
round trips), win rate (winning closed trades / closed trades), max drawdown (largest peak-to-trough
fall of equity as a fraction of the peak), Sharpe ratio (mean / sample standard deviation of per-bar
simple returns of equity, times sqrt(bars per year); risk-free rate 0; bars per year default
252 x 390 for one-minute bars, i.e. US regular sessions; pass ``periods_per_year`` for crypto),
total return (final / initial equity - 1).

Measuring from a later bar (``measure_from``, for a walk-forward's out-of-sample window): every bar is
replayed, so indicators warm up and the strategy may trade, but the result covers only the bars at or
after ``measure_from``. Its ``initial_equity`` is the equity at the close of the last bar before it
(the base; the configured cash when no bar came before), its ``equity_curve`` starts at the first
measured bar, and a position carried into the window is kept and marked to market, not reset. Total
return is final equity / base - 1; max drawdown and Sharpe run over the base followed by the measured
curve (so the first measured bar's return counts); ``trades`` and the win rate hold only trades
entered at or after ``measure_from`` (a trade carried in shows in the equity, not in the trade list);
``fills`` and ``signals`` are those at or after it; ``bars`` counts the measured bars and
``warmup_bars`` the others. Without ``measure_from`` everything is measured, as before.

Threading: :func:`run_backtest` is a plain blocking function for a worker thread;
:func:`run_backtest_async` runs it on one and relays progress to the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.domain.enums import OrderSide, OrderStatus, OrderType, Timeframe, TimeInForce
from services.domain.events import TradeUpdateEvent
from services.domain.models import Bar, Order
from services.strategies.api import OrderIntent, SignalRecord, Strategy, StrategyState
from services.strategies.metrics import max_drawdown as max_drawdown
from services.strategies.metrics import sharpe_ratio as sharpe_ratio
from services.strategies.runner import StrategyRunner

ZERO = Decimal(0)
_STATUS_OF = {"fill": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED}

BARS_PER_YEAR: dict[Timeframe, float] = {
    Timeframe.MIN_1: 252 * 390,
    Timeframe.MIN_5: 252 * 78,
    Timeframe.MIN_15: 252 * 26,
    Timeframe.HOUR_1: 252 * 6.5,
    Timeframe.DAY_1: 252,
}


class BacktestCancelled(Exception):
    """The caller cancelled the run; ``bars_done`` says how far it got."""

    def __init__(self, bars_done: int) -> None:
        super().__init__(f"backtest cancelled after {bars_done} bars")
        self.bars_done = bars_done


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    initial_cash: Decimal = Decimal(100_000)
    commission_per_share: Decimal = ZERO
    slippage_bps: Decimal = ZERO
    timeframe: Timeframe = Timeframe.MIN_1
    periods_per_year: float | None = None  # default from timeframe (US regular sessions)

    def __post_init__(self) -> None:
        if self.commission_per_share < 0 or self.slippage_bps < 0:
            raise ValueError("commission and slippage cannot be negative")

    @property
    def annualisation(self) -> float:
        return self.periods_per_year or BARS_PER_YEAR[self.timeframe]


@dataclass(frozen=True, slots=True)
class SimFill:
    ts: datetime
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    client_order_id: str


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A flat-to-flat round trip in one symbol. ``pnl`` is net of commissions."""

    symbol: str
    direction: int  # +1 long, -1 short
    entry_ts: datetime
    exit_ts: datetime
    qty: Decimal  # largest absolute position during the trade
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal


@dataclass(slots=True)
class BacktestResult:
    strategy: str
    bars: int
    initial_equity: Decimal
    final_equity: Decimal
    equity_curve: list[tuple[datetime, Decimal]]
    fills: list[SimFill]
    trades: list[ClosedTrade]
    signals: list[SignalRecord]
    total_return: float
    max_drawdown: float
    sharpe: float | None
    win_rate: float | None
    open_position: dict[str, Decimal] = field(default_factory=dict)
    error: str | None = None
    #: the bars per year the Sharpe ratio was annualised with (its returns are per bar)
    periods_per_year: float = BARS_PER_YEAR[Timeframe.MIN_1]
    #: where measuring started (None: from the first bar); ``warmup_bars`` were replayed before it,
    #: the last of them at ``warmup_end`` (its closing equity is ``initial_equity``)
    measure_from: datetime | None = None
    warmup_bars: int = 0
    warmup_end: datetime | None = None

    @property
    def first_bar(self) -> datetime | None:
        """The time of the first bar the run used (None without bars)."""
        return self.equity_curve[0][0] if self.equity_curve else None

    @property
    def last_bar(self) -> datetime | None:
        """The time of the last bar the run used."""
        return self.equity_curve[-1][0] if self.equity_curve else None

    def based_curve(self) -> list[tuple[datetime, Decimal]]:
        """The equity curve preceded by its base (``initial_equity`` at the last warm-up bar) when a
        warm-up came before it, so the first measured bar's return is among the curve's own returns
        (the form :func:`services.lab.folds.stitch` chains)."""
        if self.warmup_end is None:
            return list(self.equity_curve)
        return [(self.warmup_end, self.initial_equity), *self.equity_curve]


class _SimOrder:
    __slots__ = ("bars_seen", "coid", "limit", "placed", "qty", "side", "stop", "symbol", "tif", "type")

    def __init__(self, intent: OrderIntent) -> None:
        req = intent.request
        assert req.qty is not None and req.client_order_id is not None
        self.coid = req.client_order_id
        self.symbol = req.symbol
        self.side = req.side
        self.qty = req.qty
        self.type = req.type
        self.limit = req.limit_price
        self.stop = req.stop_price
        self.tif = req.time_in_force
        self.placed = intent.ts
        self.bars_seen = 0


class _Trade:
    __slots__ = ("direction", "entry_price", "entry_ts", "exit_notional", "exit_qty", "max_qty", "pnl")

    def __init__(self, direction: int, ts: datetime, price: Decimal) -> None:
        self.direction = direction
        self.entry_ts = ts
        self.entry_price = price
        self.max_qty = ZERO
        self.pnl = ZERO
        self.exit_notional = ZERO
        self.exit_qty = ZERO


class SimulatedBroker:
    """The backtest's IntentSink: holds simulated orders and fills them per the documented model.

    Rejections and cancellations are delivered at the start of the next bar, never re-entrantly
    inside the strategy hook that caused them.
    """

    def __init__(self, config: BacktestConfig) -> None:
        self.config = config
        self.runner: StrategyRunner | None = None
        self.cash = config.initial_cash
        self.positions: dict[str, Decimal] = {}
        self.avg: dict[str, Decimal] = {}
        self.last: dict[str, Decimal] = {}
        self.fills: list[SimFill] = []
        self.trades: list[ClosedTrade] = []
        self._open: dict[str, list[_SimOrder]] = {}
        self._trades: dict[str, _Trade] = {}
        self._deferred: list[tuple[_SimOrder, str]] = []
        self._seq = 0

    # IntentSink ----------------------------------------------------------------------------------
    def accept(self, intent: OrderIntent) -> None:
        order = _SimOrder(intent)
        unsupported = order.type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP)
        missing_price = (order.type is OrderType.LIMIT and order.limit is None) or (
            order.type is OrderType.STOP and order.stop is None
        )
        if unsupported or missing_price:
            self._deferred.append((order, "rejected"))
        else:
            self._open.setdefault(order.symbol, []).append(order)

    def cancel(self, strategy: str, client_order_id: str) -> None:
        for orders in self._open.values():
            for order in orders:
                if order.coid == client_order_id:
                    orders.remove(order)
                    self._deferred.append((order, "canceled"))
                    return

    # per bar -------------------------------------------------------------------------------------
    def process_bar(self, bar: Bar) -> None:
        """Before the strategies see ``bar``: deliver deferred updates, then fill what the bar allows."""
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for order, kind in deferred:
                self._emit(order, kind, bar.ts, None)
        orders = self._open.get(bar.symbol)
        if not orders:
            return
        ts = bar.ts
        still: list[_SimOrder] = []
        for order in orders:
            if order.placed is not None and order.placed >= ts:
                still.append(order)
                continue
            price = self._fill_price(order, bar)
            if price is not None:
                self._fill(order, self._slipped(order, price), ts)
                continue
            order.bars_seen += 1
            if order.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._emit(order, "canceled", ts, None)
            else:
                still.append(order)
        self._open[bar.symbol] = still

    def _slipped(self, order: _SimOrder, price: Decimal) -> Decimal:
        """``price`` made worse by the configured slippage (market and stop fills only)."""
        bps = self.config.slippage_bps
        if not bps or order.type is OrderType.LIMIT:
            return price
        sign = 1 if order.side is OrderSide.BUY else -1
        return price * (1 + sign * bps / 10_000)

    @staticmethod
    def _fill_price(order: _SimOrder, bar: Bar) -> Decimal | None:
        buy = order.side is OrderSide.BUY
        if order.type is OrderType.MARKET:
            return bar.open
        if order.type is OrderType.LIMIT:
            limit = order.limit
            assert limit is not None
            if buy:
                return bar.open if bar.open <= limit else limit if bar.low < limit else None
            return bar.open if bar.open >= limit else limit if bar.high > limit else None
        stop = order.stop
        assert stop is not None
        if buy:
            return bar.open if bar.open >= stop else stop if bar.high >= stop else None
        return bar.open if bar.open <= stop else stop if bar.low <= stop else None

    def _fill(self, order: _SimOrder, price: Decimal, ts: datetime) -> None:
        qty = order.qty
        sign = 1 if order.side is OrderSide.BUY else -1
        commission = self.config.commission_per_share * qty
        self.cash -= sign * qty * price + commission
        symbol = order.symbol
        before = self.positions.get(symbol, ZERO)
        after = before + sign * qty
        self.positions[symbol] = after
        self.last.setdefault(symbol, price)
        self.fills.append(SimFill(ts, symbol, order.side, qty, price, order.coid))
        self._book_trade(symbol, before, after, sign, qty, price, commission, ts)
        self._emit(order, "fill", ts, price, position_qty=after)

    def _book_trade(
        self,
        symbol: str,
        before: Decimal,
        after: Decimal,
        sign: int,
        qty: Decimal,
        price: Decimal,
        commission: Decimal,
        ts: datetime,
    ) -> None:
        trade = self._trades.get(symbol)
        avg = self.avg.get(symbol, ZERO)
        if before == 0 or (before > 0) == (sign > 0):
            if trade is None:
                trade = self._trades[symbol] = _Trade(sign, ts, price)
            self.avg[symbol] = (avg * abs(before) + price * qty) / abs(after)
            trade.entry_price = self.avg[symbol]
            trade.max_qty = max(trade.max_qty, abs(after))
            trade.pnl -= commission
            return
        assert trade is not None
        closing = min(qty, abs(before))
        trade.pnl += (price - avg) * closing * trade.direction - commission * closing / qty
        trade.exit_notional += price * closing
        trade.exit_qty += closing
        if after == 0 or (after > 0) != (before > 0):
            self.trades.append(
                ClosedTrade(
                    symbol,
                    trade.direction,
                    trade.entry_ts,
                    ts,
                    trade.max_qty,
                    trade.entry_price,
                    trade.exit_notional / trade.exit_qty,
                    trade.pnl,
                )
            )
            del self._trades[symbol]
            self.avg[symbol] = ZERO
            if after != 0:  # flipped: the remainder opens a new trade at this price
                new = self._trades[symbol] = _Trade(sign, ts, price)
                new.max_qty = abs(after)
                new.pnl -= commission * (qty - closing) / qty
                self.avg[symbol] = price

    def _emit(
        self,
        order: _SimOrder,
        kind: str,
        ts: datetime,
        price: Decimal | None,
        position_qty: Decimal | None = None,
    ) -> None:
        if self.runner is None:
            return
        self._seq += 1
        status = _STATUS_OF.get(kind, OrderStatus.REJECTED)
        filled = order.qty if kind == "fill" else ZERO
        created = order.placed or ts
        update = TradeUpdateEvent(
            ts=ts,
            event=kind,
            order=Order(
                id=f"sim-{order.coid}",
                client_order_id=order.coid,
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                time_in_force=order.tif,
                status=status,
                qty=order.qty,
                filled_qty=filled,
                created_at=created,
                updated_at=ts,
                submitted_at=created,
                filled_avg_price=price,
                limit_price=order.limit,
                stop_price=order.stop,
                filled_at=ts if kind == "fill" else None,
            ),
            execution_id=f"sim-exec-{self._seq}" if kind == "fill" else None,
            price=price,
            qty=order.qty if kind == "fill" else None,
            position_qty=position_qty,
        )
        self.runner.on_trade_update(update)

    def equity(self) -> Decimal:
        eq = self.cash
        for symbol, qty in self.positions.items():
            if qty:
                eq += qty * self.last[symbol]
        return eq


def run_backtest(
    strategy: Strategy,
    bars: Iterable[Bar],
    *,
    config: BacktestConfig | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    progress_every: int = 10_000,
    cancel: threading.Event | None = None,
    total: int | None = None,
    measure_from: datetime | None = None,
) -> BacktestResult:
    """Replay ``bars`` (time-ordered) through a fresh runner with ``strategy``; blocking.

    ``progress(done, total)`` is called on this thread every ``progress_every`` bars and at the end
    (``total`` is ``len(bars)`` when it has one). Setting ``cancel`` stops the run with
    :class:`BacktestCancelled`. Out-of-order bars raise ``ValueError``. With ``measure_from`` (UTC),
    bars before it only warm the strategy up: the result measures from the first bar at or after it
    (see the module docstring).
    """
    if measure_from is not None and measure_from.utcoffset() is None:
        raise ValueError("measure_from must be timezone-aware (UTC)")
    cfg = config or BacktestConfig()
    broker = SimulatedBroker(cfg)
    runner = StrategyRunner(broker, run_token="bt")
    broker.runner = runner
    name = runner.add(strategy)
    signals: list[SignalRecord] = []
    runner.add_signal_listener(signals.append)
    if total is None and isinstance(bars, Sized):
        total = len(bars)
    runner.start(name)
    curve, done, warmup = _replay(broker, runner, bars, measure_from, progress, progress_every, cancel, total)
    if cancel is not None and cancel.is_set():
        raise BacktestCancelled(done)
    info = runner.info(name)
    if info.state is not StrategyState.ERROR:
        runner.stop(name)
    if progress is not None:
        progress(done, total)
    return _result(name, cfg, broker, curve, signals, done, warmup, measure_from, info.error)


def _replay(
    broker: SimulatedBroker,
    runner: StrategyRunner,
    bars: Iterable[Bar],
    measure_from: datetime | None,
    progress: Callable[[int, int | None], None] | None,
    progress_every: int,
    cancel: threading.Event | None,
    total: int | None,
) -> tuple[list[tuple[datetime, Decimal]], int, int]:
    """Feed every bar; returns the whole equity curve, the bars done and how many came before
    ``measure_from``."""
    curve: list[tuple[datetime, Decimal]] = []
    append = curve.append
    process = broker.process_bar
    on_bar = runner.on_bar
    positions = broker.positions
    last = broker.last
    last_ts: datetime | None = None
    done = warmup = 0
    step = max(1, progress_every)
    for bar in bars:
        ts = bar.ts
        if last_ts is not None and ts < last_ts:
            raise ValueError(f"bars out of order: {ts.isoformat()} after {last_ts.isoformat()}")
        process(bar)
        last[bar.symbol] = bar.close
        on_bar(bar)
        eq = broker.equity() if positions else broker.cash
        if ts == last_ts:
            curve[-1] = (ts, eq)
        else:
            append((ts, eq))
        last_ts = ts
        done += 1
        if measure_from is not None and ts < measure_from:
            warmup += 1
        if done % step == 0:
            if cancel is not None and cancel.is_set():
                raise BacktestCancelled(done)
            if progress is not None:
                progress(done, total)
    return curve, done, warmup


def _result(
    name: str,
    cfg: BacktestConfig,
    broker: SimulatedBroker,
    curve: list[tuple[datetime, Decimal]],
    signals: list[SignalRecord],
    done: int,
    warmup: int,
    measure_from: datetime | None,
    error: str | None,
) -> BacktestResult:
    """The result over the measured part of ``curve`` (all of it without ``measure_from``)."""
    fills, trades = broker.fills, broker.trades
    base = cfg.initial_cash
    series: list[Decimal] = []
    warmup_end: datetime | None = None
    if measure_from is not None:
        cut = bisect.bisect_left(curve, measure_from, key=lambda point: point[0])
        if cut:
            warmup_end, base = curve[cut - 1]
            series.append(base)  # the first measured bar's return is counted from the warm-up's close
        curve = curve[cut:]
        fills = [f for f in fills if f.ts >= measure_from]
        trades = [t for t in trades if t.entry_ts >= measure_from]
        signals = [s for s in signals if s.ts is not None and s.ts >= measure_from]
    series.extend(e for _, e in curve)
    final = curve[-1][1] if curve else base
    return BacktestResult(
        strategy=name,
        bars=done - warmup,
        initial_equity=base,
        final_equity=final,
        equity_curve=curve,
        fills=fills,
        trades=trades,
        signals=signals,
        total_return=float(final / base - 1) if base else 0.0,
        max_drawdown=max_drawdown(series),
        sharpe=sharpe_ratio(series, cfg.annualisation),
        win_rate=win_rate(trades),
        open_position={s: q for s, q in broker.positions.items() if q},
        error=error,
        periods_per_year=cfg.annualisation,
        measure_from=measure_from,
        warmup_bars=warmup,
        warmup_end=warmup_end,
    )


def win_rate(trades: list[ClosedTrade]) -> float | None:
    if not trades:
        return None
    return sum(1 for t in trades if t.pnl > 0) / len(trades)


async def run_backtest_async(
    strategy: Strategy,
    bars: Iterable[Bar],
    *,
    config: BacktestConfig | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    progress_every: int = 10_000,
    cancel: threading.Event | None = None,
) -> BacktestResult:
    """Run :func:`run_backtest` on a worker thread, off the GUI thread.

    ``progress`` is called on the event-loop thread (relayed with ``call_soon_threadsafe``).
    Cancelling the awaiting task sets the cancel event, so the worker stops at its next check.
    The strategy object must not be shared with a live runner while this runs.
    """
    loop = asyncio.get_running_loop()
    stop = cancel or threading.Event()
    relay: Callable[[int, int | None], None] | None = None
    if progress is not None:
        report = progress

        def relay(done: int, total: int | None) -> None:
            loop.call_soon_threadsafe(report, done, total)

    try:
        return await asyncio.to_thread(
            run_backtest,
            strategy,
            bars,
            config=config,
            progress=relay,
            progress_every=progress_every,
            cancel=stop,
        )
    except asyncio.CancelledError:
        stop.set()
        raise
