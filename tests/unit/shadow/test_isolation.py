"""Shadow mode can never place, cancel or change an order."""

from __future__ import annotations

import ast
import gc
import types
from pathlib import Path
from typing import Any

from services.domain.bus import EventBus
from services.domain.events import BarEvent, Event
from services.shadow.inference import InferenceEngine
from services.shadow.tracker import ShadowTracker
from services.strategies.runner import StrategyRunner
from services.strategies.synthetic import synthetic_bars

from .fakes import ScriptedPredictor

SHADOW_DIR = Path(__file__).resolve().parents[3] / "services" / "shadow"
FORBIDDEN = (
    "services.orders",
    "services.broker",
    "services.exchange",
    "services.strategies.runner",
    "services.strategies.backtest",
    "alpaca",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_shadow_imports_nothing_that_can_trade() -> None:
    files = sorted(SHADOW_DIR.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        bad = [m for m in imported_modules(path) if m.startswith(FORBIDDEN)]
        assert bad == [], f"{path.name} imports {bad}"


class ExplodingSink:
    """An order sink that fails the test on any use at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"shadow mode touched the order sink ({name})")

    def accept(self, intent: Any) -> None:
        raise AssertionError("shadow mode sent an order intent")

    def cancel(self, strategy: str, client_order_id: str) -> None:
        raise AssertionError("shadow mode cancelled an order")


def reachable(root: object, *, stop: tuple[type, ...]) -> list[object]:
    seen: set[int] = set()
    out: list[object] = []
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType, *stop)):
            continue
        seen.add(id(obj))
        out.append(obj)
        todo.extend(gc.get_referents(obj))
    return out


def test_shadow_pipeline_runs_beside_a_live_runner_without_touching_its_sink() -> None:
    bus = EventBus()
    sink = ExplodingSink()
    runner = StrategyRunner(sink)  # the app wires a runner to the same bus; it has no strategies here
    runner.attach(bus)
    published: list[type[Event]] = []
    original = bus.publish

    def spy(event: Event) -> None:
        published.append(type(event))
        original(event)

    bus.publish = spy  # type: ignore[method-assign]
    tracker = ShadowTracker(
        [InferenceEngine(ScriptedPredictor([0.9] * 50)), InferenceEngine(None)], horizon=3
    )
    tracker.attach(bus)
    for b in synthetic_bars("AAPL", 200, seed=5):
        bus.publish(BarEvent(b.ts, b))
    assert tracker.predictions > 200 and tracker.scored > 200
    assert bus.handler_errors == 0  # the exploding sink was never called
    assert set(published) == {BarEvent}  # the shadow side published nothing itself
    # and no object graph path leads from the tracker to the sink (the shared bus aside)
    graph = reachable(tracker, stop=(EventBus,))
    assert not any(obj is sink for obj in graph)
    assert not any(isinstance(obj, StrategyRunner) for obj in graph)
