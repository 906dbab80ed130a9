"""Moving-average crossover: long while the fast SMA is above the slow one."""

from __future__ import annotations

from typing import Any

from services.domain.models import Bar
from services.indicators.stream import SMA
from services.strategies.api import Param, ParamError, Signal
from services.strategies.builtin.base import SignalFollower


class _Pair:
    __slots__ = ("above", "fast", "slow")

    def __init__(self, fast: int, slow: int) -> None:
        self.fast = SMA(fast)
        self.slow = SMA(slow)
        self.above: bool | None = None


class SmaCrossover(SignalFollower):
    """LONG when SMA(fast) > SMA(slow); FLAT (or SHORT with ``allow_short``) when it is below.

    Acts when the relation changes, and once when both averages are first available.
    """

    KEY = "sma_crossover"
    DESCRIPTION = "Long while the fast simple moving average is above the slow one."
    PARAMS = (
        Param("fast", int, 10, "fast SMA window (bars)", minimum=1, maximum=100_000),
        Param("slow", int, 30, "slow SMA window (bars)", minimum=2, maximum=100_000),
        Param("allow_short", bool, False, "go short (instead of flat) below the slow SMA"),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["fast"] >= params["slow"]:
            raise ParamError(f"fast ({params['fast']}) must be smaller than slow ({params['slow']})")

    def on_start(self) -> None:
        super().on_start()
        fast, slow = self.params["fast"], self.params["slow"]
        self._pairs = {s: _Pair(fast, slow) for s in self.symbols}
        self._down = Signal.SHORT if self.params["allow_short"] else Signal.FLAT

    def on_bar(self, bar: Bar) -> None:
        pair = self._pairs[bar.symbol]
        x = float(bar.close)
        f = pair.fast.update(x)
        s = pair.slow.update(x)
        if f is None or s is None or f == s:
            return
        above = f > s
        if above is pair.above:
            return
        pair.above = above
        if above:
            self._follow(bar.symbol, Signal.LONG, "fast SMA crossed above slow")
        else:
            self._follow(bar.symbol, self._down, "fast SMA crossed below slow")
