"""The chart's indicators: one ``Indicator`` protocol, its implementations and the registry.

An indicator says what it is (``name``, ``parameters``, a tooltip), how it is drawn (its ``pane``
and one ``LineStyle`` per line) and how it computes: ``compute`` for the whole history,
``extend`` for bars appended to it, ``live`` for the still-forming bar. The maths is
``services.indicators.series``, the library the strategies' streaming indicators are held to.
Drawing and buffering are ``widgets.chart.lines``. To add an indicator, implement the protocol and
list it in ``REGISTRY``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum
from typing import Final, Protocol

import numpy as np

from services.indicators import series
from widgets.chart.store import F64, I64, LiveBar
from widgets.theme import ChartColors


class Pane(StrEnum):
    """Where an indicator's lines go."""

    PRICE = "price"  # over the candles, in price units (counted when fitting the price axis)
    OSCILLATOR = "oscillator"  # the 0..100 pane under the volume, shown while the indicator is on


@dataclass(frozen=True, slots=True)
class LineStyle:
    color: str
    dashed: bool = False


class Bars(Protocol):
    """The history columns an indicator reads (``BarStore`` provides them)."""

    @property
    def t(self) -> I64: ...
    @property
    def h(self) -> F64: ...
    @property
    def l(self) -> F64: ...  # noqa: E743 - OHLC spelling
    @property
    def c(self) -> F64: ...
    @property
    def v(self) -> F64: ...


class Indicator(Protocol):
    """One indicator on the chart. Values are float64 arrays, one per line, NaN before the window
    is full. An instance keeps whatever state ``extend`` and ``live`` need between calls."""

    name: str
    tooltip: str
    pane: Pane
    lines: tuple[LineStyle, ...]

    @property
    def parameters(self) -> Mapping[str, float]: ...

    def compute(self, bars: Bars) -> list[F64]:
        """Every line over the whole history (O(N))."""
        ...

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        """Values for history bars [start, len) given the values before ``start`` (which are still
        valid), or None when only a full ``compute`` can tell."""
        ...

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        """Each line's value for the live ``bar`` that follows the history."""
        ...


class MovingAverage:
    """Simple moving average of the closes."""

    name = "SMA"
    pane = Pane.PRICE

    def __init__(self, period: int) -> None:
        self.period = period
        self.tooltip = f"Simple moving average ({period})"
        self.lines: tuple[LineStyle, ...] = (LineStyle(ChartColors.sma),)

    @property
    def parameters(self) -> Mapping[str, float]:
        return {"period": self.period}

    def compute(self, bars: Bars) -> list[F64]:
        return [series.sma(bars.c, self.period)]

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        close, p = bars.c, self.period
        window = close[max(0, start - p + 1) :]
        return [series.sma(window, p)[start - close.shape[0] :]]

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        p = self.period
        tail = np.append(bars.c[-(p - 1) :] if p > 1 else [], bar.c)
        return [series.sma_last(tail, p)]


class ExponentialAverage:
    """Exponential moving average of the closes (seeded with the SMA of the first ``period``)."""

    name = "EMA"
    pane = Pane.PRICE

    def __init__(self, period: int) -> None:
        self.period = period
        self.tooltip = f"Exponential moving average ({period})"
        self.lines: tuple[LineStyle, ...] = (LineStyle(ChartColors.ema),)

    @property
    def parameters(self) -> Mapping[str, float]:
        return {"period": self.period}

    def compute(self, bars: Bars) -> list[F64]:
        return [series.ema(bars.c, self.period)]

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        prev = float(values[0][start - 1])
        return None if math.isnan(prev) else [series.ema_extend(prev, bars.c[start:], self.period)]

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        return [series.ema_next(float(values[0][-1]), bar.c, self.period)]


class BollingerBands:
    """Middle (SMA), upper and lower band at ``k`` population standard deviations."""

    name = "BB"
    pane = Pane.PRICE

    def __init__(self, period: int, k: float) -> None:
        self.period, self.k = period, k
        self.tooltip = f"Bollinger bands ({period}, {k:g}σ)"
        color = ChartColors.bollinger
        self.lines: tuple[LineStyle, ...] = (
            LineStyle(color),
            LineStyle(color, dashed=True),
            LineStyle(color, dashed=True),
        )

    @property
    def parameters(self) -> Mapping[str, float]:
        return {"period": self.period, "k": self.k}

    def compute(self, bars: Bars) -> list[F64]:
        return list(series.bollinger(bars.c, self.period, self.k))

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        close, p = bars.c, self.period
        window = close[max(0, start - p + 1) :]
        return [a[start - close.shape[0] :] for a in series.bollinger(window, p, self.k)]

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        tail = np.append(bars.c[-(self.period - 1) :], bar.c)
        return list(series.bollinger_last(tail, self.period, self.k))


class RelativeStrength:
    """Wilder's RSI of the closes, in its own 0..100 pane."""

    name = "RSI"
    pane = Pane.OSCILLATOR

    def __init__(self, period: int) -> None:
        self.period = period
        self.tooltip = f"Relative strength index ({period}, Wilder)"
        self.lines: tuple[LineStyle, ...] = (LineStyle(ChartColors.rsi),)
        self._state = (math.nan, math.nan)  # Wilder's average gain and loss after the last bar

    @property
    def parameters(self) -> Mapping[str, float]:
        return {"period": self.period}

    def compute(self, bars: Bars) -> list[F64]:
        self._state = series.rsi_state(bars.c, self.period)
        return [series.rsi(bars.c, self.period)]

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        if math.isnan(self._state[0]):
            return None
        new, self._state = series.rsi_extend(self._state, bars.c[start - 1 :], self.period)
        return [new]

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        return [series.rsi_next(self._state, float(bars.c[-1]), bar.c, self.period)]


class SessionVwap:
    """Volume-weighted typical price, restarting each calendar day in the display time zone."""

    name = "VWAP"
    pane = Pane.PRICE
    tooltip = "Session VWAP (resets each day in the display time zone)"

    def __init__(self, display_tz: tzinfo) -> None:
        self.display_tz = display_tz
        self.lines: tuple[LineStyle, ...] = (LineStyle(ChartColors.vwap),)
        self._carry: tuple[int, float, float] | None = None  # (session, Σ price·volume, Σ volume)

    @property
    def parameters(self) -> Mapping[str, float]:
        return {}

    def compute(self, bars: Bars) -> list[F64]:
        tp = series.typical_price(bars.h, bars.l, bars.c)
        sessions = series.session_ids(bars.t, self.display_tz)
        _, self._carry = series.vwap_session_extend(None, tp, bars.v, sessions)
        return [series.vwap_session(tp, bars.v, sessions)]

    def extend(self, bars: Bars, start: int, values: Sequence[F64]) -> list[F64] | None:
        tp = series.typical_price(bars.h[start:], bars.l[start:], bars.c[start:])
        sessions = series.session_ids(bars.t[start:], self.display_tz)
        new, self._carry = series.vwap_session_extend(self._carry, tp, bars.v[start:], sessions)
        return [new]

    def live(self, bars: Bars, values: Sequence[F64], bar: LiveBar) -> list[float]:
        tp = (bar.h + bar.l + bar.c) / 3.0
        session = int(series.session_ids(np.array([bar.t]), self.display_tz)[0])
        carry = self._carry
        if carry is not None and carry[0] == session:
            pv, cv = carry[1] + tp * bar.v, carry[2] + bar.v
        else:
            pv, cv = tp * bar.v, bar.v
        return [pv / cv if cv > 0 else math.nan]


#: Each indicator's parameters and their defaults (an indicator without parameters has none).
DEFAULT_PARAMETERS: Final[dict[str, dict[str, float]]] = {
    "SMA": {"period": 20},
    "EMA": {"period": 50},
    "VWAP": {},
    "BB": {"period": 20, "k": 2.0},
    "RSI": {"period": 14},
}

#: What a parameter may be: (lowest, highest, whole number).
PARAMETER_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    "period": (1, 1000, True),
    "k": (0.1, 10.0, False),
}


def _period(params: Mapping[str, float]) -> int:
    return int(params["period"])


#: The chart's indicators in toolbar order: name -> factory taking the display time zone and the
#: parameters (checked by :func:`checked_parameters`).
REGISTRY: Final[dict[str, Callable[[tzinfo, Mapping[str, float]], Indicator]]] = {
    "SMA": lambda _tz, p: MovingAverage(_period(p)),
    "EMA": lambda _tz, p: ExponentialAverage(_period(p)),
    "VWAP": lambda tz, _p: SessionVwap(tz),
    "BB": lambda _tz, p: BollingerBands(_period(p), float(p["k"])),
    "RSI": lambda _tz, p: RelativeStrength(_period(p)),
}
INDICATORS: Final = tuple(REGISTRY)


def checked_parameters(name: str, params: Mapping[str, object]) -> dict[str, float]:
    """``params`` for indicator ``name`` with the defaults filled in; raises ValueError naming the
    first unknown parameter or value out of range."""
    if name not in DEFAULT_PARAMETERS:
        raise ValueError(f"unknown indicator {name!r}; expected one of {INDICATORS}")
    out = dict(DEFAULT_PARAMETERS[name])
    for key, value in params.items():
        if key not in out:
            raise ValueError(f"{name} has no parameter {key!r}; it has {sorted(out) or 'none'}")
        lo, hi, whole = PARAMETER_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(f"{name} {key} must be a number from {lo:g} to {hi:g}, got {value!r}")
        if whole and value != int(value):
            raise ValueError(f"{name} {key} must be a whole number, got {value!r}")
        out[key] = int(value) if whole else float(value)
    return out


def make_indicator(name: str, display_tz: tzinfo, params: Mapping[str, object] | None = None) -> Indicator:
    """A fresh ``name`` indicator with ``params`` (defaults for the rest); ValueError if invalid."""
    indicator = REGISTRY[name](display_tz, checked_parameters(name, params or {}))
    if indicator.name != name:
        raise ValueError(f"indicator registered as {name!r} calls itself {indicator.name!r}")
    return indicator


def create_indicators(display_tz: tzinfo) -> dict[str, Indicator]:
    """One fresh instance of every registered indicator with its default parameters (each chart
    keeps its own state)."""
    return {name: make_indicator(name, display_tz) for name in REGISTRY}


def legend_text(indicator: Indicator) -> str:
    """How the chart's legend names the indicator: its name and parameters, e.g. ``SMA(20)``."""
    values = ", ".join(f"{v:g}" for v in indicator.parameters.values())
    return f"{indicator.name}({values})" if values else indicator.name
