"""The watchlist's figures (``QuoteBook.entry``) are read straight from the book's tuples: they
agree with the domain readers (``quote``, ``last_price``) in every state a symbol can be in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.marketdata.book import QuoteBook

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NS = int(NOW.timestamp() * 1e9)


def _book(quote: tuple[float, float] | None, trade: float | None, prev: str | None) -> QuoteBook:
    book = QuoteBook(now=lambda: NOW)
    if quote is not None:
        book.apply_quote("X", quote[0], 100.0, quote[1], 200.0, NS, NOW.timestamp())
    if trade is not None:
        book.apply_trade("X", trade, 0.0283, NS, NOW.timestamp())
    if prev is not None:
        book.set_prev_close("X", Decimal(prev))
    return book


@pytest.mark.parametrize(
    ("quote", "trade", "prev"),
    [
        ((187.1, 187.14), None, "185"),  # no trade yet: last is the midpoint
        ((187.1, 187.14), 187.12, "185"),
        (None, 187.12, "185"),
        (None, None, None),
        ((0.0, 187.14), None, None),  # a one-sided quote has no midpoint to show as last
        ((64089.0, 64099.0), 64103.25, "0"),  # no previous close to measure a change from
        ((0.000012, 0.000013), None, "0.00001"),
    ],
)
def test_entry_agrees_with_the_quote_and_last_price(
    quote: tuple[float, float] | None, trade: float | None, prev: str | None
) -> None:
    book = _book(quote, trade, prev)
    e = book.entry("X")
    q = book.quote("X")
    assert (e.bid, e.ask) == ((q.bid, q.ask) if q else (None, None))
    assert (e.spread, e.mid) == ((q.spread, q.mid) if q else (None, None))
    assert e.last == book.last_price("X")
    p = book.prev_close("X")
    change = e.last - p if e.last is not None and p is not None else None
    assert e.change == change
    assert e.change_pct == (change / p * 100 if change is not None and p else None)


def test_entry_shows_wire_prices_as_written() -> None:
    e = _book((187.1, 187.15), 187.13, "185.5").entry("X")
    assert (str(e.bid), str(e.ask), str(e.spread), str(e.last)) == ("187.1", "187.15", "0.05", "187.13")
    assert e.change == Decimal("1.63") and e.volume == Decimal("0.0283")
