from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.domain.models import Quote, Trade
from services.marketdata.book import QuoteBook
from services.marketdata.staleness import StalenessGuard

T0 = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_guard_verdicts_with_reasons() -> None:
    g = StalenessGuard(90)
    v = g.verdict("AAPL", T0)
    assert v.stale and v.age_seconds is None and "no market data" in v.reason
    g.touch("AAPL", T0)
    assert not g.is_stale("AAPL", T0 + timedelta(seconds=90))
    v = g.verdict("AAPL", T0 + timedelta(seconds=91))
    assert v.stale and "91 s old" in v.reason and "limit 90 s" in v.reason


def test_book_nbbo_last_and_day_change() -> None:
    clock = WallClock()
    book = QuoteBook(StalenessGuard(90), now=clock)
    assert book.quote("AAPL") is None and book.last_price("AAPL") is None and book.is_stale("AAPL")
    book.on_quote(Quote("AAPL", Decimal("187.1"), Decimal("187.3"), Decimal(3), Decimal(5), T0))
    q = book.quote("AAPL")
    assert q is not None and q.bid == Decimal("187.1") and q.ask == Decimal("187.3")
    assert q.spread == Decimal("0.2") and q.ts == T0
    assert book.last_price("AAPL") == Decimal("187.2")  # mid until a trade prints
    book.on_trade(Trade("AAPL", Decimal("187.25"), Decimal(100), T0))
    book.on_trade(Trade("AAPL", Decimal("187.3"), Decimal(50), T0))
    assert book.last_price("AAPL") == Decimal("187.3")
    book.set_prev_close("AAPL", Decimal("180"))
    e = book.entry("AAPL")
    assert e.volume == Decimal("150.0") and e.change == Decimal("7.3") and e.prev_close == Decimal(180)
    assert e.change_pct is not None and abs(e.change_pct - Decimal("4.0556")) < Decimal("0.001")
    assert not book.is_stale("AAPL")
    for size in ("0.1", "0.2"):  # fractional sizes, whose float sum is 0.30000000000000004
        book.on_trade(Trade("BTC/USD", Decimal("65000"), Decimal(size), T0))
    assert book.entry("BTC/USD").volume == Decimal("0.3")
    clock.now = T0 + timedelta(seconds=120)
    assert book.is_stale("AAPL")
    assert "old" in book.staleness("AAPL").reason


def test_book_fast_path_from_floats() -> None:
    book = QuoteBook(now=lambda: T0)
    ns = int(T0.timestamp() * 1e9)
    book.apply_quote("BTC/USD", 64000.5, 0.25, 64001.0, 1.5, ns, T0.timestamp())
    q = book.quote("BTC/USD")
    assert q is not None and q.bid == Decimal("64000.5") and q.ask_size == Decimal("1.5")
    assert book.symbols() == ["BTC/USD"]
