"""Script actions beside orders: ``replace`` (the newest working limit order) and ``kill_switch``.

Chaos runs use them to pull the kill switch with a flatten and to replace resting orders while the
exchange injects faults (pending cancels, replace races), the way an operator would at the desk.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from app.script import ScriptError, load_script, run_script
from services.domain.enums import OrderType, TradingState
from services.domain.models import OrderRequest
from services.orders.records import SubmitResult
from services.orders.transitions import OrderState


@dataclass
class _Rec:
    client_order_id: str
    symbol: str
    state: OrderState


@dataclass
class _Meta:
    type: OrderType


class _Store:
    def __init__(self) -> None:
        self.recs: dict[str, _Rec] = {}
        self.metas: dict[str, _Meta] = {}

    def find(self, *, client_order_id: str) -> _Rec | None:
        return self.recs.get(client_order_id)

    def meta(self, cid: str) -> _Meta | None:
        return self.metas.get(cid)


class _Prices:
    def quote(self, symbol: str) -> object:
        return object()

    def last_price(self, symbol: str) -> Decimal:
        return Decimal("100")

    def is_stale(self, symbol: str) -> bool:
        return False


@dataclass
class _Engine:
    store: _Store = field(default_factory=_Store)
    prices: _Prices = field(default_factory=_Prices)
    replaced: list[tuple[str, Decimal | None]] = field(default_factory=list)

    async def submit(self, request: OrderRequest, source: str) -> SubmitResult:
        cid = f"cid-{len(self.store.recs) + 1}"
        state = OrderState.ACCEPTED if request.type is OrderType.LIMIT else OrderState.FILLED
        self.store.recs[cid] = _Rec(cid, request.symbol, state)
        self.store.metas[cid] = _Meta(request.type)
        return SubmitResult(cid, state, None, "accepted")

    async def replace(
        self, key: str, *, qty: Decimal | None = None, limit_price: Decimal | None, source: str
    ) -> SubmitResult:
        self.replaced.append((key, limit_price))
        return SubmitResult(key, OrderState.ACCEPTED, None, "replaced")


@dataclass
class _KillSwitch:
    pulls: list[tuple[str, bool, str]] = field(default_factory=list)

    async def trigger(self, *, operator: str, flatten: bool, reason: str = "") -> str:
        self.pulls.append((operator, flatten, reason))
        return "done"


@dataclass
class _Trading:
    state: TradingState = TradingState.ACTIVE
    reason: str = ""


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def _script(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(entries))
    return path


@pytest.mark.expected_log(r"^app\.script: script entry \S+ kill switch pulled \(flatten=True\):")
def test_replace_moves_the_newest_working_limit_order_and_the_kill_switch_is_pulled(tmp_path: Path) -> None:
    orders = load_script(
        _script(
            tmp_path,
            [
                {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit", "limit_price": "90"},
                {"symbol": "MSFT", "side": "buy", "qty": "1", "type": "market"},
                {"action": "replace", "limit_price": {"offset_pct": -2}},
                {"action": "kill_switch", "flatten": True, "reason": "drill"},
            ],
        )
    )
    engine, ks = _Engine(), _KillSwitch()
    results = asyncio.run(
        run_script(orders, cast(Any, engine), cast(Any, _Trading()), sleep=_no_sleep, kill_switch=ks)
    )
    # the market order filled at once: the replace goes to the resting AAPL limit, at 100 x 0.98
    assert engine.replaced == [("cid-1", Decimal("98.00"))]
    assert ks.pulls == [("script", True, "drill")]
    assert [r.message for r in results] == ["accepted", "accepted", "replaced"]


def test_a_replace_with_nothing_working_sends_nothing(tmp_path: Path) -> None:
    orders = load_script(_script(tmp_path, [{"action": "replace", "limit_price": "50"}]))
    engine = _Engine()
    asyncio.run(run_script(orders, cast(Any, engine), cast(Any, _Trading()), sleep=_no_sleep))
    assert engine.replaced == []


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"action": "explode"}, "action must be one of"),
        ({"action": "kill_switch", "flatten": "yes"}, "flatten must be true or false"),
        ({"action": "replace", "limit_price": {"offset_pct": "1e999999"}}, "offset_pct"),
        ({"action": "replace", "limit_price": "-3"}, "positive"),
        ({"action": "replace", "limit_price": "90", "delay": "soon"}, "delay"),
    ],
)
def test_bad_action_entries_are_refused_with_the_entry_named(
    tmp_path: Path, entry: dict[str, Any], words: str
) -> None:
    with pytest.raises(ScriptError) as err:
        load_script(_script(tmp_path, [entry]))
    assert "entry 1" in str(err.value) and words in str(err.value)
