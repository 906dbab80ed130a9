"""The ``strategies`` section of the state report (docs/state-report.md)."""

from __future__ import annotations

from typing import Any

from services.domain.money import decimal_str
from services.strategies.runner import StrategyRunner


def strategies_report(runner: StrategyRunner) -> list[dict[str, Any]]:
    """One entry per strategy: name, state, params, orders, pnl (decimal string), last_signal, error."""
    return [
        {
            "name": info.name,
            "state": info.state.value,
            "params": dict(info.params),
            "orders": info.orders,
            "pnl": decimal_str(info.pnl) or "0",
            "last_signal": info.last_signal.value if info.last_signal else None,
            "error": info.error,
        }
        for info in runner.infos()
    ]
