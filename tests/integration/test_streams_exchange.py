"""StreamManager against the real local exchange: data, reconnect + resync gate, silent socket, bad keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.broker.alpaca import AlpacaBroker
from services.domain.bus import EventBus
from services.domain.enums import ConnectionState, OrderSide, OrderType, TimeInForce
from services.domain.events import ConnectionStateEvent, TradeUpdateEvent
from services.domain.models import OrderRequest
from services.marketdata.book import QuoteBook
from services.marketdata.pipeline import MarketDataBatchEvent, MarketDataPipeline
from services.marketdata.staleness import StalenessGuard
from services.marketdata.streams import StreamManager
from tests.integration.test_broker_exchange import LocalExchange, start_exchange, stop_exchange
from tests.support.polling import async_wait_for


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExchange]:
    ex = start_exchange(tmp_path_factory.mktemp("exchange"), "--rate", "2000")
    yield ex
    stop_exchange(ex)


class Recorder:
    def __init__(self, bus: EventBus) -> None:
        self.states: list[ConnectionStateEvent] = []
        self.updates: list[TradeUpdateEvent] = []
        self.batches: list[MarketDataBatchEvent] = []
        self.order: list[str] = []
        bus.subscribe(ConnectionStateEvent, self.states.append)
        bus.subscribe(TradeUpdateEvent, self._update)
        bus.subscribe(MarketDataBatchEvent, self._batch)

    def _update(self, e: TradeUpdateEvent) -> None:
        self.updates.append(e)
        self.order.append("exec")

    def _batch(self, e: MarketDataBatchEvent) -> None:
        self.batches.append(e)
        self.order.append("md")

    def seen(self, channel: str, state: ConnectionState) -> bool:
        return any(s.channel == channel and s.state is state for s in self.states)


def manager(ex: LocalExchange, bus: EventBus, broker: AlpacaBroker | None, **kw: object) -> StreamManager:
    return StreamManager(
        key_id=ex.key_id, secret=ex.secret, bus=bus, environment="local", base_url=ex.url, broker=broker, **kw
    )  # type: ignore[arg-type]


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: \w+ stream lost \(ConnectionClosedError: ")
def test_live_data_trade_updates_and_resync_after_kill(exchange: LocalExchange) -> None:
    async def main() -> None:
        bus = EventBus()
        rec = Recorder(bus)
        broker = AlpacaBroker(exchange.key_id, exchange.secret, environment="local", base_url=exchange.url)
        sm = manager(exchange, bus, broker)
        hook_calls: list[datetime | None] = []

        async def hook(since: datetime | None) -> None:
            assert not sm.gate.allowed  # orders are held while we resync
            hook_calls.append(since)

        sm.add_resync_hook(hook)
        await sm.start()
        try:
            await sm.subscribe(["AAPL", "MSFT", "BTC/USD"])
            await async_wait_for("the order gate to open", lambda: sm.gate.allowed, 15)
            assert hook_calls == [None]
            await async_wait_for(
                "quotes for AAPL and BTC/USD",
                lambda: sm.book.quote("AAPL") is not None and sm.book.quote("BTC/USD") is not None,
                15,
            )
            assert not sm.book.is_stale("AAPL")
            await async_wait_for("market-data batches", lambda: len(rec.batches) >= 5, 10)
            assert sm.states["stock"] is ConnectionState.LIVE and sm.states["trading"] is ConnectionState.LIVE

            # a trade update reaches the bus as a TradeUpdateEvent with exact decimals
            coid = f"st-{uuid.uuid4().hex[:10]}"
            await broker.submit_order(
                OrderRequest(
                    "AAPL",
                    OrderSide.BUY,
                    OrderType.LIMIT,
                    TimeInForce.DAY,
                    qty=Decimal(1),
                    limit_price=Decimal("1.5"),
                    client_order_id=coid,
                )
            )
            await async_wait_for(
                "trade update",
                lambda: any(u.order.client_order_id == coid for u in rec.updates),
                10,
            )
            u = next(u for u in rec.updates if u.order.client_order_id == coid)
            assert u.order.limit_price == Decimal("1.5") and u.ts.tzinfo is not None

            # kill the trading websocket: the gate closes, hooks run, then it opens again
            exchange.admin("streams/kill", {"which": "trading"})
            await async_wait_for("the gate to close", lambda: not sm.gate.allowed, 10)
            await async_wait_for("the gate to reopen after resync", lambda: sm.gate.allowed, 30)
            assert len(hook_calls) == 2 and hook_calls[1] is not None
            assert rec.seen("trading", ConnectionState.RECONNECTING)

            # kill the data websockets: they reconnect and data flows again
            n = sm.pipeline.messages
            exchange.admin("streams/kill", {"which": "data"})
            await async_wait_for("stock reconnect", lambda: sm.data.connections["stock"].connects >= 2, 15)
            await async_wait_for("data after reconnect", lambda: sm.pipeline.messages > n + 100, 15)
        finally:
            await sm.stop()
            await broker.close()
        assert sm.states["trading"] is ConnectionState.STOPPED

    asyncio.run(main())


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock stream lost \(no market data for")
def test_silent_socket_and_stale_data_are_detected(exchange: LocalExchange) -> None:
    async def main() -> None:
        bus = EventBus()
        rec = Recorder(bus)
        clock = [datetime.now(UTC)]
        book = QuoteBook(StalenessGuard(1.0), now=lambda: clock[0])
        sm = manager(
            exchange, bus, None, trading=False, data_timeout=1.5, pipeline=MarketDataPipeline(book=book)
        )
        await sm.start()
        try:
            await sm.subscribe(["NVDA"])
            await async_wait_for("NVDA quotes", lambda: book.quote("NVDA") is not None, 15)
            clock[0] = datetime.now(UTC)
            assert not book.is_stale("NVDA")
            exchange.admin("halt", {"symbol": "NVDA", "halted": True})
            stock = sm.data.connections["stock"]
            await async_wait_for("silent-socket detection", lambda: stock.silent_timeouts >= 1, 15)
            assert rec.seen("stock", ConnectionState.RECONNECTING)
            assert "no market data" in sm.data.connections["stock"].last_error
            clock[0] = datetime.now(UTC) + timedelta(seconds=2)
            assert book.is_stale("NVDA") and "old" in book.staleness("NVDA").reason
        finally:
            exchange.admin("reset")
            await sm.stop()

    asyncio.run(main())


@pytest.mark.expected_log(r"^services\.marketdata\.datastream: stock market data: the keys were refused")
def test_bad_keys_fail_once_clearly(exchange: LocalExchange) -> None:
    async def main() -> None:
        bus = EventBus()
        rec = Recorder(bus)
        sm = StreamManager(
            key_id=exchange.key_id, secret="wrong", bus=bus, environment="local", base_url=exchange.url
        )
        await sm.start()
        try:
            await sm.subscribe(["AAPL"])
            await async_wait_for(
                "FAILED on both channels",
                lambda: (
                    sm.states.get("stock") is ConnectionState.FAILED
                    and sm.states.get("trading") is ConnectionState.FAILED
                ),
                15,
            )
            assert "keys were refused" in sm.reasons["stock"] and "refused the keys" in sm.reasons["trading"]
            await asyncio.sleep(1.5)
            assert sm.data.connections["stock"].connects == 0 and sm.trading is not None
            assert sm.trading.connects == 0 and not sm.gate.allowed
            assert sum(1 for s in rec.states if s.state is ConnectionState.FAILED) == 2  # once each
        finally:
            await sm.stop()

    asyncio.run(main())
