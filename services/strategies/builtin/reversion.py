"""Mean-reversion built-ins: RSI, rolling VWAP and Bollinger bands.

Each enters against an extreme and exits at the mean. Decisions use the bar's close and
indicators updated with bars up to and including that bar only.
"""

from __future__ import annotations

from typing import Any

from services.domain.models import Bar
from services.indicators.stream import RSI, Bollinger, RollingVWAP
from services.strategies.api import Param, ParamError, Signal
from services.strategies.builtin.base import SignalFollower


class _Reversion(SignalFollower):
    """Template: subclasses compute (value, lower_entry, mean, upper_entry) per bar."""

    def on_start(self) -> None:
        super().on_start()
        self._side: dict[str, Signal] = {s: Signal.FLAT for s in self.symbols}

    def _levels(self, bar: Bar) -> tuple[float, float, float, float] | None:
        raise NotImplementedError

    def on_bar(self, bar: Bar) -> None:
        levels = self._levels(bar)
        if levels is None:
            return
        value, low, mean, high = levels
        symbol = bar.symbol
        side = self._side[symbol]
        wanted = side
        if side is Signal.FLAT:
            if value < low:
                wanted = Signal.LONG
            elif value > high and self.params["allow_short"]:
                wanted = Signal.SHORT
        elif (side is Signal.LONG and value >= mean) or (side is Signal.SHORT and value <= mean):
            wanted = Signal.FLAT
        if wanted is not side:
            self._side[symbol] = wanted
            self._follow(symbol, wanted, f"{self.KEY}: value {value:.4f}, band {low:.4f}..{high:.4f}")


class RsiReversion(_Reversion):
    """LONG when RSI < lower, out when RSI >= exit; SHORT when RSI > upper (if allowed)."""

    KEY = "rsi_reversion"
    DESCRIPTION = "Buy oversold (RSI below lower), exit at the middle level."
    PARAMS = (
        Param("period", int, 14, "RSI period (bars)", minimum=2, maximum=10_000),
        Param("lower", float, 30.0, "oversold level", minimum=0.0, maximum=100.0),
        Param("upper", float, 70.0, "overbought level", minimum=0.0, maximum=100.0),
        Param("exit", float, 50.0, "exit level", minimum=0.0, maximum=100.0),
        Param("allow_short", bool, False, "short overbought"),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if not params["lower"] < params["exit"] < params["upper"]:
            raise ParamError("RSI levels must satisfy lower < exit < upper")

    def on_start(self) -> None:
        super().on_start()
        self._rsi = {s: RSI(self.params["period"]) for s in self.symbols}

    def _levels(self, bar: Bar) -> tuple[float, float, float, float] | None:
        value = self._rsi[bar.symbol].update(float(bar.close))
        if value is None:
            return None
        p = self.params
        return value, p["lower"], p["exit"], p["upper"]


class VwapReversion(_Reversion):
    """LONG when the close is ``band_pct`` % below the rolling VWAP; out at the VWAP."""

    KEY = "vwap_reversion"
    DESCRIPTION = "Buy stretches below the rolling VWAP, exit at the VWAP."
    PARAMS = (
        Param("window", int, 30, "VWAP window (bars)", minimum=1, maximum=100_000),
        Param("band_pct", float, 0.5, "distance from VWAP to enter, in percent", minimum=0.0, maximum=50.0),
        Param("allow_short", bool, False, "short stretches above the VWAP"),
    )

    def on_start(self) -> None:
        super().on_start()
        self._vwap = {s: RollingVWAP(self.params["window"]) for s in self.symbols}

    def _levels(self, bar: Bar) -> tuple[float, float, float, float] | None:
        typical = (float(bar.high) + float(bar.low) + float(bar.close)) / 3.0
        vwap = self._vwap[bar.symbol].update(typical, float(bar.volume))
        if vwap is None:
            return None
        band = vwap * self.params["band_pct"] / 100.0
        return float(bar.close), vwap - band, vwap, vwap + band


class BollingerReversion(_Reversion):
    """LONG below the lower Bollinger band, out at the middle band."""

    KEY = "bollinger_reversion"
    DESCRIPTION = "Buy closes below the lower Bollinger band, exit at the middle band."
    PARAMS = (
        Param("window", int, 20, "band window (bars)", minimum=2, maximum=100_000),
        Param("k", float, 2.0, "band width in standard deviations", minimum=0.1, maximum=10.0),
        Param("allow_short", bool, False, "short closes above the upper band"),
    )

    def on_start(self) -> None:
        super().on_start()
        self._bands = {s: Bollinger(self.params["window"], self.params["k"]) for s in self.symbols}

    def _levels(self, bar: Bar) -> tuple[float, float, float, float] | None:
        bands = self._bands[bar.symbol]
        close = float(bar.close)
        if bands.update(close) is None:
            return None
        assert bands.lower is not None and bands.middle is not None and bands.upper is not None
        return close, bands.lower, bands.middle, bands.upper
