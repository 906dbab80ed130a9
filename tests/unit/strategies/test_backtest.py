from __future__ import annotations

import asyncio
import math
import random
import threading
from decimal import Decimal
from typing import Any

import pytest

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, OrderType, TimeInForce
from services.domain.events import BarEvent
from services.domain.models import Bar
from services.strategies.api import Param, Signal, Strategy
from services.strategies.backtest import (
    BacktestCancelled,
    BacktestConfig,
    max_drawdown,
    run_backtest,
    run_backtest_async,
    sharpe_ratio,
)
from services.strategies.builtin import builtin_registry
from services.strategies.runner import StrategyRunner
from services.strategies.synthetic import synthetic_bars

from .support import RecordingSink, bar


class Scripted(Strategy):
    """Targets a scripted position on given bar numbers."""

    KEY = "scripted"
    PARAMS = (Param("plan", str, "0:10,2:0", "bar:target pairs"),)

    def on_start(self) -> None:
        self.i = -1
        self.plan = {int(k): Decimal(v) for k, v in (p.split(":") for p in self.params["plan"].split(","))}

    def on_bar(self, bar: Bar) -> None:
        self.i += 1
        if self.i in self.plan:
            target = self.plan[self.i]
            self.ctx.signal(
                bar.symbol, Signal.LONG if target > 0 else Signal.SHORT if target < 0 else Signal.FLAT
            )
            self.ctx.target_position(bar.symbol, target)


class LimitOnce(Strategy):
    KEY = "limit_once"

    def on_start(self) -> None:
        self.sent = False

    def on_bar(self, bar: Bar) -> None:
        if not self.sent:
            self.sent = True
            self.ctx.submit(
                bar.symbol, OrderSide.BUY, Decimal(1), type=OrderType.LIMIT, limit_price=Decimal(99)
            )
            self.ctx.submit(
                bar.symbol,
                OrderSide.BUY,
                Decimal(1),
                type=OrderType.LIMIT,
                limit_price=Decimal(95),
                time_in_force=TimeInForce.IOC,
            )


HAND = [
    bar(0, 100, 100, 100, 100),
    bar(1, 101, 102, 100, 102),
    bar(2, 100, 100, 98, 99),
    bar(3, 105, 106, 104, 104),
]


def test_hand_computed_round_trip_metrics() -> None:
    result = run_backtest(Scripted({}), HAND, config=BacktestConfig(initial_cash=Decimal(1000)))
    # buy decided on bar 0 fills at bar 1's open (101); sell decided on bar 2 fills at bar 3's open (105)
    assert [(f.ts, f.side, f.price) for f in result.fills] == [
        (HAND[1].ts, OrderSide.BUY, Decimal(101)),
        (HAND[3].ts, OrderSide.SELL, Decimal(105)),
    ]
    assert [e for _, e in result.equity_curve] == [Decimal(1000), Decimal(1010), Decimal(980), Decimal(1040)]
    (trade,) = result.trades
    assert (trade.entry_price, trade.exit_price, trade.qty, trade.pnl) == (
        Decimal(101),
        Decimal(105),
        Decimal(10),
        Decimal(40),
    )
    assert result.total_return == pytest.approx(0.04)
    assert result.max_drawdown == pytest.approx(30 / 1010)
    assert result.win_rate == 1.0
    r = [1010 / 1000 - 1, 980 / 1010 - 1, 1040 / 980 - 1]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert result.sharpe == pytest.approx(mean / sd * math.sqrt(252 * 390))
    assert [(s.ts, s.signal) for s in result.signals] == [
        (HAND[0].ts, Signal.LONG),
        (HAND[2].ts, Signal.FLAT),
    ]
    assert result.open_position == {} and result.error is None


def test_commission_short_and_losing_trade() -> None:
    cfg = BacktestConfig(initial_cash=Decimal(1000), commission_per_share=Decimal("0.01"))
    result = run_backtest(Scripted({"plan": "0:-10,2:0"}), HAND, config=cfg)
    (trade,) = result.trades
    assert trade.direction == -1
    assert trade.pnl == Decimal(-40) - Decimal("0.2")  # short 101 → cover 105, two commissions of 0.10
    assert result.final_equity == Decimal(1000) - Decimal(40) - Decimal("0.2")
    assert result.win_rate == 0.0


def test_limit_fills_only_when_traded_through_and_ioc_gets_one_bar() -> None:
    bars = [
        bar(0, 100, 100, 100, 100),
        bar(1, 100, 101, 99, 100),  # touches 99: no fill (needs trading through)
        bar(2, 100, 100, 98.5, 99),  # through 99: fill at the limit
    ]
    result = run_backtest(LimitOnce(), bars)
    assert [(f.ts, f.price) for f in result.fills] == [(bars[2].ts, Decimal(99))]
    gap = [bar(0, 100, 100, 100, 100), bar(1, 98, 99, 97, 98)]  # opens below the limit: fill at the open
    assert [f.price for f in run_backtest(LimitOnce(), gap).fills] == [Decimal(98)]


def test_metric_helpers_edge_cases() -> None:
    assert max_drawdown([]) == 0.0
    assert max_drawdown([Decimal(1), Decimal(2), Decimal(1), Decimal(3), Decimal(2)]) == pytest.approx(0.5)
    assert sharpe_ratio([Decimal(1), Decimal(1), Decimal(1)], 252) is None
    assert sharpe_ratio([Decimal(1), Decimal(2)], 252) is None


def live_signals(strategy: Strategy, bars: list[Bar]) -> list[tuple[Any, Signal]]:
    """Deliver bars one by one as BarEvents on a bus; check every decision is stamped with the bar
    being delivered at that moment (never a later one)."""
    bus = EventBus()
    runner = StrategyRunner(RecordingSink())
    runner.attach(bus)
    decided: list[tuple[Any, Signal]] = []
    current: list[Bar] = []

    def on_signal(rec: Any) -> None:
        assert rec.ts == current[-1].ts
        decided.append((rec.ts, rec.signal))

    runner.add_signal_listener(on_signal)
    runner.start(runner.add(strategy))
    for b in bars:
        current.append(b)
        bus.publish(BarEvent(b.ts, b))
    assert bus.handler_errors == 0
    return decided


CASES = [
    ("sma_crossover", {"fast": 5, "slow": 20}),
    ("rsi_reversion", {"period": 7, "allow_short": True}),
    ("bollinger_reversion", {"window": 15}),
    ("vwap_reversion", {"window": 10, "band_pct": 0.05}),
    ("liquidity_sweep", {"lookback": 10, "side": "both", "atr_period": 5}),
]


@pytest.mark.parametrize(("key", "params"), CASES)
def test_live_feed_and_replay_make_the_same_decisions_at_the_same_bars(
    key: str, params: dict[str, Any]
) -> None:
    cls = builtin_registry()[key]
    bars = synthetic_bars("AAPL", 1500, seed=11, volatility_bps=20)
    live = live_signals(cls(params), bars)
    replay = run_backtest(cls(params), bars)
    assert len(live) >= 3, "the case must actually decide something"
    assert [(s.ts, s.signal) for s in replay.signals] == live


@pytest.mark.parametrize(("key", "params"), CASES)
def test_changing_future_bars_never_changes_past_decisions(key: str, params: dict[str, Any]) -> None:
    cls = builtin_registry()[key]
    bars = synthetic_bars("AAPL", 1500, seed=12, volatility_bps=20)
    k = 900
    rng = random.Random(3)
    mutated = bars[: k + 1] + [
        Bar(b.symbol, b.ts, b.open * f, b.high * f, b.low * f, b.close * f, b.volume * 3)
        for b in bars[k + 1 :]
        for f in [Decimal(str(round(rng.uniform(0.8, 1.2), 3)))]
    ]
    cutoff = bars[k].ts
    original = [(s.ts, s.signal) for s in run_backtest(cls(params), bars).signals if s.ts <= cutoff]
    changed = [(s.ts, s.signal) for s in run_backtest(cls(params), mutated).signals if s.ts <= cutoff]
    assert original and original == changed


def test_cancellation_and_progress() -> None:
    bars = synthetic_bars("AAPL", 5000, seed=1)
    cancel = threading.Event()
    seen: list[tuple[int, int | None]] = []

    def progress(done: int, total: int | None) -> None:
        seen.append((done, total))
        cancel.set()

    with pytest.raises(BacktestCancelled) as info:
        run_backtest(
            builtin_registry()["sma_crossover"](), bars, progress=progress, progress_every=1000, cancel=cancel
        )
    assert seen == [(1000, 5000)] and info.value.bars_done == 2000


def test_async_wrapper_runs_off_the_loop_thread_and_relays_progress() -> None:
    bars = synthetic_bars("AAPL", 3000, seed=2)
    loop_thread: list[int] = []
    progress_threads: set[int] = set()

    async def main() -> Any:
        loop_thread.append(threading.get_ident())
        result = await run_backtest_async(
            builtin_registry()["sma_crossover"](),
            bars,
            progress=lambda d, t: progress_threads.add(threading.get_ident()),
            progress_every=500,
        )
        await asyncio.sleep(0)  # let the last relayed callback run
        return result

    result = asyncio.run(main())
    assert result.bars == 3000
    assert progress_threads == {loop_thread[0]}


@pytest.mark.expected_log(
    r"^services\.strategies\.runner: strategy broken failed and was stopped: ZeroDivisionError:",
)
def test_bad_input_and_strategy_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="out of order"):
        run_backtest(Scripted({}), [HAND[1], HAND[0]])

    class Broken(Strategy):
        KEY = "broken"

        def on_bar(self, bar: Bar) -> None:
            raise ZeroDivisionError("bad maths")

    result = run_backtest(Broken(), HAND)
    assert result.error == "ZeroDivisionError: bad maths" and result.bars == 4


def test_slippage_makes_market_fills_worse_and_lowers_the_result() -> None:
    cfg = BacktestConfig(initial_cash=Decimal(1000), slippage_bps=Decimal(10))
    result = run_backtest(Scripted({}), HAND, config=cfg)
    # buy at bar 1's open 101 pays 0.1 % more; sell at bar 3's open 105 gets 0.1 % less
    assert [f.price for f in result.fills] == [Decimal("101.101"), Decimal("104.895")]
    (trade,) = result.trades
    assert trade.pnl == (Decimal("104.895") - Decimal("101.101")) * 10 == Decimal("37.94")
    assert result.final_equity == Decimal(1000) + Decimal("37.94")
    assert result.first_bar == HAND[0].ts and result.last_bar == HAND[-1].ts
    assert result.periods_per_year == 252 * 390


def test_slippage_spares_limit_fills_and_commission_adds_up() -> None:
    bars = [bar(0, 100, 100, 100, 100), bar(1, 100, 100, 98.5, 99)]
    cfg = BacktestConfig(slippage_bps=Decimal(50), commission_per_share=Decimal("0.005"))
    result = run_backtest(LimitOnce(), bars, config=cfg)
    assert [f.price for f in result.fills] == [Decimal(99)]  # at the limit, not beyond it
    assert result.final_equity == Decimal(100_000) - Decimal("0.005") + (Decimal(99) - Decimal(99))
    with pytest.raises(ValueError, match="negative"):
        BacktestConfig(slippage_bps=Decimal(-1))
