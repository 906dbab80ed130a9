"""``QuoteBook``: NBBO, last trade, volume and day change per symbol.

The hot path (:meth:`QuoteBook.apply_quote` / :meth:`apply_trade`) takes plain floats from the
decoder and may run on the market-data thread; readers (risk gate, UI) on the loop thread get
immutable domain objects built on demand. Each update replaces one tuple per symbol, so a reader
never sees a bid from one quote and an ask from another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.domain.models import Quote, Trade
from services.marketdata.staleness import StalenessGuard, StalenessVerdict


def utcnow() -> datetime:
    return datetime.now(UTC)


#: Trade sizes on the wire have at most this many decimals (crypto quantities; stocks are whole).
VOLUME_DECIMALS = 9


def fdec(x: float) -> Decimal:
    """A wire float as the Decimal a person would write (``187.25``, not its binary expansion)."""
    return Decimal(repr(x))


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class BookEntry:
    """What a watchlist row shows for one symbol."""

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    spread: Decimal | None
    mid: Decimal | None
    last: Decimal | None
    volume: Decimal
    prev_close: Decimal | None
    change: Decimal | None
    change_pct: Decimal | None
    updated: datetime | None


class QuoteBook:
    """NBBO per symbol. ``now`` is the injected wall clock used for staleness."""

    def __init__(self, guard: StalenessGuard | None = None, now: Callable[[], datetime] = utcnow) -> None:
        self.guard = guard or StalenessGuard()
        self._now = now
        # symbol -> (bid, bid_size, ask, ask_size, ts_ns)
        self._quotes: dict[str, tuple[float, float, float, float, int]] = {}
        # symbol -> (price, size, ts_ns, identity); identity is (exchange, trade id) when known
        self._trades: dict[str, tuple[float, float, int, Any]] = {}
        self._volume: dict[str, float] = {}
        self._prev_close: dict[str, Decimal] = {}

    # -- writers (market-data thread or loop thread) ---------------------------------------------

    def apply_quote(
        self,
        symbol: str,
        bid: float,
        bid_size: float,
        ask: float,
        ask_size: float,
        ts_ns: int,
        received: float,
    ) -> None:
        self._quotes[symbol] = (bid, bid_size, ask, ask_size, ts_ns)
        self.guard._last[symbol] = received

    def apply_trade(
        self, symbol: str, price: float, size: float, ts_ns: int, received: float, ident: Any = None
    ) -> None:
        self._trades[symbol] = (price, size, ts_ns, ident)
        self._volume[symbol] = self._volume.get(symbol, 0.0) + size
        self.guard._last[symbol] = received

    def cancel_trade(
        self, symbol: str, ident: Any, size: float, previous: tuple[Any, float, float, int] | None
    ) -> None:
        """A trade was canceled (Alpaca ``T: "x"``): its size leaves the day's volume; if it was the
        last trade, the last trade becomes ``previous`` (identity, price, size, ts_ns), or none."""
        self._volume[symbol] = max(0.0, self._volume.get(symbol, 0.0) - size)
        last = self._trades.get(symbol)
        if last is not None and ident is not None and last[3] == ident:
            if previous is None:
                del self._trades[symbol]
            else:
                self._trades[symbol] = (previous[1], previous[2], previous[3], previous[0])

    def correct_trade(
        self, symbol: str, ident: Any, old_size: float, new_ident: Any, price: float, size: float
    ) -> None:
        """A trade was corrected (Alpaca ``T: "c"``): volume takes the corrected size; the last
        trade takes the corrected price and size if it was the corrected one."""
        self._volume[symbol] = max(0.0, self._volume.get(symbol, 0.0) - old_size + size)
        last = self._trades.get(symbol)
        if last is not None and ident is not None and last[3] == ident:
            self._trades[symbol] = (price, size, last[2], new_ident)

    def on_quote(self, q: Quote, received: datetime | None = None) -> None:
        """Domain-object entry point (REST snapshots, replays, tests)."""
        r = (received or self._now()).timestamp()
        self.apply_quote(
            q.symbol,
            float(q.bid),
            float(q.bid_size),
            float(q.ask),
            float(q.ask_size),
            int(q.ts.timestamp() * 1e9),
            r,
        )

    def on_trade(self, t: Trade, received: datetime | None = None) -> None:
        r = (received or self._now()).timestamp()
        self.apply_trade(t.symbol, float(t.price), float(t.size), int(t.ts.timestamp() * 1e9), r)

    def set_prev_close(self, symbol: str, price: Decimal) -> None:
        self._prev_close[symbol] = price

    def set_day_volume(self, symbol: str, volume: Decimal) -> None:
        """Seed the day's volume from a snapshot so stream trades add to the right base."""
        self._volume[symbol] = float(volume)

    # -- readers (loop thread) -------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return sorted(set(self._quotes) | set(self._trades))

    def quote(self, symbol: str) -> Quote | None:
        q = self._quotes.get(symbol)
        if q is None:
            return None
        bid, bs, ask, asz, ts = q
        return Quote(symbol, fdec(bid), fdec(ask), fdec(bs), fdec(asz), _ts(ts))

    def last_trade(self, symbol: str) -> Trade | None:
        t = self._trades.get(symbol)
        if t is None:
            return None
        return Trade(symbol, fdec(t[0]), fdec(t[1]), _ts(t[2]))

    def last_price(self, symbol: str) -> Decimal | None:
        """Last trade price, else the quote midpoint, else None."""
        t = self._trades.get(symbol)
        if t is not None:
            return fdec(t[0])
        q = self._quotes.get(symbol)
        if q is not None and q[0] > 0 and q[2] > 0:
            return (fdec(q[0]) + fdec(q[2])) / 2
        return None

    def prev_close(self, symbol: str) -> Decimal | None:
        return self._prev_close.get(symbol)

    def is_stale(self, symbol: str) -> bool:
        return self.guard.is_stale(symbol, self._now())

    def staleness(self, symbol: str) -> StalenessVerdict:
        return self.guard.verdict(symbol, self._now())

    def entry(self, symbol: str) -> BookEntry:
        """The watchlist row's figures, read straight from the book's tuples (the window asks for
        every watched symbol on every frame: no Quote or Trade object is built on the way)."""
        q = self._quotes.get(symbol)
        bid = ask = spread = mid = None
        if q is not None:
            bid, ask = fdec(q[0]), fdec(q[2])
            spread, mid = ask - bid, (bid + ask) / 2
        t = self._trades.get(symbol)
        if t is not None:
            last: Decimal | None = fdec(t[0])
        elif q is not None and q[0] > 0 and q[2] > 0:
            last = mid  # no trade yet: the quote's midpoint, as last_price()
        else:
            last = None
        prev = self._prev_close.get(symbol)
        change = last - prev if last is not None and prev is not None else None
        pct = (change / prev * 100) if change is not None and prev else None
        updated = self.guard.last_update(symbol)
        return BookEntry(
            symbol,
            bid,
            ask,
            spread,
            mid,
            last,
            # Float sums of fractional (crypto) sizes drift in the last bits: 1325.134855 arrives
            # as 1325.1348549999996. Sizes carry at most 9 decimals, so round there.
            fdec(round(self._volume.get(symbol, 0.0), VOLUME_DECIMALS)),
            prev,
            change,
            pct,
            datetime.fromtimestamp(updated, UTC) if updated is not None else None,
        )
