"""Strategies: the built-in registry, the runner with its saved state, the order sink into the
engine, fed with interval bars; restored and ``--start-strategy`` ones start after start-up."""

from __future__ import annotations

import logging
from typing import Any

from app import lifecycle as stages
from app.context import AppContext, Services, fail, now
from app.strategy_sink import EngineOrderSink
from app.subsystems.marketdata import bar_builder
from services.domain.models import Bar
from services.strategies.api import ParamError
from services.strategies.builtin import builtin_registry
from services.strategies.intents import OrderSinkBridge
from services.strategies.runner import StrategyRunner, StrategyRunnerError
from services.strategies.store import StrategyStateError, StrategyStateStore

log = logging.getLogger("heron.app")


def build_strategies(ctx: AppContext, services: Services) -> None:
    engine = services.engine
    if engine is None:
        return
    services.strategy_registry = dict(builtin_registry())
    folder = ctx.paths.profile_dir / "strategies"
    sink = EngineOrderSink(engine, folder / "order_ids.json")
    bridge = OrderSinkBridge(sink)
    runner = StrategyRunner(bridge, store=StrategyStateStore(folder / "state.json"), clock=now)
    sink.attach(ctx.bus, runner)
    services.runner, services.strategy_sink = runner, sink
    bars = bar_builder(ctx, services)

    def feed(new: list[Bar]) -> None:
        for bar in new:
            runner.on_bar(bar)

    bars.sinks.append(feed)

    async def stop_strategies() -> None:
        runner.stop_all()
        await bridge.stop()  # hands over what the strategies already decided, then ends
        sink.detach()
        runner.save()

    ctx.lifecycle.add_step(stages.STOP_STRATEGIES, "strategies", stop_strategies, timeout=20)
    bridge.start()


def start_strategies(ctx: AppContext, services: Services) -> None:
    """Restore saved strategies, then start the ``--start-strategy`` ones (after start-up recon)."""
    runner = services.runner
    if runner is None:
        return
    registry = services.strategy_registry
    try:
        restored = runner.restore(registry)
    except StrategyStateError as exc:
        fail(ctx, services, "strategies", str(exc), level="warning")
        restored = []
    if restored:
        log.info("restored strategies: %s", ", ".join(restored))
    for spec in getattr(ctx.args, "start_strategy", []) or []:
        try:
            name = _start_one(runner, registry, spec.name, spec.params)
        except (ParamError, StrategyRunnerError, ValueError) as exc:
            fail(ctx, services, f"strategy:{spec.name}", f"cannot start {spec.name}: {exc}")
            continue
        log.info("strategy %s started (%s)", name, runner.info(name).params)


def _start_one(runner: StrategyRunner, registry: dict[str, Any], name: str, params: dict[str, str]) -> str:
    cls = registry.get(name)
    if cls is None:
        raise StrategyRunnerError(f"unknown strategy {name!r}; built-in: {', '.join(sorted(registry))}")
    if name in runner.names():
        current = runner.info(name).params
        wanted = cls(params).params_as_text()
        if current == wanted:
            runner.start(name)
            return name
        runner.stop(name)
        runner.remove(name)
    runner.add(cls(params), name)
    runner.start(name)
    return name


def check_strategy_specs(specs: list[Any]) -> str | None:
    """A one-line problem with a ``--start-strategy`` spec (unknown name, bad parameter), or None."""
    if not specs:
        return None
    registry = builtin_registry()
    for spec in specs:
        cls = registry.get(spec.name)
        if cls is None:
            known = ", ".join(sorted(registry))
            return f"--start-strategy: unknown strategy {spec.name!r}; built-in: {known}"
        try:
            cls(spec.params)
        except (ParamError, ValueError) as exc:
            return f"--start-strategy {spec.name}: {exc}"
    return None
