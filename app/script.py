"""``--script FILE``: a scripted order source for headless runs (crash and fault tests, demos).

FILE is JSON: a list of orders, each ``{"symbol": "AAPL", "side": "buy", "qty": "10",
"type": "market"|"limit", "limit_price": "187.5"?, "time_in_force": "day"?, "delay": 0.5?}``.
``limit_price`` may also be ``{"offset_pct": -5}``: that percentage away from the current price
(for orders that must rest). Orders go through the execution engine (risk gate, journal before
wire) with source ``script``, one after another, each after its ``delay`` seconds, once trading is
ACTIVE. Bad files are refused at start with a message naming the entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest
from services.domain.symbols import is_crypto, normalize_symbol
from services.orders.engine import ExecutionEngine, SubmitResult
from services.risk.trading_state import TradingStateMachine

log = logging.getLogger(__name__)
SOURCE = "script"


class ScriptError(ValueError):
    """The script file is unreadable or an entry is invalid; the message names it."""


@dataclass(frozen=True)
class ScriptedOrder:
    symbol: str
    side: OrderSide
    qty: Decimal
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    offset_pct: Decimal | None
    delay: float


def _dec(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ScriptError(f"{where}: {value!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ScriptError(f"{where}: must be a positive number, got {value!r}")
    return d


def load_script(path: Path) -> list[ScriptedOrder]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScriptError(f"cannot read the order script {path}: {exc}") from None
    if not isinstance(data, list):
        raise ScriptError(f"the order script {path} must hold a JSON list of orders")
    out = []
    for i, raw in enumerate(data):
        where = f"{path.name} entry {i + 1}"
        if not isinstance(raw, dict):
            raise ScriptError(f"{where}: expected an object")
        try:
            symbol = normalize_symbol(str(raw["symbol"]))
            side = OrderSide(str(raw["side"]).lower())
            type_ = OrderType(str(raw.get("type", "market")).lower())
            default_tif = "gtc" if is_crypto(symbol) else "day"
            tif = TimeInForce(str(raw.get("time_in_force", default_tif)).lower())
        except (KeyError, ValueError) as exc:
            raise ScriptError(f"{where}: {exc}") from None
        qty = _dec(raw.get("qty"), f"{where} qty")
        limit: Decimal | None = None
        offset: Decimal | None = None
        lp = raw.get("limit_price")
        if type_ is OrderType.LIMIT:
            if isinstance(lp, dict) and "offset_pct" in lp:
                try:
                    offset = Decimal(str(lp["offset_pct"]))
                except InvalidOperation:
                    raise ScriptError(f"{where}: offset_pct is not a number") from None
            else:
                limit = _dec(lp, f"{where} limit_price")
        elif type_ is not OrderType.MARKET:
            raise ScriptError(f"{where}: only market and limit orders can be scripted")
        delay = float(raw.get("delay", 0.0))
        if delay < 0:
            raise ScriptError(f"{where}: delay must be >= 0")
        out.append(ScriptedOrder(symbol, side, qty, type_, tif, limit, offset, delay))
    return out


async def run_script(
    orders: list[ScriptedOrder],
    engine: ExecutionEngine,
    trading: TradingStateMachine,
    *,
    active_timeout: float = 60.0,
) -> list[SubmitResult]:
    """Submit each order once trading is ACTIVE; returns the engine's results."""
    waited = 0.0
    while trading.state is not TradingState.ACTIVE:
        if waited >= active_timeout:
            log.error("order script not run: trading is %s (%s)", trading.state.value, trading.reason)
            return []
        await asyncio.sleep(0.1)
        waited += 0.1
    results = []
    for n, o in enumerate(orders, 1):
        if o.delay:
            await asyncio.sleep(o.delay)
        limit = o.limit_price
        if o.offset_pct is not None:
            last = engine.prices.last_price(o.symbol)
            if last is None:
                log.error("script order %d skipped: no price for %s", n, o.symbol)
                continue
            limit = (last * (1 + o.offset_pct / 100)).quantize(Decimal("0.01"))
        request = OrderRequest(
            symbol=o.symbol, side=o.side, type=o.type, time_in_force=o.time_in_force, qty=o.qty,
            limit_price=limit,
        )
        result = await engine.submit(request, source=SOURCE)
        log.info("script order %d: %s %s %s -> %s %s (%s)", n, o.side.value, o.qty, o.symbol,
                 result.client_order_id, result.state.value, result.message)
        results.append(result)
    return results
