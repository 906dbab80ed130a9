"""Historical bars, latest trade/quote, previous close and snapshots, with a TTL cache and a candle store.

- alpaca-py's Stock/CryptoHistoricalDataClient run on worker threads with explicit timeouts
  (WORKAROUND(alpacahq/alpaca-py#415)) and their blocking retry off; transient failures are retried
  with non-blocking backoff. Pagination happens inside the SDK.
- :meth:`HistoryService.bars` reads the candle store first, fetches only the missing range from
  the broker in chunks (so progress and cancellation are real), and writes what it fetched back.
- Every answer is cached for ``ttl`` seconds (30 s default; the clock is injectable).
- Stock bars come from ``history_feed`` (``sip`` by default: the consolidated tape; IEX alone
  carries a few percent of the volume). Without a SIP subscription Alpaca serves SIP data only
  when it is older than 15 minutes (Market Data FAQ), so when the live feed is not SIP the last
  15 minutes come from the live feed and are not stored: they are fetched again, from SIP, once
  they are old enough. Latest trade, quote and snapshots use the live feed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from alpaca.data.enums import DataFeed
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestQuoteRequest,
    CryptoLatestTradeRequest,
    CryptoSnapshotRequest,
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from services.broker.backoff import Backoff
from services.broker.base import BrokerError, BrokerNotFound
from services.broker.convert import utc
from services.broker.errors import classify
from services.broker.suspension import Suspension
from services.domain.enums import Timeframe
from services.domain.models import Bar, Quote, Trade
from services.domain.symbols import is_crypto
from services.marketdata.book import fdec

log = logging.getLogger(__name__)
T = TypeVar("T")

_SDK_TIMEFRAMES = {
    Timeframe.MIN_1: TimeFrame(1, TimeFrameUnit.Minute),
    Timeframe.MIN_5: TimeFrame(5, TimeFrameUnit.Minute),
    Timeframe.MIN_15: TimeFrame(15, TimeFrameUnit.Minute),
    Timeframe.HOUR_1: TimeFrame(1, TimeFrameUnit.Hour),
    Timeframe.DAY_1: TimeFrame(1, TimeFrameUnit.Day),
}
# How much history one request covers: small enough for visible progress, large enough to be cheap.
CHUNK = {
    Timeframe.MIN_1: timedelta(days=2),
    Timeframe.MIN_5: timedelta(days=10),
    Timeframe.MIN_15: timedelta(days=30),
    Timeframe.HOUR_1: timedelta(days=120),
    Timeframe.DAY_1: timedelta(days=3650),
}


#: Feeds a person can choose (Alpaca market-data OpenAPI ``feed``; StockDataStream takes iex or sip).
FEEDS = ("iex", "sip")
#: Without a SIP subscription, SIP data is served only when older than this (Market Data FAQ).
FREE_SIP_DELAY = timedelta(minutes=15)


def check_feed(feed: str, what: str) -> DataFeed:
    if feed not in FEEDS:
        raise ValueError(f"{what} must be one of {list(FEEDS)}, got {feed!r}")
    return DataFeed(feed)


class CandleSource(Protocol):
    """What history needs from services.storage.candles.CandleStore (synchronous; run off-thread)."""

    def upsert_bars(self, symbol: str, timeframe: Timeframe | str, bars: Iterable[Bar]) -> int: ...

    def range_bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Bar]: ...

    def coverage(self, symbol: str, timeframe: Timeframe | str) -> tuple[datetime, datetime] | None: ...


class CancelToken:
    """Cooperative cancellation for long downloads (asyncio cancellation works too)."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class DownloadCancelled(Exception):
    """A history download was cancelled through its token; what was fetched so far is stored."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    symbol: str
    latest_trade: Trade | None
    latest_quote: Quote | None
    minute_bar: Bar | None
    daily_bar: Bar | None
    previous_daily_bar: Bar | None

    @property
    def previous_close(self) -> Decimal | None:
        return self.previous_daily_bar.close if self.previous_daily_bar else None


class TTLCache:
    """Values expire ``ttl`` seconds after they were stored. ``clock`` is monotonic seconds."""

    def __init__(
        self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 2048
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self.max_entries = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any | None:
        item = self._data.get(key)
        if item is None or item[0] <= self._clock():
            if item is not None:
                del self._data[key]
            self.misses += 1
            return None
        self.hits += 1
        return item[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._data) >= self.max_entries:
            now = self._clock()
            for k in [k for k, (exp, _) in self._data.items() if exp <= now] or list(self._data)[:1]:
                del self._data[k]
        self._data[key] = (self._clock() + self.ttl, value)

    def clear(self) -> None:
        self._data.clear()


def _bar(symbol: str, b: Any) -> Bar:
    return Bar(
        symbol,
        utc(b.timestamp),
        fdec(b.open),
        fdec(b.high),
        fdec(b.low),
        fdec(b.close),
        fdec(float(b.volume)),
        int(b.trade_count) if b.trade_count is not None else None,
        fdec(b.vwap) if b.vwap is not None else None,
    )


def _trade(symbol: str, t: Any) -> Trade:
    return Trade(
        symbol, fdec(t.price), fdec(float(t.size)), utc(t.timestamp), str(getattr(t, "id", "") or "")
    )


def _quote(symbol: str, q: Any) -> Quote:
    return Quote(
        symbol,
        fdec(q.bid_price),
        fdec(q.ask_price),
        fdec(float(q.bid_size)),
        fdec(float(q.ask_size)),
        utc(q.timestamp),
    )


def _with_timeout(client: Any, timeout: tuple[float, float], suspension: Suspension) -> Any:
    client._retry = 0
    inner = client._session.request

    def request(method: str, url: str, **kw: Any) -> Any:
        suspension.check(f"{method} {urllib.parse.urlsplit(url).path}")  # nothing sent while suspended
        kw.setdefault("timeout", timeout)
        return inner(method, url, **kw)

    client._session.request = request
    return client


class HistoryService:
    """Bars and quotes from the broker's market-data REST API. Coroutines run on the loop thread."""

    def __init__(
        self,
        key_id: str | None,
        secret: str | None,
        *,
        base_url: str | None = None,
        store: CandleSource | None = None,
        feed: str = "iex",
        history_feed: str = "sip",
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: tuple[float, float] = (3.0, 15.0),
        backoff: Backoff | None = None,
        stock_client: Any = None,
        crypto_client: Any = None,
    ) -> None:
        url = base_url.rstrip("/") if base_url else None
        self._suspension = Suspension()
        self.stock = stock_client or _with_timeout(
            StockHistoricalDataClient(key_id, secret, url_override=url), timeout, self._suspension
        )
        self.crypto = crypto_client or _with_timeout(
            CryptoHistoricalDataClient(key_id, secret, url_override=url), timeout, self._suspension
        )
        self.feed = check_feed(feed, "the live feed")  # latest trade/quote, snapshots, recent bars
        self.history_feed = check_feed(history_feed, "the history feed")
        self.store = store
        self.cache = TTLCache(ttl, clock)
        self._now = now
        self.backoff = backoff or Backoff(base=0.5, cap=8.0, max_retries=4)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="heron-history")
        self.requests = 0

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def suspend(self, reason: str) -> None:
        """Any thread: send nothing (no request, no key) until :meth:`resume`; calls fail at once."""
        self._suspension.suspend(reason)

    def resume(self) -> None:
        self._suspension.resume()

    async def _run(self, what: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            self.requests += 1
            try:
                return await loop.run_in_executor(self._executor, fn)
            except Exception as exc:
                failure = classify(exc, what)
                if not failure.retryable or attempt >= self.backoff.max_retries:
                    raise failure.error from exc
                await self.backoff.wait(attempt, failure.retry_after)
                attempt += 1

    async def _off(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- bars ------------------------------------------------------------------------------------

    async def fetch_bars(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[Bar]:
        """Straight from the broker (the SDK follows next_page_token), no store, no cache."""
        return [b for part, _ in await self._fetch_parts(symbol, timeframe, start, end) for b in part]

    def _feed_parts(
        self, tf: Timeframe, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime, DataFeed]]:
        """Stock ranges per feed: the history feed, except recent SIP on a plan without SIP live."""
        if self.history_feed is not DataFeed.SIP or self.feed is DataFeed.SIP:
            return [(start, end, self.history_feed)]
        # A bar of ts t holds trades up to t + step: SIP bars end on the last boundary 15 min ago.
        step = tf.seconds
        cutoff = datetime.fromtimestamp((int((self._now() - FREE_SIP_DELAY).timestamp()) // step) * step, UTC)
        if end <= cutoff:
            return [(start, end, DataFeed.SIP)]
        if start >= cutoff:
            return [(start, end, self.feed)]
        return [(start, cutoff, DataFeed.SIP), (cutoff, end, self.feed)]

    async def _fetch_parts(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[tuple[list[Bar], bool]]:
        """(bars, storable) per request; bars from another feed than the history feed are not stored."""
        tf = Timeframe(timeframe)
        sdk_tf = _SDK_TIMEFRAMES[tf]
        out: list[tuple[list[Bar], bool]] = []
        if is_crypto(symbol):
            creq = CryptoBarsRequest(symbol_or_symbols=symbol, timeframe=sdk_tf, start=start, end=end)
            barset: Any = await self._run(f"crypto bars {symbol}", lambda: self.crypto.get_crypto_bars(creq))
            out.append((_bars_in(symbol, barset, start, end), True))
            return out
        for lo, hi, feed in self._feed_parts(tf, start, end):
            sreq = StockBarsRequest(symbol_or_symbols=symbol, timeframe=sdk_tf, start=lo, end=hi, feed=feed)
            barset = await self._run(
                f"stock bars {symbol} ({feed.value})", functools.partial(self.stock.get_stock_bars, sreq)
            )
            out.append((_bars_in(symbol, barset, lo, hi), feed is self.history_feed))
        return out

    async def bars(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        progress: Callable[[float], None] | None = None,
        cancel: CancelToken | None = None,
        use_cache: bool = True,
    ) -> list[Bar]:
        """Bars with ``start <= ts < end``: store first, broker for what is missing, written back."""
        tf = Timeframe(timeframe)
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start:
            return []
        key = ("bars", symbol, tf, start, end)
        if use_cache and (hit := self.cache.get(key)) is not None:
            if progress:
                progress(1.0)
            return list(hit)
        missing = await self._missing(symbol, tf, start, end)
        chunks = [c for lo, hi in missing for c in _split(lo, hi, CHUNK[tf])]
        fetched: list[Bar] = []
        step = timedelta(seconds=tf.seconds)
        now = self._now()
        for i, (lo, hi) in enumerate(chunks):
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled(
                    f"download of {symbol} {tf} cancelled after {i} of {len(chunks)} parts"
                )
            for part, storable in await self._fetch_parts(symbol, tf, lo, hi):
                fetched.extend(part)
                closed = [b for b in part if b.ts + step <= now]  # never store the still-open bar
                if self.store is not None and closed and storable:
                    await self._off(functools.partial(self.store.upsert_bars, symbol, tf, closed))
            if progress:
                progress((i + 1) / len(chunks))
        if not chunks and progress:
            progress(1.0)
        if self.store is not None:
            store = self.store
            result = await self._off(lambda: store.range_bars(symbol, tf, start, end))
            # The open bar is not stored; take it from what was just fetched.
            stored_ts = {b.ts for b in result}
            result += [b for b in fetched if b.ts not in stored_ts]
            result.sort(key=lambda b: b.ts)
        else:
            result = sorted(fetched, key=lambda b: b.ts)
        self.cache.put(key, tuple(result))
        return result

    async def _missing(
        self, symbol: str, tf: Timeframe, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        if self.store is None:
            return [(start, end)]
        store = self.store
        cov = await self._off(lambda: store.coverage(symbol, tf))
        if cov is None:
            return [(start, end)]
        first, last = cov
        step = timedelta(seconds=tf.seconds)
        out = []
        if start < first:
            out.append((start, min(first, end)))
        if last + step < end:
            out.append((max(last + step, start), end))
        return [(lo, hi) for lo, hi in out if lo < hi]

    # -- latest values ---------------------------------------------------------------------------

    async def latest_trade(self, symbol: str) -> Trade:
        key = ("trade", symbol)
        if (hit := self.cache.get(key)) is not None:
            return hit
        if is_crypto(symbol):
            cr = CryptoLatestTradeRequest(symbol_or_symbols=symbol)
            data: Any = await self._run(
                f"latest trade {symbol}", lambda: self.crypto.get_crypto_latest_trade(cr)
            )
        else:
            sr = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=self.feed)
            data = await self._run(f"latest trade {symbol}", lambda: self.stock.get_stock_latest_trade(sr))
        if symbol not in data:
            raise BrokerNotFound(f"no trade for {symbol}", status=404)
        trade = _trade(symbol, data[symbol])
        self.cache.put(key, trade)
        return trade

    async def latest_quote(self, symbol: str) -> Quote:
        key = ("quote", symbol)
        if (hit := self.cache.get(key)) is not None:
            return hit
        if is_crypto(symbol):
            cr = CryptoLatestQuoteRequest(symbol_or_symbols=symbol)
            data: Any = await self._run(
                f"latest quote {symbol}", lambda: self.crypto.get_crypto_latest_quote(cr)
            )
        else:
            sr = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=self.feed)
            data = await self._run(f"latest quote {symbol}", lambda: self.stock.get_stock_latest_quote(sr))
        if symbol not in data:
            raise BrokerNotFound(f"no quote for {symbol}", status=404)
        quote = _quote(symbol, data[symbol])
        self.cache.put(key, quote)
        return quote

    async def snapshot(self, symbol: str) -> Snapshot:
        key = ("snapshot", symbol)
        if (hit := self.cache.get(key)) is not None:
            return hit
        if is_crypto(symbol):
            cr = CryptoSnapshotRequest(symbol_or_symbols=symbol)
            data: Any = await self._run(f"snapshot {symbol}", lambda: self.crypto.get_crypto_snapshot(cr))
        else:
            sr = StockSnapshotRequest(symbol_or_symbols=symbol, feed=self.feed)
            data = await self._run(f"snapshot {symbol}", lambda: self.stock.get_stock_snapshot(sr))
        s = data.get(symbol) if isinstance(data, dict) else None
        if s is None:
            raise BrokerNotFound(f"no snapshot for {symbol}", status=404)
        snap = Snapshot(
            symbol,
            _trade(symbol, s.latest_trade) if s.latest_trade else None,
            _quote(symbol, s.latest_quote) if s.latest_quote else None,
            _bar(symbol, s.minute_bar) if s.minute_bar else None,
            _bar(symbol, s.daily_bar) if s.daily_bar else None,
            _bar(symbol, s.previous_daily_bar) if s.previous_daily_bar else None,
        )
        self.cache.put(key, snap)
        return snap

    async def previous_close(self, symbol: str) -> Decimal | None:
        try:
            return (await self.snapshot(symbol)).previous_close
        except BrokerError as exc:
            log.warning("no previous close for %s: %s", symbol, exc.message)
            return None


def _bars_in(symbol: str, barset: Any, start: datetime, end: datetime) -> list[Bar]:
    rows = barset.data.get(symbol, []) if hasattr(barset, "data") else []
    return [_bar(symbol, b) for b in rows if start <= utc(b.timestamp) < end]


def _split(lo: datetime, hi: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    out = []
    while lo < hi:
        nxt = min(hi, lo + size)
        out.append((lo, nxt))
        lo = nxt
    return out
