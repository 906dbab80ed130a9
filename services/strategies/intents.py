"""How attributed order intents leave the strategy runner.

The runner hands every intent, synchronously, to an :class:`IntentSink`. Live, that sink is an
:class:`OrderSinkBridge`, which queues the intents and submits them in order to an async
:class:`~services.strategies.api.OrderSink` (the execution engine); in a backtest the simulated
broker is the sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from services.strategies.api import OrderIntent, OrderSink

log = logging.getLogger(__name__)


class _Op(StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    STOP = "stop"


class IntentSink(Protocol):
    """Synchronous hand-off of attributed intents. Must not block and must not call back into the
    runner re-entrantly for the same intent; failures are reported with
    :meth:`~services.strategies.runner.StrategyRunner.on_intent_failed`."""

    def accept(self, intent: OrderIntent) -> None: ...

    def cancel(self, strategy: str, client_order_id: str) -> None: ...


class OrderSinkBridge:
    """IntentSink for live trading: queues intents and submits them, in order, to an async OrderSink.

    ``start()`` must be called from the event loop; ``stop()`` drains what is queued then ends the
    task. A sink exception (risk rejection, journal error) is reported to ``on_failure`` with the
    client order id and the message; the strategy keeps running.
    """

    def __init__(self, sink: OrderSink) -> None:
        self._sink = sink
        self._queue: asyncio.Queue[tuple[_Op, OrderIntent | None, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_failure: Callable[[str, str], None] | None = None
        self.submitted = 0

    def accept(self, intent: OrderIntent) -> None:
        self._queue.put_nowait((_Op.SUBMIT, intent, ""))

    def cancel(self, strategy: str, client_order_id: str) -> None:
        self._queue.put_nowait((_Op.CANCEL, None, client_order_id))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="strategy-intents")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._queue.put_nowait((_Op.STOP, None, ""))
        await self._task
        self._task = None

    async def drain(self) -> None:
        """Wait until every queued intent has been handed to the sink (tests, shutdown)."""
        await self._queue.join()

    async def _pump(self) -> None:
        while True:
            kind, intent, coid = await self._queue.get()
            try:
                if kind is _Op.STOP:
                    return
                if kind is _Op.CANCEL:
                    await self._sink.cancel(coid)
                elif intent is not None:
                    await self._sink.submit(intent.request, intent.source)
                    self.submitted += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = intent.request.client_order_id if intent is not None else coid
                log.warning("order sink refused %s %s: %s", kind, failed, exc)
                if self.on_failure is not None and failed:
                    self.on_failure(failed, str(exc) or type(exc).__name__)
            finally:
                self._queue.task_done()
