"""Strategies, data and a listener for the strategy lab's tests (importable by Dask worker processes)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.lab.model import PointResult, SweepOutcome, SweepProgress
from services.strategies.api import Param, ParamError, Strategy
from services.strategies.builtin import builtin_registry
from services.strategies.builtin.sma_crossover import SmaCrossover
from services.strategies.synthetic import DEFAULT_START, synthetic_bars

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class TracedSma(SmaCrossover):
    """The SMA crossover that appends a line to ``trace`` (a file) each time a backtest starts it, so
    a test counts executions across worker processes; ``crash_at`` > 0 raises at that bar; ``die``
    ends the worker process at the first bar."""

    KEY = "traced_sma"
    PARAMS = (  # type: ignore[assignment]
        *SmaCrossover.PARAMS,
        Param("trace", str, ""),
        Param("crash_at", int, 0, minimum=0),
        Param("die", bool, False),
    )

    def on_start(self) -> None:
        super().on_start()
        self._bars = 0
        if self.params["trace"]:
            with open(self.params["trace"], "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {self.params['fast']} {self.params['slow']}\n")

    def on_bar(self, bar: Bar) -> None:
        self._bars += 1
        if self.params["die"]:
            os._exit(3)
        if self.params["crash_at"] and self._bars >= self.params["crash_at"]:
            raise RuntimeError(f"boom at bar {self._bars}")
        super().on_bar(bar)


class Objective(Strategy):
    """A known objective: buys ``100 - (x - 7)**2 - (y - 3)**2`` shares on the first bar of a rising
    series, so total return peaks at x = 7, y = 3 alone."""

    KEY = "objective"
    PARAMS = (Param("x", int, 0), Param("y", int, 0))

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["x"] == 0 and params["y"] == 0:
            raise ParamError("x and y cannot both be 0")

    def on_start(self) -> None:
        self._done = False

    def on_bar(self, bar: Bar) -> None:
        if not self._done:
            self._done = True
            qty = 100 - (self.params["x"] - 7) ** 2 - (self.params["y"] - 3) ** 2
            if qty > 0:
                from decimal import Decimal

                self.ctx.target_position(bar.symbol, Decimal(qty))


def rising(symbol: str, count: int) -> list[Bar]:
    """One-minute bars whose price only goes up (a cent a bar): more shares, more return."""
    from decimal import Decimal

    out = []
    for i in range(count):
        price = Decimal(100) + Decimal(i) / 100
        out.append(
            Bar(symbol, DEFAULT_START + timedelta(minutes=i), price, price, price, price, Decimal(100))
        )
    return out


def registry() -> dict[str, type[Strategy]]:
    return {**builtin_registry(), TracedSma.KEY: TracedSma, Objective.KEY: Objective}


def history(count: int, symbols: tuple[str, ...] = ("AAPL",)) -> dict[str, list[Bar]]:
    return {s: synthetic_bars(s, count, seed=7 + i) for i, s in enumerate(symbols)}


def loader(data: dict[str, list[Bar]]) -> Any:
    def load(symbol: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        return [b for b in data.get(symbol, []) if start <= b.ts < end]

    return load


def spec_data(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "strategy": "sma_crossover",
        "symbols": ["AAPL"],
        "start": DEFAULT_START.date().isoformat(),
        "end": (DEFAULT_START + timedelta(days=120)).date().isoformat(),
        "timeframe": "1Min",
        "search": "grid",
        "space": {"fast": [2, 3, 5], "slow": [10, 20]},
    }
    base.update(over)
    return base


class Recorder:
    """A SweepListener that keeps everything it is told (calls come from the coordinator thread)."""

    def __init__(self, on_point: Any = None) -> None:
        self.points: list[PointResult] = []
        self.progress: list[SweepProgress] = []
        self.finished: list[SweepOutcome] = []
        self.progress_times: list[float] = []
        self._hook = on_point
        self.lock = threading.Lock()

    def on_point(self, result: PointResult) -> None:
        with self.lock:
            self.points.append(result)
        if self._hook is not None:
            self._hook(result)

    def on_progress(self, progress: SweepProgress) -> None:
        self.progress.append(progress)
        self.progress_times.append(time.monotonic())

    def on_finished(self, outcome: SweepOutcome) -> None:
        self.finished.append(outcome)


def trace_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
