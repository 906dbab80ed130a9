"""Pre-trade risk check latency: median of ``RiskGate.check`` over a realistic context (no I/O)."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import Account, Asset, OrderRequest, Quote
from services.risk.gate import RiskContext, RiskGate
from services.risk.limits import RiskLimits

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class _Prices:
    def __init__(self) -> None:
        self.q = Quote("AAPL", Decimal("189.95"), Decimal("190.05"), Decimal(300), Decimal(200), NOW)

    def quote(self, symbol: str) -> Quote | None:
        return self.q

    def last_price(self, symbol: str) -> Decimal | None:
        return Decimal("190.00")

    def is_stale(self, symbol: str) -> bool:
        return False

    def prev_close(self, symbol: str) -> Decimal | None:
        return Decimal("188.10")


class _Hours:
    def is_open(self, ts: datetime) -> bool:
        return True

    def is_extended(self, ts: datetime) -> bool:
        return False


def run() -> dict[str, Any]:
    gate = RiskGate(RiskLimits(max_orders_per_minute=10**9, duplicate_window_s=Decimal(0)))
    account = Account(
        "a", "1", "ACTIVE", "USD", Decimal(100000), Decimal(101000), Decimal(100500), Decimal(200000)
    )
    asset = Asset("AAPL", "us_equity", "NASDAQ", True, True, True)
    positions = {f"S{i}": Decimal(i * 10) for i in range(50)} | {"AAPL": Decimal(25)}
    prices = _Prices()
    hours = _Hours()
    samples: list[float] = []
    for i in range(20_000):
        req = OrderRequest(
            "AAPL",
            OrderSide.BUY if i % 2 else OrderSide.SELL,
            OrderType.LIMIT,
            TimeInForce.DAY,
            qty=Decimal(10 + i % 7),
            limit_price=Decimal("190.00"),
        )
        ctx = RiskContext(
            now=NOW + timedelta(milliseconds=i),
            trading_state=TradingState.ACTIVE,
            account=account,
            asset=asset,
            prices=prices,
            positions=positions,
            gross_exposure=Decimal(80000),
            net_exposure=Decimal(40000),
            open_orders=5,
            hours=hours,
            peak_equity=Decimal(102000),
        )
        t0 = time.perf_counter_ns()
        report = gate.check(req, ctx)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        if not report.passed:
            raise RuntimeError(f"benchmark order unexpectedly refused: {report.explain()}")
    warm = samples[2000:]
    return {
        "risk_check_median_us": {"value": round(statistics.median(warm), 2), "unit": "µs", "goal": "≤ 50"},
        "risk_check_p99_us": {"value": round(sorted(warm)[int(len(warm) * 0.99)], 2), "unit": "µs"},
    }
