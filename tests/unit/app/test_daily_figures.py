"""Previous closes and day volume reach the quote book, so the watchlist can show change %."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.qt.panels.feeds import seed_daily_figures
from services.broker.base import BrokerUnavailable
from services.domain.models import Bar
from services.marketdata.book import QuoteBook

T0 = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


@dataclass
class _Snap:
    previous_daily_bar: Bar | None
    daily_bar: Bar | None

    @property
    def previous_close(self) -> Decimal | None:
        return self.previous_daily_bar.close if self.previous_daily_bar else None


def _bar(symbol: str, close: str, volume: str) -> Bar:
    c = Decimal(close)
    return Bar(symbol, T0, c, c, c, c, Decimal(volume))


class _History:
    async def snapshot(self, symbol: str) -> _Snap:
        if symbol == "DOWN":
            raise BrokerUnavailable("timed out")
        if symbol == "NEW":
            return _Snap(None, _bar(symbol, "10", "5"))
        return _Snap(_bar(symbol, "100", "1000"), _bar(symbol, "101", "2500"))


@pytest.mark.expected_log(r"^heron\.app\.panels: no snapshot for DOWN \(change % stays")
def test_previous_close_and_volume_are_seeded_and_failures_leave_change_unknown() -> None:
    book = QuoteBook()
    seeded = asyncio.run(seed_daily_figures(_History(), book, ["AAPL", "DOWN", "NEW"]))
    assert seeded == 1
    assert book.prev_close("AAPL") == Decimal("100")
    assert book.prev_close("DOWN") is None and book.prev_close("NEW") is None
    assert book.entry("AAPL").volume == 2500


def test_no_history_service_seeds_nothing() -> None:
    assert asyncio.run(seed_daily_figures(None, QuoteBook(), ["AAPL"])) == 0
