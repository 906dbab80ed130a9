"""The account panel's equity curve: daily for a month, or today by the minute for a new account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.qt.panels.feeds import equity_history
from services.broker.base import PortfolioHistory

T0 = datetime(2026, 11, 20, tzinfo=UTC)


class _HistoryBroker:
    """Answers get_portfolio_history with ``days`` daily points and 30 one-minute points."""

    def __init__(self, days: int) -> None:
        self.days = days
        self.asked: list[tuple[str, str]] = []

    async def get_portfolio_history(self, period: str = "1M", timeframe: str = "1D") -> PortfolioHistory:
        self.asked.append((period, timeframe))
        n, step = (self.days, timedelta(days=1)) if timeframe == "1D" else (30, timedelta(minutes=1))
        stamps = tuple(T0 + i * step for i in range(n))
        equity = tuple(Decimal(100_000 + i) for i in range(n))
        return PortfolioHistory(stamps, equity, (), (), None, timeframe)


def test_a_month_of_days_when_there_are_two_or_more() -> None:
    broker = _HistoryBroker(days=5)
    h = asyncio.run(equity_history(broker))
    assert h.timeframe == "1D" and len(h.equity) == 5 and broker.asked == [("1M", "1D")]


def test_a_new_account_gets_today_by_the_minute() -> None:
    broker = _HistoryBroker(days=1)
    h = asyncio.run(equity_history(broker))
    assert h.timeframe == "1Min" and len(h.equity) == 30
    assert broker.asked == [("1M", "1D"), ("1D", "1Min")]
