from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.domain.bus import EventBus
from services.domain.enums import OrderSide, TimeInForce
from services.domain.events import BarEvent, FillEvent, NotificationEvent, QuoteEvent
from services.domain.models import Fill, OrderRequest, Quote
from services.strategies.api import Param, Signal, Strategy, StrategyState
from services.strategies.intents import OrderSinkBridge
from services.strategies.portfolio import PortfolioManager
from services.strategies.report import strategies_report
from services.strategies.runner import StrategyRunner, StrategyRunnerError
from services.strategies.store import StrategyStateError, StrategyStateStore

from .support import T0, RecordingSink, bar, fill_update


class Recorder(Strategy):
    KEY = "recorder"
    PARAMS = (Param("fail_on", str, "", "hook name that raises"),)

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.calls: list[str] = []

    def _maybe_fail(self, hook: str) -> None:
        if self.params["fail_on"] == hook:
            raise RuntimeError(f"boom in {hook}")

    def on_start(self) -> None:
        self.calls.append(f"start restored={self.ctx.restored}")
        self._maybe_fail("on_start")

    def on_bar(self, bar: Any) -> None:
        self.calls.append(f"bar {bar.symbol} {bar.close}")
        self._maybe_fail("on_bar")

    def on_quote(self, quote: Quote) -> None:
        self.calls.append(f"quote {quote.symbol}")

    def on_trade_update(self, event: Any) -> None:
        self.calls.append(f"update {event.event}")

    def on_stop(self) -> None:
        self.calls.append("stop")


class Target(Strategy):
    """Goes long qty on the first bar, flat when close >= 105; keeps a counter in custom state."""

    KEY = "target"

    def on_bar(self, bar: Any) -> None:
        state = self.ctx.state
        state["bars"] = state.get("bars", 0) + 1
        if bar.close >= 105:
            self.ctx.signal(bar.symbol, Signal.FLAT)
            self.ctx.target_position(bar.symbol, Decimal(0))
        else:
            self.ctx.signal(bar.symbol, Signal.LONG)
            self.ctx.target_position(bar.symbol, self.params["qty"])


def quote(symbol: str = "AAPL") -> Quote:
    return Quote(symbol, Decimal("99.9"), Decimal("100.1"), Decimal(1), Decimal(1), T0)


def test_hooks_are_called_in_order_and_only_for_subscribed_symbols() -> None:
    sink = RecordingSink()
    runner = StrategyRunner(sink, run_token="t")
    s = Recorder({"symbols": "AAPL"})
    name = runner.add(s)
    runner.on_bar(bar(0, 1, 1, 1, 1))  # created, not started: nothing
    runner.start(name)
    runner.on_bar(bar(1, 1, 1, 1, 2))
    runner.on_bar(bar(1, 1, 1, 1, 2, symbol="MSFT"))
    runner.on_quote(quote())
    runner.pause(name)
    runner.on_bar(bar(2, 1, 1, 1, 3))
    runner.resume(name)
    runner.on_bar(bar(3, 1, 1, 1, 4))
    runner.stop(name)
    runner.on_bar(bar(4, 1, 1, 1, 5))
    assert s.calls == ["start restored=False", "bar AAPL 2", "quote AAPL", "bar AAPL 4", "stop"]
    assert runner.state(name) is StrategyState.STOPPED


def test_intents_are_attributed_and_target_counts_pending_orders() -> None:
    sink = RecordingSink()
    runner = StrategyRunner(sink, run_token="abc123")
    name = runner.add(Target({"qty": "10"}), "trend-1")
    runner.start(name)
    runner.on_bar(bar(0, 100, 100, 100, 100))
    runner.on_bar(bar(1, 100, 100, 100, 101))  # still LONG, order pending: no second intent
    assert len(sink.intents) == 1
    intent = sink.intents[0]
    assert intent.strategy == "trend-1" and intent.source == "strategy:trend-1"
    req = intent.request
    assert (req.side, req.qty, req.symbol) == (OrderSide.BUY, Decimal(10), "AAPL")
    assert req.client_order_id is not None and len(req.client_order_id) <= 48
    assert req.client_order_id.startswith("st-trend-1-abc123-")
    assert intent.ts == T0  # decided on the first bar
    runner.on_trade_update(fill_update(intent, "100.5"))
    assert runner.position(name, "AAPL") == Decimal(10)
    runner.on_bar(bar(2, 104, 106, 104, 106))
    assert [i.request.side for i in sink.intents] == [OrderSide.BUY, OrderSide.SELL]
    assert sink.intents[1].request.qty == Decimal(10)
    runner.on_trade_update(fill_update(sink.intents[1], "106", exec_id="x2"))
    assert runner.position(name, "AAPL") == 0
    assert runner.pnl(name) == Decimal("55.0")
    assert runner.info(name).orders == 2


def test_fills_are_deduplicated_across_trade_updates_and_fill_events() -> None:
    sink = RecordingSink()
    runner = StrategyRunner(sink)
    name = runner.add(Target({"qty": "4"}))
    runner.start(name)
    runner.on_bar(bar(0, 100, 100, 100, 100))
    intent = sink.intents[0]
    update = fill_update(intent, "100", qty="1", exec_id="e1", kind="partial_fill")
    runner.on_trade_update(update)
    runner.on_trade_update(update)  # duplicate delivery
    assert intent.request.client_order_id is not None
    fill = Fill(
        "e1", "o", intent.request.client_order_id, "AAPL", OrderSide.BUY, Decimal(1), Decimal(100), T0
    )
    runner.on_fill_event(FillEvent(T0, fill))
    assert runner.position(name, "AAPL") == Decimal(1)
    runner.on_bar(bar(1, 100, 100, 100, 100))  # 3 still pending: nothing new
    assert len(sink.intents) == 1


@pytest.mark.expected_log(
    r"^services\.strategies\.runner: strategy bad failed and was stopped: RuntimeError:",
)
def test_failing_strategy_is_isolated_and_others_continue() -> None:
    sink = RecordingSink()
    bus = EventBus()
    notes: list[NotificationEvent] = []
    bus.subscribe(NotificationEvent, notes.append)
    runner = StrategyRunner(sink)
    runner.attach(bus)
    bad = Recorder({"fail_on": "on_bar"})
    good = Recorder()
    runner.add(bad, "bad")
    runner.add(good, "good")
    runner.start("bad")
    runner.start("good")
    for i in range(3):
        bus.publish(BarEvent(T0, bar(i, 1, 1, 1, 1 + i)))
    assert runner.state("bad") is StrategyState.ERROR
    info = runner.info("bad")
    assert info.error == "RuntimeError: boom in on_bar"
    assert info.traceback is not None and "_maybe_fail" in info.traceback
    assert bad.calls == ["start restored=False", "bar AAPL 1"]
    assert good.calls[-1] == "bar AAPL 3" and runner.state("good") is StrategyState.RUNNING
    assert len(notes) == 1 and notes[0].source == "strategy:bad"
    assert bus.handler_errors == 0  # the runner contained it
    report = strategies_report(runner)
    assert report[0]["state"] == "error" and report[0]["error"] == "RuntimeError: boom in on_bar"
    runner.start("bad")  # an operator may restart it; the error is cleared
    assert runner.state("bad") is StrategyState.RUNNING and runner.info("bad").error is None


@pytest.mark.expected_log(
    r"^services\.strategies\.runner: strategy recorder failed and was stopped: RuntimeError:",
)
def test_failure_in_on_start_puts_strategy_in_error() -> None:
    runner = StrategyRunner(RecordingSink())
    name = runner.add(Recorder({"fail_on": "on_start"}))
    runner.start(name)
    assert runner.state(name) is StrategyState.ERROR
    runner.on_bar(bar(0, 1, 1, 1, 1))
    assert runner.strategy(name).calls == ["start restored=False"]  # type: ignore[attr-defined]


def test_partial_bars_are_ignored_and_quotes_reach_strategies_via_bus() -> None:
    runner = StrategyRunner(RecordingSink())
    bus = EventBus()
    runner.attach(bus)
    s = Recorder()
    runner.start(runner.add(s))
    bus.publish(BarEvent(T0, bar(0, 1, 1, 1, 1), is_partial=True))
    bus.publish(QuoteEvent(T0, quote()))
    bus.publish(BarEvent(T0, bar(0, 1, 1, 1, 7)))
    assert s.calls[1:] == ["quote AAPL", "bar AAPL 7"]


def test_lifecycle_errors_are_clear() -> None:
    runner = StrategyRunner(RecordingSink())
    runner.add(Recorder(), "one")
    with pytest.raises(StrategyRunnerError, match="already exists"):
        runner.add(Recorder(), "one")
    with pytest.raises(StrategyRunnerError, match="no strategy named 'two'"):
        runner.start("two")
    with pytest.raises(StrategyRunnerError, match="must be 1-40"):
        runner.add(Recorder(), "bad name!")
    runner.start("one")
    with pytest.raises(StrategyRunnerError, match="stop 'one' before removing"):
        runner.remove("one")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    store = StrategyStateStore.in_data_dir(tmp_path)
    sink = RecordingSink()
    runner = StrategyRunner(sink, store=store)
    name = runner.add(Target({"qty": "10", "symbols": "AAPL"}), "t1")
    runner.start(name)
    runner.on_bar(bar(0, 100, 100, 100, 100))
    runner.on_trade_update(fill_update(sink.intents[0], "100", qty="4", exec_id="p1", kind="partial_fill"))
    runner.on_bar(bar(1, 100, 100, 100, 102))
    paused = runner.add(Recorder(), "rec")
    runner.start(paused)
    runner.pause(paused)
    before = runner.info(name)
    assert before.pnl == Decimal(8)  # 4 shares marked at 102
    assert json.loads(store.path.read_text())["version"] == 1

    # a new process: a fresh runner restores from the same file
    sink2 = RecordingSink()
    runner2 = StrategyRunner(sink2, store=StrategyStateStore.in_data_dir(tmp_path))
    names = runner2.restore({"target": Target, "recorder": Recorder})
    assert sorted(names) == ["rec", "t1"]
    after = runner2.info(name)
    assert after.state is StrategyState.RUNNING and runner2.state("rec") is StrategyState.PAUSED
    assert after.positions == {"AAPL": Decimal(4)}
    assert after.pnl == before.pnl and after.last_signal is Signal.LONG
    assert after.params == before.params and after.orders == 1
    assert runner2.strategy(name).ctx.state["bars"] == 2
    assert runner2.strategy("rec").calls == ["start restored=True"]  # type: ignore[attr-defined]
    # the order still open at shutdown is still attributed: its late fill lands in the book
    runner2.on_trade_update(fill_update(sink.intents[0], "101", qty="6", exec_id="p2", kind="partial_fill"))
    assert runner2.position(name, "AAPL") == Decimal(10)
    runner2.on_bar(bar(2, 103, 103, 103, 103))
    assert sink2.intents == []  # target reached, nothing more to send


def test_corrupt_state_file_is_moved_aside_with_a_clear_error(tmp_path: Path) -> None:
    store = StrategyStateStore(tmp_path / "state.json")
    store.path.write_text("{not json")
    with pytest.raises(StrategyStateError, match="unreadable"):
        store.load()
    assert not store.path.exists() and (tmp_path / "state.json.corrupt-1").exists()
    assert store.load() == {}


@pytest.mark.expected_log(r"^services\.strategies\.intents: order sink refused submit \S+ risk: max")
def test_bridge_submits_in_order_and_reports_refusals() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        async def submit(self, request: OrderRequest, source: str) -> str:
            assert request.client_order_id is not None
            self.seen.append((request.client_order_id, source))
            if len(self.seen) == 2:
                raise ValueError("risk: max position 5 exceeded")
            return request.client_order_id

        async def cancel(self, client_order_id: str) -> None:
            self.seen.append((client_order_id, "cancel"))

    async def scenario() -> tuple[Sink, StrategyRunner]:
        sink = Sink()
        bridge = OrderSinkBridge(sink)
        runner = StrategyRunner(bridge)
        bridge.start()
        name = runner.add(Target({"qty": "3"}))
        runner.start(name)
        runner.on_bar(bar(0, 100, 100, 100, 100))
        runner.on_bar(bar(1, 110, 110, 110, 110))  # flat → sell 3 (refused by the sink)
        await bridge.drain()
        await bridge.stop()
        return sink, runner

    sink, runner = asyncio.run(scenario())
    assert [s for _, s in sink.seen] == ["strategy:target", "strategy:target"]
    info = runner.info("target")
    assert info.rejected == 1 and info.last_rejection == "risk: max position 5 exceeded"
    assert runner.state("target") is StrategyState.RUNNING


@pytest.mark.expected_log(
    r"^services\.strategies\.portfolio: portfolio cap: c target AAPL \S+ clipped",
    r"^services\.strategies\.portfolio: portfolio cap: b target MSFT \S+ clipped",
)
def test_portfolio_nets_targets_and_applies_the_cap() -> None:
    pm = PortfolioManager({"AAPL": Decimal(10)})
    assert pm.request_target("a", "AAPL", Decimal(8)) == Decimal(8)
    assert pm.request_target("b", "AAPL", Decimal(-3)) == Decimal(-3)
    assert pm.net_target("AAPL") == Decimal(5) and pm.net_signal("AAPL") is Signal.LONG
    assert pm.in_conflict("AAPL")
    # c wants +9: net would be 14 > 10, clipped to +5 (net exactly 10)
    assert pm.request_target("c", "AAPL", Decimal(9)) == Decimal(5)
    assert pm.net_target("AAPL") == Decimal(10) and len(pm.clips) == 1
    # reducing is never clipped
    assert pm.request_target("a", "AAPL", Decimal(0)) == Decimal(0)
    # no room in the direction asked: clipped to zero, never flipped
    pm2 = PortfolioManager({"MSFT": Decimal(5)})
    pm2.request_target("a", "MSFT", Decimal(5))
    assert pm2.request_target("b", "MSFT", Decimal(2)) == Decimal(0)
    # without a cap targets just sum
    pm3 = PortfolioManager()
    pm3.request_target("a", "X", Decimal(5))
    pm3.request_target("b", "X", Decimal(-5))
    assert pm3.net_target("X") == 0 and pm3.net_signal("X") is Signal.FLAT


@pytest.mark.expected_log(r"^services\.strategies\.portfolio: portfolio cap: b target AAPL \S+ clipped")
def test_runner_uses_the_portfolio_cap_for_target_orders() -> None:
    sink = RecordingSink()
    runner = StrategyRunner(sink, portfolio=PortfolioManager({"AAPL": Decimal(12)}))
    runner.start(runner.add(Target({"qty": "10"}), "a"))
    runner.start(runner.add(Target({"qty": "10"}), "b"))
    runner.on_bar(bar(0, 100, 100, 100, 100))
    assert [(i.strategy, i.request.qty) for i in sink.intents] == [("a", Decimal(10)), ("b", Decimal(2))]


def test_a_crypto_target_is_worked_with_a_crypto_time_in_force() -> None:
    """Alpaca refuses ``day`` for crypto orders: only gtc and ioc ("Crypto Orders" in Alpaca's docs,
    alpaca-docs content/trading/crypto-trading.md). A strategy's market orders for BTC/USD go gtc;
    stocks keep day."""
    sink = RecordingSink()
    runner = StrategyRunner(sink, run_token="c1")
    name = runner.add(Target({"qty": "0.5", "symbols": "BTC/USD"}), "coin")
    runner.start(name)
    runner.on_bar(bar(0, 100, 100, 100, 100, symbol="BTC/USD"))
    [intent] = sink.intents
    assert (intent.request.symbol, intent.request.time_in_force) == ("BTC/USD", TimeInForce.GTC)
    stock_sink = RecordingSink()
    stock = StrategyRunner(stock_sink, run_token="c2")
    stock.start(stock.add(Target({"qty": "1"}), "eq"))
    stock.on_bar(bar(0, 100, 100, 100, 100))
    assert stock_sink.intents[0].request.time_in_force is TimeInForce.DAY
