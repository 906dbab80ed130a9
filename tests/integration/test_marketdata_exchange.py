"""History against the real local exchange, and our candles against the exchange's own minute bars."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.domain.bus import EventBus
from services.domain.enums import Timeframe
from services.domain.models import Bar
from services.marketdata.history import HistoryService
from services.marketdata.pipeline import ExchangeBar, MarketDataBatchEvent
from services.marketdata.streams import StreamManager
from tests.integration.test_broker_exchange import LocalExchange, start_exchange, stop_exchange


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExchange]:
    ex = start_exchange(tmp_path_factory.mktemp("exchange"), "--rate", "3000")
    yield ex
    stop_exchange(ex)


def test_history_bars_latest_and_snapshot(exchange: LocalExchange) -> None:
    async def main() -> None:
        hist = HistoryService(exchange.key_id, exchange.secret, base_url=exchange.url)
        try:
            end = datetime.now(UTC)
            progress: list[float] = []
            bars = await hist.bars(
                "AAPL", Timeframe.MIN_5, end - timedelta(days=3), end, progress=progress.append
            )
            assert bars and progress[-1] == 1.0
            assert all(b.ts.tzinfo is not None for b in bars)
            assert [b.ts for b in bars] == sorted(b.ts for b in bars)
            day = await hist.bars("BTC/USD", Timeframe.DAY_1, end - timedelta(days=30), end)
            assert day and all(b.high >= b.low for b in day)
            q = await hist.latest_quote("AAPL")
            assert q.ask >= q.bid > 0
            t = await hist.latest_trade("BTC/USD")
            assert t.price > 0
            snap = await hist.snapshot("AAPL")
            assert snap.latest_quote is not None
            prev = await hist.previous_close("AAPL")
            assert prev is None or prev > 0
            n = hist.requests
            await hist.latest_quote("AAPL")
            assert hist.requests == n  # TTL cache
        finally:
            await hist.close()

    asyncio.run(main())


@pytest.mark.slow
@pytest.mark.timeout(300)  # waits for a minute boundary and the bar after it (its own deadline: 150 s)
def test_candle_aggregator_matches_exchange_minute_bars(exchange: LocalExchange) -> None:
    """Run across a minute boundary; compare our closed bar with the exchange's bar for that minute."""

    async def main() -> None:
        bus = EventBus()
        theirs: dict[datetime, ExchangeBar] = {}
        ours: dict[datetime, Bar] = {}

        def on_batch(e: MarketDataBatchEvent) -> None:
            for eb in e.batch.exchange_bars:
                # A late print for a closed minute is followed by an updated bar ("u") that
                # includes it: the exchange's last word on a minute replaces its first.
                if eb.kind in ("b", "u") and eb.bar.symbol == "AAPL":
                    theirs[eb.bar.ts] = eb
            for b in e.batch.bars:
                if b.symbol == "AAPL" and b.trade_count:
                    ours[b.ts] = b

        bus.subscribe(MarketDataBatchEvent, on_batch)
        sm = StreamManager(
            key_id=exchange.key_id,
            secret=exchange.secret,
            bus=bus,
            environment="local",
            base_url=exchange.url,
            trading=False,
        )
        await sm.start()
        try:
            await sm.subscribe(["AAPL"], trades=True, quotes=False, bars=True)
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                # the first bar we saw may have started mid-minute: compare only later minutes
                common = sorted(set(theirs) & set(ours))[1:]
                if common:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"no comparable minute: ours={sorted(ours)} theirs={sorted(theirs)}")
            ts = common[0]
            a, b = ours[ts], theirs[ts].bar
            assert (a.open, a.high, a.low, a.close) == (b.open, b.high, b.low, b.close)
            assert a.volume == b.volume and a.trade_count == b.trade_count
            assert b.vwap is not None and abs(a.vwap - b.vwap) <= abs(b.vwap) * Decimal("1e-6")
        finally:
            await sm.stop()

    asyncio.run(main())
