"""Fakes for the venue's seams (MarketView, KeyStore, a settable clock) and tests of the fakes.

Other venue/matching/ledger/store/trading_api tests import these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from services.domain.calendar import MarketCalendar
from services.exchange.contracts import NBBO, Instrument
from services.exchange.venue import TradingVenue
from tests.support.clock import ManualClock

T0 = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 New York: regular hours


def instruments() -> dict[str, Instrument]:
    return {
        "AAPL": Instrument("AAPL", "us_equity", "NASDAQ", "Apple Inc.", Decimal("100"), Decimal("0.01")),
        "MSFT": Instrument("MSFT", "us_equity", "NASDAQ", "Microsoft", Decimal("300"), Decimal("0.01")),
        "GME": Instrument(
            "GME",
            "us_equity",
            "NYSE",
            "GameStop",
            Decimal("20"),
            Decimal("0.01"),
            shortable=False,
            easy_to_borrow=False,
            fractionable=False,
        ),
        "HALT": Instrument(
            "HALT", "us_equity", "NYSE", "Not tradable", Decimal("5"), Decimal("0.01"), tradable=False
        ),
        "BTC/USD": Instrument(
            "BTC/USD",
            "crypto",
            "CRYPTO",
            "Bitcoin",
            Decimal("50000"),
            Decimal("0.01"),
            shortable=False,
            easy_to_borrow=False,
            marginable=False,
        ),
        "NOQ": Instrument("NOQ", "us_equity", "NYSE", "No quote yet", Decimal("10"), Decimal("0.01")),
    }


@dataclass
class FakeMarket:
    """A MarketView whose quotes the test sets by hand."""

    clock: ManualClock
    quotes: dict[str, NBBO] = field(default_factory=dict)
    halted: set[str] = field(default_factory=set)

    def set(
        self, symbol: str, bid: str, ask: str, *, last: str | None = None, prev_close: str | None = None
    ) -> None:
        b, a = Decimal(bid), Decimal(ask)
        lst = Decimal(last) if last is not None else (b + a) / 2
        pc = Decimal(prev_close) if prev_close is not None else lst
        self.quotes[symbol] = NBBO(symbol, b, a, Decimal(100), Decimal(100), lst, self.clock(), pc)

    def nbbo(self, symbol: str) -> NBBO | None:
        return self.quotes.get(symbol)

    def is_halted(self, symbol: str) -> bool:
        return symbol in self.halted


class FakeKeys:
    def __init__(self, key: str = "key", secret: str = "secret") -> None:
        self.pair = (key, secret)

    def check(self, key_id: str | None, secret: str | None) -> bool:
        return (key_id, secret) == self.pair


@dataclass
class Rig:
    venue: TradingVenue
    market: FakeMarket
    clock: ManualClock

    def quote(self, symbol: str, bid: str, ask: str, **kw: str) -> None:
        self.market.set(symbol, bid, ask, **kw)
        self.venue.on_quote(symbol)

    def trade(self, symbol: str, price: str) -> None:
        """A print on the consolidated tape at ``price`` (the quote stays as it is)."""
        q = self.market.quotes[symbol]
        self.market.set(symbol, str(q.bid), str(q.ask), last=price, prev_close=str(q.prev_close))
        self.venue.on_trade(symbol, Decimal(price))


def make_rig(
    data_dir: Path,
    *,
    seed: int = 1,
    always_open: bool = False,
    clock: ManualClock | None = None,
    market: FakeMarket | None = None,
    cash: str = "100000",
) -> Rig:
    clock = clock or ManualClock(T0)
    market = market or FakeMarket(clock)
    if not market.quotes:
        market.set("AAPL", "99.99", "100.01")
        market.set("MSFT", "299.90", "300.10")
        market.set("GME", "19.99", "20.01")
        market.set("HALT", "4.99", "5.01")
        market.set("BTC/USD", "49990", "50010")
    venue = TradingVenue(
        data_dir=data_dir,
        universe=instruments(),
        market=market,
        calendar=MarketCalendar(always_open=always_open),
        keys=FakeKeys(),
        seed=seed,
        starting_cash=Decimal(cash),
        clock=clock,
    )
    return Rig(venue, market, clock)


@contextmanager
def rig(tmp_path: Path, **kw: object) -> Iterator[Rig]:
    r = make_rig(tmp_path, **kw)  # type: ignore[arg-type]
    try:
        yield r
    finally:
        r.venue.store.close()


# ---- tests of the fakes ---------------------------------------------------------------------------
def test_fake_market_reports_what_was_set_and_halts() -> None:
    clock = ManualClock(T0)
    m = FakeMarket(clock)
    assert m.nbbo("AAPL") is None
    m.set("AAPL", "1.00", "1.02", prev_close="0.9")
    q = m.nbbo("AAPL")
    assert (
        q is not None and q.bid == Decimal("1.00") and q.ask == Decimal("1.02") and q.last == Decimal("1.01")
    )
    assert q.prev_close == Decimal("0.9")
    assert not m.is_halted("AAPL")
    m.halted.add("AAPL")
    assert m.is_halted("AAPL")


def test_fake_keys_and_clock() -> None:
    keys = FakeKeys("k", "s")
    assert keys.check("k", "s") and not keys.check("k", "x") and not keys.check(None, None)
    c = ManualClock(T0)
    c.advance(minutes=5)
    assert c() == T0 + timedelta(minutes=5)
