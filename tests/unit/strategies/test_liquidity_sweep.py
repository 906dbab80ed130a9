from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from services.domain.models import Bar
from services.strategies.api import Signal
from services.strategies.builtin.liquidity_sweep import (
    LiquiditySweepStrategy,
    LiquiditySweepTracker,
    SetupState,
    SweepConfig,
)
from services.strategies.runner import StrategyRunner

from .support import RecordingSink, bar

CFG = SweepConfig(
    lookback=5,
    atr_period=3,
    min_bars=3,
    max_bars=10,
    max_range_atr=3.0,
    min_quality=0.5,
    max_sweep_bars=2,
    max_wait_bars=3,
)
W, C, S2, WAIT = (
    SetupState.WATCHING_FIRST_SWEEP,
    SetupState.CONSOLIDATION,
    SetupState.SECOND_SWEEP,
    SetupState.WAITING_FOR_ENTRY,
)


def warmup() -> list[Bar]:
    return [bar(i, 100.5, 101, 100, 100.5, 1000) for i in range(6)]  # lows at 100, ATR 1


FIRST_SWEEP = bar(6, 100.5, 100.6, 99.5, 100.3, 2000)  # trades below 100, closes back above
CONS = [bar(7 + k, 100.5, 100.8, 100.2, 100.5, 400) for k in range(3)]  # tight range 100.2..100.8
SECOND_SWEEP = bar(10, 100.5, 100.6, 100.0, 100.4, 900)  # below 100.2, closes back inside
INSIDE = bar(11, 100.4, 100.7, 100.3, 100.6, 500)
BREAKOUT = bar(12, 100.6, 101.2, 100.5, 101.0, 1500)  # closes above 100.8


def run(bars: list[Bar], cfg: SweepConfig = CFG, direction: int = 1) -> tuple[LiquiditySweepTracker, list]:
    t = LiquiditySweepTracker(cfg, direction)
    confirmations = []
    for b in bars:
        c = t.update(b)
        if c is not None:
            confirmations.append(c)
    return t, confirmations


def test_each_transition_in_order_and_confirmation_only_on_the_breakout_bar() -> None:
    t = LiquiditySweepTracker(CFG)
    seen = []
    for b in [*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE, BREAKOUT]:
        result = t.update(b)
        seen.append((b.ts.minute - 30, t.state, result is not None))
    states = [s for _, s, _ in seen]
    assert states[:6] == [W] * 6
    assert states[6:9] == [C, C, C] and states[9] == C
    assert states[10] == WAIT and states[11] == WAIT
    assert states[12] == W  # consumed after confirming
    assert [i for i, _, confirmed in seen if confirmed] == [12]
    moves = [(tr.from_state, tr.to_state) for tr in t.transitions]
    assert moves == [
        (W, C),
        (C, S2),
        (S2, WAIT),
        (WAIT, SetupState.CONFIRMED),
        (SetupState.CONFIRMED, W),
    ]
    assert [tr.ts for tr in t.transitions][:3] == [FIRST_SWEEP.ts, SECOND_SWEEP.ts, SECOND_SWEEP.ts]


def test_confirmation_fields_and_quality() -> None:
    _, confirmations = run([*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE, BREAKOUT])
    (c,) = confirmations
    assert c.ts == BREAKOUT.ts and c.direction == 1
    assert (c.entry, c.stop) == (101.0, 100.0)
    assert (c.range_low, c.range_high) == pytest.approx((100.2, 100.8))
    # tightness 1 - 0.6/(3 × 1.0333) = 0.806; duration 1; volume 1 - 400/1000 = 0.6
    assert c.quality == pytest.approx(0.4 * (1 - 0.6 / (3 * (2 + 1.1) / 3)) + 0.3 + 0.3 * 0.6, rel=1e-6)


def test_quality_is_updated_bar_by_bar() -> None:
    t = LiquiditySweepTracker(CFG)
    for b in [*warmup(), FIRST_SWEEP]:
        t.update(b)
    scores = []
    for b in CONS:
        t.update(b)
        scores.append(t.quality)
    assert scores[0] < scores[1] < scores[2]  # duration component grows to min_bars


def test_prefix_without_breakout_never_confirms() -> None:
    t, confirmations = run([*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE])
    assert confirmations == [] and t.state is WAIT


def test_breakout_on_the_second_sweep_bar_itself_does_not_confirm() -> None:
    engulfing = bar(10, 100.5, 101.3, 100.0, 101.2, 900)  # sweeps the range low and closes above its high
    t, confirmations = run([*warmup(), FIRST_SWEEP, *CONS, engulfing])
    assert confirmations == [] and t.state is WAIT
    t.update(bar(11, 101.2, 101.4, 101.0, 101.3))
    assert t.transitions[-2].to_state is SetupState.CONFIRMED


@pytest.mark.parametrize(
    ("label", "tail", "reason"),
    [
        ("close below the first sweep", [bar(7, 100.5, 100.6, 99.0, 99.2)], "closed below the first sweep"),
        ("range too wide", [bar(7, 100.5, 104.5, 100.2, 104.0)], "range wider"),
        (
            "deeper sweep after the reclaim",
            [*CONS, SECOND_SWEEP, bar(11, 100.4, 100.5, 99.9, 100.3), BREAKOUT],
            "below the second sweep",
        ),
        (
            "no breakout in time",
            [
                *CONS,
                SECOND_SWEEP,
                INSIDE,
                bar(12, 100.5, 100.7, 100.3, 100.5),
                bar(13, 100.5, 100.7, 100.3, 100.5),
                bar(14, 100.5, 101.5, 100.3, 101.4),
            ],
            "no breakout in time",
        ),
        (
            "stays below the range",
            [
                *CONS,
                bar(10, 100.2, 100.3, 99.9, 100.0),
                bar(11, 100, 100.1, 99.8, 99.9),
                bar(12, 99.9, 100.0, 99.7, 99.8),
                BREAKOUT,
            ],
            "stayed below the range",
        ),
    ],
)
def test_sequences_that_must_not_confirm(label: str, tail: list[Bar], reason: str) -> None:
    t, confirmations = run([*warmup(), FIRST_SWEEP, *tail])
    assert confirmations == [], label
    assert any(reason in tr.reason for tr in t.transitions), [tr.reason for tr in t.transitions]


def test_weak_range_is_dropped_at_the_second_sweep() -> None:
    strict = dataclasses.replace(CFG, min_quality=0.95)
    t, confirmations = run([*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE, BREAKOUT], strict)
    assert confirmations == []
    assert any("weak range" in tr.reason for tr in t.transitions)


def mirror(b: Bar) -> Bar:
    m = Decimal(200)
    return Bar(b.symbol, b.ts, m - b.open, m - b.low, m - b.high, m - b.close, b.volume)


def test_bearish_setup_is_the_mirror_image() -> None:
    bars = [mirror(b) for b in [*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE, BREAKOUT]]
    _, bullish = run(bars, direction=1)
    _, bearish = run(bars, direction=-1)
    assert bullish == []
    (c,) = bearish
    assert c.direction == -1 and c.ts == BREAKOUT.ts
    assert (c.entry, c.stop) == pytest.approx((99.0, 100.0))
    assert (c.range_low, c.range_high) == pytest.approx((99.2, 99.8))


def test_strategy_enters_on_the_breakout_bar_and_exits_at_the_target() -> None:
    sink = RecordingSink()
    runner = StrategyRunner(sink)
    name = runner.add(
        LiquiditySweepStrategy(
            {
                "lookback": 5,
                "atr_period": 3,
                "min_bars": 3,
                "max_wait_bars": 3,
                "reward_risk": 1.0,
                "qty": "5",
            }
        )
    )
    runner.start(name)
    strategy = runner.strategy(name)
    assert isinstance(strategy, LiquiditySweepStrategy)
    for b in [*warmup(), FIRST_SWEEP, *CONS, SECOND_SWEEP, INSIDE]:
        runner.on_bar(b)
    assert sink.intents == []
    runner.on_bar(BREAKOUT)
    assert [(r.ts, r.signal) for r in runner.signals] == [(BREAKOUT.ts, Signal.LONG)]
    assert sink.intents[0].request.qty == Decimal(5) and sink.intents[0].ts == BREAKOUT.ts
    runner.on_bar(bar(13, 101.0, 102.1, 101.0, 102.0))  # target = 101 + 1 × (101 - 100)
    assert [r.signal for r in runner.signals] == [Signal.LONG, Signal.FLAT]
    assert strategy.setups()["AAPL"][0]["state"] == "WATCHING_FIRST_SWEEP"
