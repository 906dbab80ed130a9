"""``run_script``: when scripted orders are submitted (fake clock, fake engine; no real sleeping).

The regression: trading turns ACTIVE once *any* symbol is priced, so a scripted BTC/USD order sent
at that moment could meet a book with stock quotes only and be refused by the risk gate ("no price
for BTC/USD (fail closed)"); a headless ``--script`` run then ended with no order at the venue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.script import PRICE_TIMEOUT_S, ScriptedOrder, ScriptError, load_script, run_script
from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest, Quote
from services.orders.records import SubmitResult
from services.orders.transitions import OrderState
from tests.support.clock import FakeClock


@dataclass
class FakePrices:
    quotes: dict[str, Decimal] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)

    def quote(self, symbol: str) -> Quote | None:
        if symbol not in self.quotes:
            return None
        p = self.quotes[symbol]
        return Quote(symbol, p - 1, p + 1, Decimal(1), Decimal(1), datetime(2026, 1, 5, tzinfo=UTC))

    def last_price(self, symbol: str) -> Decimal | None:
        return self.quotes.get(symbol)

    def is_stale(self, symbol: str) -> bool:
        return symbol in self.stale

    def prev_close(self, symbol: str) -> Decimal | None:
        return None


class FakeEngine:
    """Refuses, like the risk gate, an order it cannot price; records when each order came."""

    def __init__(self, prices: FakePrices, clock: FakeClock) -> None:
        self.prices = prices
        self.clock = clock
        self.sent: list[tuple[float, OrderRequest]] = []

    async def submit(self, request: OrderRequest, source: str) -> SubmitResult:
        assert source == "script"
        self.sent.append((self.clock.now, request))
        sym = request.symbol
        if self.prices.quote(sym) is None or sym in self.prices.stale:
            return SubmitResult(None, OrderState.DENIED, None, f"no price for {sym} (fail closed)")
        return SubmitResult(f"cid-{len(self.sent)}", OrderState.ACCEPTED, None, "accepted")


@dataclass
class FakeTrading:
    state: TradingState = TradingState.ACTIVE
    reason: str = ""


def _order(symbol: str, delay: float = 0.0, offset: Decimal | None = None) -> ScriptedOrder:
    kind = OrderType.LIMIT if offset is not None else OrderType.MARKET
    return ScriptedOrder(symbol, OrderSide.BUY, Decimal("1"), kind, TimeInForce.GTC, None, offset, delay)


def _run(orders: list[ScriptedOrder], engine: FakeEngine, trading: FakeTrading, clock: FakeClock,
         **kw: Any) -> list[SubmitResult]:  # fmt: skip
    return asyncio.run(run_script(orders, cast(Any, engine), cast(Any, trading), sleep=clock.sleep, **kw))


def test_an_order_waits_for_its_own_symbols_price_not_just_for_active_trading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    prices = FakePrices({"AAPL": Decimal("190")})  # stocks priced: trading is ACTIVE; crypto not yet
    clock.at(0.5, lambda: prices.quotes.__setitem__("BTC/USD", Decimal("60000")))
    engine = FakeEngine(prices, clock)
    with caplog.at_level(logging.INFO, logger="app.script"):
        (result,) = _run([_order("BTC/USD")], engine, FakeTrading(), clock)
    assert result.accepted, result.message
    assert engine.sent[0][0] == pytest.approx(0.5)
    assert "script order 1: waited 0.5 s for a fresh BTC/USD quote" in caplog.text


def test_a_priced_symbol_is_submitted_at_once() -> None:
    clock = FakeClock(0.0)
    engine = FakeEngine(FakePrices({"AAPL": Decimal("190")}), clock)
    (result,) = _run([_order("AAPL")], engine, FakeTrading(), clock)
    assert result.accepted and engine.sent[0][0] == 0.0


def test_a_stale_quote_is_waited_out_too() -> None:
    clock = FakeClock(0.0)
    prices = FakePrices({"ETH/USD": Decimal("3000")}, stale={"ETH/USD"})
    clock.at(1.0, lambda: prices.stale.clear())
    engine = FakeEngine(prices, clock)
    (result,) = _run([_order("ETH/USD")], engine, FakeTrading(), clock)
    assert result.accepted and engine.sent[0][0] == pytest.approx(1.0)


def test_trading_must_be_active_first() -> None:
    clock = FakeClock(0.0)
    trading = FakeTrading(TradingState.DISABLED)
    clock.at(2.0, lambda: setattr(trading, "state", TradingState.ACTIVE))
    engine = FakeEngine(FakePrices({"AAPL": Decimal("190")}), clock)
    _run([_order("AAPL")], engine, trading, clock)
    assert engine.sent[0][0] == pytest.approx(2.0)


@pytest.mark.expected_log(
    r"^app\.script: script order \S+ no fresh quote for",
    r"^app\.script: script order \S+ buy \S+ GME \->",
)
def test_a_symbol_never_priced_is_submitted_after_the_timeout_and_the_refusal_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    engine = FakeEngine(FakePrices({"AAPL": Decimal("190")}), clock)
    with caplog.at_level(logging.INFO, logger="app.script"):
        results = _run([_order("GME"), _order("GME"), _order("AAPL")], engine, FakeTrading(), clock,
                       price_timeout=3.0)  # fmt: skip
    assert [r.state for r in results] == [OrderState.DENIED, OrderState.DENIED, OrderState.ACCEPTED]
    assert clock.now == pytest.approx(3.0)  # the second GME order did not wait again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no fresh quote for GME after 3 s" in w for w in warnings), warnings
    assert sum("-> None denied" in w for w in warnings) == 2, warnings
    assert PRICE_TIMEOUT_S >= 5  # long enough for a slow feed start, short enough to notice


def test_an_offset_limit_order_is_priced_from_the_symbol_once_it_has_a_price() -> None:
    clock = FakeClock(0.0)
    prices = FakePrices({"AAPL": Decimal("190")})
    clock.at(0.3, lambda: prices.quotes.__setitem__("SPY", Decimal("500")))
    engine = FakeEngine(prices, clock)
    (result,) = _run([_order("SPY", offset=Decimal("-5"))], engine, FakeTrading(), clock)
    assert result.accepted and engine.sent[0][1].limit_price == Decimal("475.00")


@pytest.mark.expected_log(r"^app\.script: order script not run: trading is DISABLED")
def test_trading_never_active_runs_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    engine = FakeEngine(FakePrices({"AAPL": Decimal("190")}), clock)
    with caplog.at_level(logging.ERROR, logger="app.script"):
        done = _run([_order("AAPL")], engine, FakeTrading(TradingState.DISABLED), clock, active_timeout=1.0)
    assert done == []
    assert engine.sent == [] and "order script not run: trading is DISABLED" in caplog.text


@pytest.mark.expected_log(r"^app\.script: order script stopped by shutdown: \S+ of")
def test_a_shutdown_before_the_orders_went_out_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    engine = FakeEngine(FakePrices({"AAPL": Decimal("190")}), clock)

    async def main() -> None:
        task = asyncio.ensure_future(run_script(
            [_order("AAPL"), _order("AAPL", delay=60)], cast(Any, engine), cast(Any, FakeTrading()),
            sleep=lambda s: asyncio.sleep(0 if s < 60 else 3600),
        ))  # fmt: skip
        for _ in range(100):  # let the first order go out; the second then waits for its delay
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="app.script"):
        asyncio.run(main())
    assert len(engine.sent) == 1
    assert "order script stopped by shutdown: 1 of 2 order(s) not submitted" in caplog.text


class _Rec:
    def __init__(self, cid: str, open_: bool) -> None:
        self.client_order_id = cid
        self.symbol = "AAPL"
        self.state = OrderState.ACCEPTED if open_ else OrderState.CANCELED


class _Store:
    """The two store look-ups the script's replace / cancel entries use."""

    def __init__(self) -> None:
        self.recs: dict[str, _Rec] = {}
        self.types: dict[str, OrderType] = {}

    def find(self, *, client_order_id: str | None = None) -> _Rec | None:
        return self.recs.get(client_order_id or "")

    def meta(self, cid: str) -> Any:
        return SimpleNamespace(type=self.types[cid])


class ActingEngine(FakeEngine):
    """Also keeps what it placed and records the replaces and cancels a script asks for."""

    def __init__(self, prices: FakePrices, clock: FakeClock) -> None:
        super().__init__(prices, clock)
        self.store = _Store()
        self.acts: list[tuple[str, str, Decimal | None, Decimal | None]] = []

    async def submit(self, request: OrderRequest, source: str) -> SubmitResult:
        result = await super().submit(request, source)
        cid = result.client_order_id or ""
        self.store.recs[cid] = _Rec(cid, open_=True)
        self.store.types[cid] = request.type
        return result

    async def replace(self, order_key: str, *, qty: Decimal | None = None, limit_price: Decimal | None = None,
                      source: str = "manual") -> SubmitResult:  # fmt: skip
        assert source == "script"
        self.acts.append(("replace", order_key, qty, limit_price))
        return SubmitResult(order_key, OrderState.PENDING_UPDATE, None, "replaced")

    async def cancel(self, order_key: str, *, source: str = "manual") -> bool:
        assert source == "script"
        self.acts.append(("cancel", order_key, None, None))
        self.store.recs[order_key].state = OrderState.CANCELED
        return True


def test_replace_and_cancel_entries_act_on_the_newest_working_limit_order() -> None:
    clock = FakeClock(0.0)
    engine = ActingEngine(FakePrices({"AAPL": Decimal("200")}), clock)
    first, second = _order("AAPL", offset=Decimal(-5)), _order("AAPL", offset=Decimal(-6))
    market = _order("AAPL")
    replace_entry = ScriptedOrder("", OrderSide.BUY, Decimal(0), OrderType.LIMIT, TimeInForce.DAY, None,
                                  Decimal(-4), 0.0, action="replace", replace_qty=Decimal(2))  # fmt: skip
    cancel_entry = ScriptedOrder("", OrderSide.BUY, Decimal(0), OrderType.LIMIT, TimeInForce.DAY, None, None,
                                 0.0, action="cancel")  # fmt: skip
    results = _run([first, second, market, replace_entry, cancel_entry, cancel_entry, cancel_entry], engine,
                   FakeTrading(), clock)  # fmt: skip
    assert [r.client_order_id for r in results] == ["cid-1", "cid-2", "cid-3", "cid-2"]
    assert engine.acts == [
        ("replace", "cid-2", Decimal(2), Decimal("192.00")),  # the newest limit (not the market), 200 - 4 %
        ("cancel", "cid-2", None, None),
        ("cancel", "cid-1", None, None),  # then the one before it; the third cancel finds none
    ]


def test_an_offset_that_leaves_no_valid_price_is_refused_at_load(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit",
                                   "limit_price": {"offset_pct": -99.9999999999}}]))  # fmt: skip
    with pytest.raises(ScriptError, match="not a valid price") as info:
        load_script(script)
    assert "entry 1" in str(info.value) and "no price" not in str(info.value)


@pytest.mark.expected_log(r"^app\.script: script order \S+ skipped: the limit price")
def test_an_offset_price_rounding_to_zero_is_not_sent_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(0.0)
    engine = FakeEngine(FakePrices({"PENNY": Decimal("0.01")}), clock)
    with caplog.at_level(logging.ERROR, logger="app.script"):
        done = _run([_order("PENNY", offset=Decimal("-60"))], engine, FakeTrading(), clock)
    assert done == [] and engine.sent == []
    assert "not a valid price" in caplog.text and "PENNY" in caplog.text, caplog.text
