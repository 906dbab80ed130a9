"""Liquidity-sweep setup tracker: an incremental state machine, and a strategy that trades it.

The bullish setup, bar by bar (the bearish one is the same machine fed mirrored prices):

``WATCHING_FIRST_SWEEP``
    A bar trades below the lowest low of the previous ``lookback`` bars (resting sell-side
    liquidity) and closes back above that level: the **first sweep**. → ``CONSOLIDATION``.
``CONSOLIDATION``
    Following bars build a range. A quality score in [0, 1] is updated on every bar from range
    tightness (width against the ATR at the sweep), bar count (against ``min_bars``) and volume
    contraction (range volume against the average volume before the sweep). The setup is dropped
    when the range gets wider than ``max_range_atr`` ATRs, lasts longer than ``max_bars``, or a bar
    closes below the first sweep's low. After ``min_bars`` bars, a bar trading below the range low
    is the **second sweep**: → ``SECOND_SWEEP`` if the quality is at least ``min_quality``
    (otherwise the setup is dropped).
``SECOND_SWEEP``
    Waits for a close back inside the range (the same bar counts): → ``WAITING_FOR_ENTRY``. More
    than ``max_sweep_bars`` closes below the range drop the setup.
``WAITING_FOR_ENTRY``
    From the next bar: a close above the range high is the breakout, and only then is the setup
    **confirmed** (entry at that close, stop at the second sweep's low). A trade below the second
    sweep's low, or ``max_wait_bars`` bars without a breakout, drops the setup.

No look-ahead: each call to :meth:`LiquiditySweepTracker.update` reads only the bar it is given
and what earlier bars left in the tracker; the reference level is the rolling minimum of the bars
*before* the current one, and the rolling state is updated with the current bar only after the
decision. Everything is O(1) per bar (rolling minimum amortised).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.domain.models import Bar
from services.indicators.stream import ATR, SMA, RollingExtreme
from services.strategies.api import Param, ParamError, Signal
from services.strategies.builtin.base import SignalFollower

INF = float("inf")


class SetupState(StrEnum):
    WATCHING_FIRST_SWEEP = "WATCHING_FIRST_SWEEP"
    CONSOLIDATION = "CONSOLIDATION"
    SECOND_SWEEP = "SECOND_SWEEP"
    WAITING_FOR_ENTRY = "WAITING_FOR_ENTRY"
    CONFIRMED = "CONFIRMED"


@dataclass(frozen=True, slots=True)
class Transition:
    ts: datetime
    from_state: SetupState
    to_state: SetupState
    reason: str


@dataclass(frozen=True, slots=True)
class SetupConfirmation:
    """A confirmed setup. Prices are in the tracker's orientation turned back to real prices."""

    ts: datetime
    direction: int  # +1 bullish (swept lows), -1 bearish (swept highs)
    entry: float
    stop: float
    range_low: float
    range_high: float
    quality: float


@dataclass(frozen=True, slots=True)
class SweepConfig:
    lookback: int = 20
    atr_period: int = 14
    min_bars: int = 3
    max_bars: int = 30
    max_range_atr: float = 3.0
    min_quality: float = 0.5
    max_sweep_bars: int = 3
    max_wait_bars: int = 10

    def __post_init__(self) -> None:
        if self.lookback < 2 or self.atr_period < 1:
            raise ValueError("lookback must be >= 2 and atr_period >= 1")
        if not 1 <= self.min_bars <= self.max_bars:
            raise ValueError("need 1 <= min_bars <= max_bars")
        if self.max_range_atr <= 0 or not 0 <= self.min_quality <= 1:
            raise ValueError("max_range_atr must be > 0 and min_quality within 0..1")
        if self.max_sweep_bars < 1 or self.max_wait_bars < 1:
            raise ValueError("max_sweep_bars and max_wait_bars must be >= 1")


class LiquiditySweepTracker:
    """One symbol, one direction. Feed closed bars in time order with :meth:`update`."""

    __slots__ = (
        "_atr",
        "_dir",
        "_lows",
        "_vol",
        "atr_at_sweep",
        "cfg",
        "cons_high",
        "cons_low",
        "cons_n",
        "cons_vol",
        "pre_volume",
        "quality",
        "state",
        "sweep1_level",
        "sweep1_low",
        "sweep2_low",
        "sweep_bars",
        "transitions",
        "wait_bars",
    )

    def __init__(self, cfg: SweepConfig | None = None, direction: int = 1) -> None:
        if direction not in (1, -1):
            raise ValueError("direction must be +1 (bullish) or -1 (bearish)")
        self.cfg = cfg or SweepConfig()
        self._dir = direction
        self._lows = RollingExtreme(self.cfg.lookback, "min")
        self._atr = ATR(self.cfg.atr_period)
        self._vol = SMA(self.cfg.lookback)
        self.transitions: list[Transition] = []
        self.state = SetupState.WATCHING_FIRST_SWEEP
        self._reset_setup()

    def _reset_setup(self) -> None:
        self.sweep1_level = 0.0
        self.sweep1_low = 0.0
        self.sweep2_low = 0.0
        self.atr_at_sweep = 0.0
        self.pre_volume = 0.0
        self.cons_high = -INF
        self.cons_low = INF
        self.cons_n = 0
        self.cons_vol = 0.0
        self.quality = 0.0
        self.sweep_bars = 0
        self.wait_bars = 0

    def _go(self, ts: datetime, to: SetupState, reason: str) -> None:
        self.transitions.append(Transition(ts, self.state, to, reason))
        self.state = to

    def _drop(self, ts: datetime, reason: str) -> None:
        self._go(ts, SetupState.WATCHING_FIRST_SWEEP, reason)
        self._reset_setup()

    def _score(self) -> float:
        cfg = self.cfg
        width = self.cons_high - self.cons_low
        limit = cfg.max_range_atr * self.atr_at_sweep
        tight = min(1.0, max(0.0, 1.0 - width / limit)) if limit > 0 else 0.0
        duration = min(1.0, self.cons_n / cfg.min_bars)
        if self.pre_volume > 0 and self.cons_n:
            contraction = min(1.0, max(0.0, 1.0 - (self.cons_vol / self.cons_n) / self.pre_volume))
        else:
            contraction = 0.0
        return 0.4 * tight + 0.3 * duration + 0.3 * contraction

    def update(self, bar: Bar) -> SetupConfirmation | None:
        """Advance with one closed bar; returns a confirmation on the breakout bar, else None."""
        d = self._dir
        if d == 1:
            high, low, close = float(bar.high), float(bar.low), float(bar.close)
        else:  # mirrored: the bearish setup is the bullish one on negated prices
            high, low, close = -float(bar.low), -float(bar.high), -float(bar.close)
        volume = float(bar.volume)
        ts = bar.ts
        ref_low = self._lows.value if self._lows.full else None  # previous bars only
        atr = self._atr.update(high, low, close)
        result: SetupConfirmation | None = None
        cfg = self.cfg
        state = self.state

        if state is SetupState.WATCHING_FIRST_SWEEP:
            if ref_low is not None and atr is not None and low < ref_low and close > ref_low:
                self.sweep1_level = ref_low
                self.sweep1_low = low
                self.atr_at_sweep = atr
                self.pre_volume = self._vol.value or 0.0
                self._go(ts, SetupState.CONSOLIDATION, f"first sweep below {self._real(ref_low):.4f}")
        elif state is SetupState.CONSOLIDATION:
            if self.cons_n >= cfg.min_bars and low < self.cons_low:
                if self.quality >= cfg.min_quality:
                    self.sweep2_low = low
                    self.sweep_bars = 0
                    self._go(ts, SetupState.SECOND_SWEEP, f"second sweep, quality {self.quality:.2f}")
                    self._after_second_sweep(ts, close)
                else:
                    self._drop(ts, f"second sweep on a weak range (quality {self.quality:.2f})")
            elif close < self.sweep1_low:
                self._drop(ts, "closed below the first sweep's low")
            else:
                self.cons_high = max(self.cons_high, high)
                self.cons_low = min(self.cons_low, low)
                self.cons_n += 1
                self.cons_vol += volume
                self.quality = self._score()
                if self.cons_high - self.cons_low > cfg.max_range_atr * self.atr_at_sweep:
                    self._drop(ts, "range wider than the allowed ATR multiple")
                elif self.cons_n > cfg.max_bars:
                    self._drop(ts, "consolidation lasted too long")
        elif state is SetupState.SECOND_SWEEP:
            self.sweep2_low = min(self.sweep2_low, low)
            self._after_second_sweep(ts, close)
        elif state is SetupState.WAITING_FOR_ENTRY:
            self.wait_bars += 1
            if low < self.sweep2_low:
                self._drop(ts, "traded below the second sweep's low")
            elif close > self.cons_high:
                result = SetupConfirmation(
                    ts=ts,
                    direction=d,
                    entry=self._real(close),
                    stop=self._real(self.sweep2_low),
                    range_low=self._real(self.cons_low if d == 1 else self.cons_high),
                    range_high=self._real(self.cons_high if d == 1 else self.cons_low),
                    quality=self.quality,
                )
                self._go(ts, SetupState.CONFIRMED, f"breakout close {self._real(close):.4f}")
                self._go(ts, SetupState.WATCHING_FIRST_SWEEP, "setup consumed; watching again")
                self._reset_setup()
            elif self.wait_bars >= cfg.max_wait_bars:
                self._drop(ts, "no breakout in time")

        self._lows.update(low)
        self._vol.update(volume)
        return result

    def _after_second_sweep(self, ts: datetime, close: float) -> None:
        if close >= self.cons_low:
            self.wait_bars = 0
            self._go(ts, SetupState.WAITING_FOR_ENTRY, "closed back inside the range")
            return
        self.sweep_bars += 1
        if self.sweep_bars > self.cfg.max_sweep_bars:
            self._drop(ts, "stayed below the range")

    def _real(self, x: float) -> float:
        return x if self._dir == 1 else -x

    def snapshot(self) -> dict[str, Any]:
        """For panels and reports: the state and the current score."""
        return {"state": self.state.value, "quality": round(self.quality, 4), "bars": self.cons_n}


class LiquiditySweepStrategy(SignalFollower):
    """Trades confirmed sweep setups: in on the breakout, out at the stop or ``reward_risk`` × risk.

    Exits are decided on bar closes (close at or beyond the stop or the target).
    """

    KEY = "liquidity_sweep"
    DESCRIPTION = "Liquidity grab, consolidation, second grab, breakout entry."
    PARAMS = (
        Param("side", str, "long", "which setups to trade", choices=("long", "short", "both")),
        Param("lookback", int, 20, "bars defining the liquidity level", minimum=2, maximum=10_000),
        Param("atr_period", int, 14, "ATR period (bars) for range limits", minimum=1, maximum=10_000),
        Param("min_bars", int, 3, "minimum consolidation bars", minimum=1, maximum=10_000),
        Param("max_bars", int, 30, "maximum consolidation bars", minimum=1, maximum=10_000),
        Param("max_range_atr", float, 3.0, "maximum range width in ATRs", minimum=0.1, maximum=100.0),
        Param("min_quality", float, 0.5, "minimum consolidation quality (0..1)", minimum=0.0, maximum=1.0),
        Param("max_wait_bars", int, 10, "bars to wait for the breakout", minimum=1, maximum=10_000),
        Param(
            "reward_risk", float, 2.0, "take profit at this multiple of the risk", minimum=0.1, maximum=100.0
        ),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["min_bars"] > params["max_bars"]:
            raise ParamError("min_bars must not exceed max_bars")

    def on_start(self) -> None:
        p = self.params
        cfg = SweepConfig(
            lookback=p["lookback"],
            atr_period=p["atr_period"],
            min_bars=p["min_bars"],
            max_bars=p["max_bars"],
            max_range_atr=p["max_range_atr"],
            min_quality=p["min_quality"],
            max_wait_bars=p["max_wait_bars"],
        )
        dirs = {"long": (1,), "short": (-1,), "both": (1, -1)}[p["side"]]
        self.trackers: dict[str, list[LiquiditySweepTracker]] = {
            s: [LiquiditySweepTracker(cfg, d) for d in dirs] for s in self.symbols
        }
        self.ctx.state.setdefault("exits", {})

    def on_bar(self, bar: Bar) -> None:
        symbol = bar.symbol
        close = float(bar.close)
        exits: dict[str, list[float]] = self.ctx.state["exits"]
        held = exits.get(symbol)
        if held is not None:
            direction, stop, target = held
            if (close - stop) * direction <= 0 or (close - target) * direction >= 0:
                del exits[symbol]
                self._follow(symbol, Signal.FLAT, "stop or target reached")
        for tracker in self.trackers[symbol]:
            confirmation = tracker.update(bar)
            if confirmation is not None and symbol not in exits:
                risk = abs(confirmation.entry - confirmation.stop)
                target = confirmation.entry + confirmation.direction * self.params["reward_risk"] * risk
                exits[symbol] = [float(confirmation.direction), confirmation.stop, target]
                wanted = Signal.LONG if confirmation.direction == 1 else Signal.SHORT
                self._follow(symbol, wanted, f"sweep setup confirmed (quality {confirmation.quality:.2f})")

    def setups(self) -> dict[str, list[dict[str, Any]]]:
        return {s: [t.snapshot() for t in ts] for s, ts in self.trackers.items()}
