"""Built-in strategies and the name → class registry used by the CLI and the strategies panel."""

from __future__ import annotations

from services.strategies.api import ParamError, Strategy, parse_strategy_spec
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


def strategy_from_spec(spec: str, registry: dict[str, type[Strategy]] | None = None) -> Strategy:
    """Build a strategy from the CLI form ``NAME[:key=value,...]``; ParamError names what is wrong."""
    name, values = parse_strategy_spec(spec)
    known = registry if registry is not None else builtin_registry()
    cls = known.get(name)
    if cls is None:
        raise ParamError(f"unknown strategy {name!r}; available: {', '.join(sorted(known))}")
    return cls(values)


__all__ = [
    "BollingerReversion",
    "LiquiditySweepStrategy",
    "RsiReversion",
    "SmaCrossover",
    "VwapReversion",
    "builtin_registry",
    "strategy_from_spec",
]
