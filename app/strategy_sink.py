"""Strategies → execution engine, and execution feedback → strategies.

The runner names each intent with its own client order id (``st-<name>-<token>-<n>``); the
execution engine journals every order under its own id (``hr-s-<name>-...``, which carries the
source so that an order found after a crash is still attributed). :class:`EngineOrderSink`
submits through the engine (risk gate, journal before wire, source ``strategy:NAME``), remembers
engine id → runner id (persisted, so fills after a restart still reach the right strategy), and
:meth:`EngineOrderSink.attach` forwards trade updates and fills to the runner with the runner's id.

Thread: the event-loop thread (coroutines and bus handlers).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from app.settings import atomic_write_text
from services.domain.bus import EventBus, Subscription
from services.domain.events import FillEvent, TradeUpdateEvent
from services.domain.models import OrderRequest
from services.orders.engine import ExecutionEngine
from services.storage.errors import describe_os_error
from services.storage.files import read_bounded
from services.strategies.runner import StrategyRunner

log = logging.getLogger(__name__)
#: The id map holds recent orders only (a few kilobytes); a larger file is refused unread.
MAX_IDS_BYTES = 16 * 1024 * 1024


class StrategyOrderRefused(Exception):
    """The engine refused the intent (risk denial or broker rejection); the message says why."""


class EngineOrderSink:
    """:class:`services.strategies.api.OrderSink` over the :class:`ExecutionEngine`."""

    def __init__(self, engine: ExecutionEngine, ids_file: Path | None = None) -> None:
        self.engine = engine
        self.ids_file = ids_file
        self.engine_to_runner: dict[str, str] = {}
        self.runner_to_engine: dict[str, str] = {}
        self.refused = 0
        self._subs: list[Subscription] = []
        self._load()

    def _load(self) -> None:
        if self.ids_file is None or not self.ids_file.exists():
            return
        try:
            raw = read_bounded(self.ids_file, MAX_IDS_BYTES, "strategy order id map")
            data = json.loads(raw.decode("utf-8"))
            pairs = dict(data["engine_to_runner"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("strategy order id map %s is unreadable (%s); starting a new one", self.ids_file, exc)
            return
        self.engine_to_runner = {str(k): str(v) for k, v in pairs.items()}
        self.runner_to_engine = {v: k for k, v in self.engine_to_runner.items()}

    def _save(self) -> None:
        if self.ids_file is None:
            return
        # Only the most recent ids matter (open orders); keep the file small.
        recent = dict(list(self.engine_to_runner.items())[-2000:])
        try:
            self.ids_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.ids_file, json.dumps({"engine_to_runner": recent}) + "\n", mode=0o600)
        except OSError as exc:  # a full disk: the previous map stays whole (written atomically)
            log.error("strategy order id map not saved: %s; it is saved again with the next order",
                      describe_os_error(exc, self.ids_file))  # fmt: skip

    async def submit(self, request: OrderRequest, source: str) -> str:
        runner_id = request.client_order_id or ""
        result = await self.engine.submit(replace(request, client_order_id=None), source=source)
        if result.client_order_id is not None and runner_id:
            self.engine_to_runner[result.client_order_id] = runner_id
            self.runner_to_engine[runner_id] = result.client_order_id
            self._save()
        if not result.accepted:
            self.refused += 1
            raise StrategyOrderRefused(result.message or result.state.value)
        return runner_id or (result.client_order_id or "")

    async def cancel(self, client_order_id: str) -> None:
        engine_id = self.runner_to_engine.get(client_order_id, client_order_id)
        await self.engine.cancel(engine_id, source="strategy")

    # -- feedback ---------------------------------------------------------------------------------
    def attach(self, bus: EventBus, runner: StrategyRunner) -> None:
        def on_update(event: TradeUpdateEvent) -> None:
            runner_id = self.engine_to_runner.get(event.order.client_order_id)
            if runner_id is not None:
                runner.on_trade_update(replace(event, order=replace(event.order, client_order_id=runner_id)))

        def on_fill(event: FillEvent) -> None:
            runner_id = self.engine_to_runner.get(event.fill.client_order_id)
            if runner_id is not None:
                runner.on_fill_event(replace(event, fill=replace(event.fill, client_order_id=runner_id)))

        self._subs = [bus.subscribe(TradeUpdateEvent, on_update), bus.subscribe(FillEvent, on_fill)]

    def detach(self) -> None:
        for sub in self._subs:
            sub.cancel()
        self._subs = []
