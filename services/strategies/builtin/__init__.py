"""Built-in strategies and the name → class registry used by the CLI and the strategies panel."""

from __future__ import annotations

from services.strategies.api import Strategy
from services.strategies.builtin.liquidity_sweep import LiquiditySweepStrategy
from services.strategies.builtin.reversion import (
    BollingerReversion,
    RsiReversion,
    VwapReversion,
)
from services.strategies.builtin.sma_crossover import SmaCrossover


def builtin_registry() -> dict[str, type[Strategy]]:
    """A fresh ``{key: class}`` mapping of the built-in strategies (no module-level registry)."""
    classes: tuple[type[Strategy], ...] = (
        SmaCrossover,
        RsiReversion,
        VwapReversion,
        BollingerReversion,
        LiquiditySweepStrategy,
    )
    return {cls.KEY: cls for cls in classes}


__all__ = [
    "BollingerReversion",
    "LiquiditySweepStrategy",
    "RsiReversion",
    "SmaCrossover",
    "VwapReversion",
    "builtin_registry",
]
