"""Market data: the streams (quotes, trades, the trading stream and its order gate), the health watch
that the status bar and the state report read, and the interval bars for strategies and shadow."""

from __future__ import annotations

import logging

from app import lifecycle as stages
from app.context import AppContext, Services, cancel_tasks, fail, spawn
from app.report import health_sections
from services.broker.status import HealthWatch
from services.domain.enums import Mode
from services.domain.events import TradeUpdateEvent
from services.marketdata.intervals import LOCAL_DEFAULT_SECONDS, IntervalBarBuilder
from services.marketdata.pipeline import MarketDataBatchEvent
from services.marketdata.streams import StreamManager

log = logging.getLogger("heron.app")

#: Market-data batches handed to the loop thread per second: the services (risk checks, strategies,
#: interval bars) use each one at once, and a quote waits at most 80 ms for its batch, inside the
#: 100 ms a trader reads as live. The panels show the batches at the slower display pace
#: (``widgets/pacer.py``, at most 5 passes a second, one repaint of the window each).
FRAME_RATE = 12.5


def bar_seconds(ctx: AppContext) -> float:
    chosen = getattr(ctx.args, "bar_seconds", None)
    if chosen is not None:
        return float(chosen)
    return LOCAL_DEFAULT_SECONDS if ctx.mode is Mode.LOCAL else 60.0


async def start_market_data(
    ctx: AppContext, services: Services, key_id: str, secret: str, environment: str, base_url: str | None
) -> None:
    streams = StreamManager(
        key_id=key_id,
        secret=secret,
        bus=ctx.bus,
        environment=environment,
        base_url=base_url,
        broker=services.broker,
        feed=ctx.settings.market_data.live_feed,
        frame_rate=FRAME_RATE,
    )
    services.streams = streams
    services.book = streams.book
    _start_health_watch(ctx, services, streams)

    async def close_streams() -> None:
        # The report describes the connection as it was while running, not after closing it.
        services.connection_at_quit = health_sections(ctx, services)
        await streams.stop()

    ctx.lifecycle.add_step(stages.CLOSE_STREAMS, "streams", close_streams, timeout=20)
    try:
        await streams.start()
        await streams.subscribe(ctx.settings.watchlist, trades=True, quotes=True)
    except Exception as exc:
        fail(
            ctx,
            services,
            "market data",
            f"the streams could not start ({type(exc).__name__}: {exc}); trading stays DISABLED",
        )


def _start_health_watch(ctx: AppContext, services: Services, streams: StreamManager) -> None:
    """Probe the broker and the trading stream when they are quiet: the status bar and the state
    report say "live" only while the broker answers."""
    assert services.latency is not None and services.broker is not None
    runner = streams.trading
    watch = HealthWatch(
        services.latency,
        services.health,
        services.broker.get_clock,
        streams,
        ping=runner.ping if runner is not None else None,
    )
    watch.watched = lambda: ctx.settings.watchlist
    watch.trading = lambda: services.trading
    services.watch = watch
    ctx.bus.subscribe(TradeUpdateEvent, lambda _e: watch.trade_update())
    spawn(services, "health watch", watch.run())
    ctx.lifecycle.add_step(
        stages.CLOSE_STREAMS, "health watch", lambda: cancel_tasks(services, "health watch")
    )


def bar_builder(ctx: AppContext, services: Services) -> IntervalBarBuilder:
    if services.bars is None:
        bars = IntervalBarBuilder(bar_seconds(ctx))
        services.bars = bars
        sub = ctx.bus.subscribe(MarketDataBatchEvent, bars.on_batch)
        bars.start()

        async def stop() -> None:
            sub.cancel()
            await bars.stop()

        ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "interval bars", stop)
        log.info("strategies and shadow models use %s bars built from live trades", bars.timeframe)
    return services.bars
