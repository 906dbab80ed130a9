"""``--script FILE``: a scripted order source for headless runs (crash and fault tests, demos).

FILE is JSON: a list of orders, each ``{"symbol": "AAPL", "side": "buy", "qty": "10",
"type": "market"|"limit", "limit_price": "187.5"?, "time_in_force": "day"?, "delay": 0.5?}``.
``limit_price`` may also be ``{"offset_pct": -5}``: that percentage away from the current price
(for orders that must rest). More actions drive fault runs the way an operator would. Two act on
the script's newest still-working limit order: ``{"action": "replace", "limit_price":
{"offset_pct": -3}?, "qty": "2"?, "delay": 1}`` replaces it (``qty`` is what the replacement works,
as Alpaca's replacement is a new order; left out, what is left of the order), and ``{"action":
"cancel", "delay": 1}`` cancels it; ``{"action": "kill_switch", "flatten": true, "reason": "...",
"delay": 1}`` pulls the kill switch (HALT, cancel everything, optionally flatten).
Orders go through the execution engine (risk gate, journal before wire) with source ``script``, one
after another, each after its ``delay`` seconds, once trading is ACTIVE and the order's symbol has a
fresh quote and a price. Bad files are refused at start with a
message naming the entry.

Trading turns ACTIVE once the trading stream is live and *some* symbol is priced; the symbol of a
scripted order may not be yet (the crypto feed often connects after the stock feed, more so on a
busy machine), and the risk gate rightly refuses an order it cannot price. So each order first
waits for its own symbol's market data, at most ``price_timeout`` seconds per symbol; after that it
is submitted anyway and the gate's refusal is logged. An order the gate or the broker refuses, and
orders a shutdown leaves unsubmitted, are logged as warnings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from services.domain.enums import OrderSide, OrderType, TimeInForce, TradingState
from services.domain.models import OrderRequest
from services.domain.money import ZERO as ZERO_D
from services.domain.money import InvalidNumberError, to_decimal
from services.domain.symbols import is_crypto, normalize_symbol
from services.orders.engine import ExecutionEngine
from services.orders.records import SubmitResult
from services.orders.transitions import OrderState
from services.risk.context import PriceSource
from services.risk.trading_state import TradingStateMachine
from services.storage.files import FileTooLargeError, read_bounded

log = logging.getLogger(__name__)
SOURCE = "script"
#: How often the script checks whether trading is ACTIVE and whether a symbol is priced.
POLL_S = 0.1
#: Longest wait for a symbol's first fresh quote and price before its order is submitted anyway.
PRICE_TIMEOUT_S = 15.0

Sleep = Callable[[float], Awaitable[None]]


class ScriptError(ValueError):
    """The script file is unreadable or an entry is invalid; the message names it."""


class KillSwitchLike(Protocol):
    async def trigger(self, *, operator: str, flatten: bool, reason: str = ...) -> Any: ...


ACTIONS = ("order", "replace", "cancel", "kill_switch")


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
    action: str = "order"  # "order" | "replace" | "cancel" | "kill_switch"
    replace_qty: Decimal | None = None  # replace: what the replacement works (None: what is left)
    flatten: bool = False
    reason: str = ""


MAX_DELAY_S = Decimal(86_400)  # a scripted pause longer than a day is a typo
#: A script is a test or demo order list: above these it is a mistake, refused unread.
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
MAX_SCRIPT_ENTRIES = 100_000
#: Sanity bounds of a scripted order (the risk gate's limits apply on top).
MAX_QTY = Decimal(10) ** 9
MAX_PRICE = Decimal(10) ** 9
_KNOWN_KEYS = {
    "action",
    "symbol",
    "side",
    "qty",
    "type",
    "limit_price",
    "time_in_force",
    "delay",
    "flatten",
    "reason",
}


def _number(value: Any, where: str) -> Decimal:
    """Any number in the script, through the one bounded parser (absurd values are refused)."""
    try:
        return to_decimal(value, field=where)
    except InvalidNumberError as exc:
        raise ScriptError(str(exc)) from None


def _dec(value: Any, where: str) -> Decimal:
    d = _number(value, where)
    if d <= 0:
        raise ScriptError(f"{where}: must be a positive number, got {value!r}")
    return d


def _text(raw: dict[str, Any], key: str, default: str | None, where: str) -> str:
    value = raw.get(key, default)
    if value is None:
        raise ScriptError(f"{where}: {key} is missing")
    if not isinstance(value, str) or len(value) > 32:
        raise ScriptError(f"{where}: {key} must be a short text, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _qty(value: Any, where: str) -> Decimal:
    d = _dec(value, where)
    if d > MAX_QTY:
        raise ScriptError(f"{where}: must be at most {MAX_QTY}, got {_show(value)}")
    return d


def _price(value: Any, where: str) -> Decimal:
    d = _dec(value, where)
    if d > MAX_PRICE:
        raise ScriptError(f"{where}: must be at most {MAX_PRICE}, got {_show(value)}")
    return d


def _offset(value: Any, where: str) -> Decimal:
    offset = _number(value, f"{where} offset_pct")
    if not -100 < offset < 100:
        raise ScriptError(f"{where}: offset_pct must be between -100 and 100 (exclusive), got {_show(value)}")
    if offset_limit(MAX_PRICE, offset) < MIN_PRICE:
        raise ScriptError(
            f"{where}: offset_pct {_show(value)} leaves no valid price: the computed limit price is below "
            f"{MIN_PRICE} even for a price of {MAX_PRICE}, so it is not a valid price"
        )
    return offset


#: The smallest limit price a scripted offset may compute (one cent; prices are rounded to cents).
MIN_PRICE = Decimal("0.01")


def offset_limit(last: Decimal, offset_pct: Decimal) -> Decimal:
    """The limit price ``offset_pct`` percent away from ``last``, rounded to the cent."""
    return (last * (1 + offset_pct / 100)).quantize(MIN_PRICE)


def _bad_offset_price(last: Decimal, offset_pct: Decimal, limit: Decimal, symbol: str) -> str | None:
    """Why the price computed from an offset cannot be sent (None: it can)."""
    if limit >= MIN_PRICE:
        return None
    return (
        f"the limit price computed from offset_pct {offset_pct} on the {symbol} price {last} is "
        f"{limit}, not a valid price (at least {MIN_PRICE})"
    )


def load_script(path: Path) -> list[ScriptedOrder]:
    """Every entry of the script, all checked before any runs; raises :class:`ScriptError` naming
    the file, the entry (1-based) and what is wrong. The file is refused unread above
    :data:`MAX_SCRIPT_BYTES`."""
    try:
        data = json.loads(read_bounded(path, MAX_SCRIPT_BYTES, "the order script").decode("utf-8"))
    except FileTooLargeError as exc:
        raise ScriptError(str(exc)) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ScriptError(f"cannot read the order script {path}: {str(exc)[:200]}") from None
    if not isinstance(data, list):
        raise ScriptError(f"the order script {path} must hold a JSON list of orders")
    if len(data) > MAX_SCRIPT_ENTRIES:
        raise ScriptError(
            f"the order script {path} has {len(data):,} entries, more than the limit of "
            f"{MAX_SCRIPT_ENTRIES:,}"
        )
    out = []
    for i, raw in enumerate(data):
        where = f"{path.name} entry {i + 1}"
        if not isinstance(raw, dict):
            raise ScriptError(f"{where}: expected an object, got {type(raw).__name__}")
        unknown = sorted(str(k) for k in set(raw) - _KNOWN_KEYS)
        if unknown:
            raise ScriptError(f"{where}: unknown field(s) {unknown} (a typo would be ignored otherwise)")
        action = raw.get("action", "order")
        if action not in ACTIONS:
            raise ScriptError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {_show(action)}")
        if action != "order":
            out.append(_load_action(raw, action, where))
            continue
        try:
            symbol = normalize_symbol(_text(raw, "symbol", None, where))
            side = OrderSide(_text(raw, "side", None, where).lower())
            type_ = OrderType(_text(raw, "type", "market", where).lower())
            default_tif = "gtc" if is_crypto(symbol) else "day"
            tif = TimeInForce(_text(raw, "time_in_force", default_tif, where).lower())
        except ValueError as exc:
            raise ScriptError(exc.args[0] if isinstance(exc, ScriptError) else f"{where}: {exc}") from None
        qty = _qty(raw.get("qty"), f"{where} qty")
        limit: Decimal | None = None
        offset: Decimal | None = None
        lp = raw.get("limit_price")
        if type_ is OrderType.LIMIT:
            if isinstance(lp, dict) and "offset_pct" in lp:
                offset = _offset(lp["offset_pct"], where)
            else:
                limit = _price(lp, f"{where} limit_price")
        elif type_ is not OrderType.MARKET:
            raise ScriptError(f"{where}: only market and limit orders can be scripted")
        delay = _delay(raw, where)
        out.append(ScriptedOrder(symbol, side, qty, type_, tif, limit, offset, delay))
    return out


def _delay(raw: dict[str, Any], where: str) -> float:
    delay = _number(raw.get("delay", 0), f"{where} delay")
    if not ZERO_D <= delay <= MAX_DELAY_S:
        raise ScriptError(f"{where}: delay must be between 0 and {MAX_DELAY_S} seconds, got {delay}")
    return float(delay)


def _load_action(raw: dict[str, Any], action: str, where: str) -> ScriptedOrder:
    """A ``replace``, ``cancel`` or ``kill_switch`` entry (see the module docstring)."""
    delay = _delay(raw, where)
    offset: Decimal | None = None
    limit: Decimal | None = None
    qty: Decimal | None = None
    flatten = False
    reason = ""
    if action == "replace":
        lp = raw.get("limit_price")
        if isinstance(lp, dict) and "offset_pct" in lp:
            offset = _offset(lp["offset_pct"], where)
        elif lp is not None:
            limit = _price(lp, f"{where} limit_price")
        if raw.get("qty") is not None:
            qty = _qty(raw["qty"], f"{where} qty")
        if qty is None and limit is None and offset is None:
            raise ScriptError(f"{where}: a replace needs limit_price or qty")
    elif action == "kill_switch":
        flat = raw.get("flatten", False)
        if not isinstance(flat, bool):
            raise ScriptError(f"{where}: flatten must be true or false")
        flatten = flat
        reason = raw.get("reason") or "order script"
        if not isinstance(reason, str) or len(reason) > 500:
            raise ScriptError(f"{where}: reason must be text of at most 500 characters")
    return ScriptedOrder(
        "",
        OrderSide.BUY,
        Decimal(0),
        OrderType.LIMIT,
        TimeInForce.DAY,
        limit,
        offset,
        delay,
        action=action,
        replace_qty=qty,
        flatten=flatten,
        reason=reason,
    )


def priced(prices: PriceSource, symbol: str) -> bool:
    """Whether the risk gate can value an order in ``symbol``: a fresh quote and a price."""
    return (
        prices.quote(symbol) is not None
        and prices.last_price(symbol) is not None
        and not prices.is_stale(symbol)
    )


async def _wait_priced(prices: PriceSource, symbol: str, timeout: float, sleep: Sleep) -> float | None:
    """Seconds waited until ``symbol`` was priced, or None when ``timeout`` passed first."""
    waited = 0.0
    while not priced(prices, symbol):
        if waited >= timeout:
            return None
        await sleep(POLL_S)
        waited += POLL_S
    return waited


async def run_script(
    orders: list[ScriptedOrder],
    engine: ExecutionEngine,
    trading: TradingStateMachine,
    *,
    active_timeout: float = 60.0,
    price_timeout: float = PRICE_TIMEOUT_S,
    sleep: Sleep = asyncio.sleep,
    kill_switch: KillSwitchLike | None = None,
) -> list[SubmitResult]:
    """Submit each order once trading is ACTIVE and its symbol is priced; returns the engine's
    results (of orders and replaces). ``sleep`` is :func:`asyncio.sleep` except in tests."""
    script = _ScriptRun(orders, engine, trading, sleep, kill_switch, price_timeout)
    try:
        await script.run(active_timeout)
    except asyncio.CancelledError:
        if script.handled < len(orders):
            submitting = script.submitting
            during = f" (order {script.handled + 1} was being submitted)" if submitting else ""
            left = len(orders) - script.handled - (1 if submitting else 0)
            log.warning("order script stopped by shutdown: %d of %d order(s) not submitted%s", left,
                        len(orders), during)  # fmt: skip
        raise
    return script.results


class _ScriptRun:
    """One run of an order script: the entries in order, each one's failure said and passed over."""

    def __init__(self, orders: list[ScriptedOrder], engine: ExecutionEngine, trading: TradingStateMachine,
                 sleep: Sleep, kill_switch: KillSwitchLike | None, price_timeout: float) -> None:  # fmt: skip
        self.orders, self.engine, self.trading = orders, engine, trading
        self.sleep, self.kill_switch, self.price_timeout = sleep, kill_switch, price_timeout
        self.results: list[SubmitResult] = []
        self.handled = 0  # orders submitted or skipped
        self.submitting = False
        self.unpriced: set[str] = set()  # symbols whose wait already timed out: not waited for again

    async def run(self, active_timeout: float) -> None:
        trading = self.trading
        waited = 0.0
        while trading.state is not TradingState.ACTIVE:
            if waited >= active_timeout:
                log.error("order script not run: trading is %s (%s)", trading.state.value, trading.reason)
                self.handled = len(self.orders)
                return
            await self.sleep(POLL_S)
            waited += POLL_S
        for n, o in enumerate(self.orders, 1):
            if o.delay:
                await self.sleep(o.delay)
            if o.action == "kill_switch":
                self.handled = n
                await self._kill(o, n)
            elif o.action in ("replace", "cancel"):
                self.handled = n
                await self._amend(o, n)
            else:
                await self._order(o, n)

    async def _kill(self, o: ScriptedOrder, n: int) -> None:
        if self.kill_switch is None:
            log.error("script entry %d: no kill switch in this run", n)
            return
        try:
            outcome = await self.kill_switch.trigger(operator=SOURCE, flatten=o.flatten, reason=o.reason)
        except Exception as exc:  # one entry's failure never ends the script
            log.error("script entry %d failed: the kill switch raised %s; the script goes on", n, _why(exc))
            return
        log.warning("script entry %d: kill switch pulled (flatten=%s): %s", n, o.flatten, outcome)

    async def _amend(self, o: ScriptedOrder, n: int) -> None:
        try:
            replaced = await _act_on_newest(self.engine, self.results, o, n)
        except Exception as exc:
            log.error("script entry %d failed: the %s raised %s; the script goes on", n, o.action, _why(exc))
            return
        if replaced is not None:
            self.results.append(replaced)

    async def _order(self, o: ScriptedOrder, n: int) -> None:
        engine = self.engine
        if o.symbol not in self.unpriced:
            price_wait = await _wait_priced(engine.prices, o.symbol, self.price_timeout, self.sleep)
            if price_wait is None:
                self.unpriced.add(o.symbol)
                log.warning("script order %d: no fresh quote for %s after %g s (is it in the "
                            "watchlist?); submitting it anyway", n, o.symbol, self.price_timeout)  # fmt: skip
            elif price_wait:
                log.info("script order %d: waited %.1f s for a fresh %s quote", n, price_wait, o.symbol)
        limit = o.limit_price
        if o.offset_pct is not None:
            last = engine.prices.last_price(o.symbol)
            if last is None:
                log.error("script order %d skipped: no price for %s", n, o.symbol)
                self.handled = n
                return
            limit = offset_limit(last, o.offset_pct)
            bad = _bad_offset_price(last, o.offset_pct, limit, o.symbol)
            if bad is not None:
                log.error("script order %d skipped: %s", n, bad)
                self.handled = n
                return
        request = OrderRequest(symbol=o.symbol, side=o.side, type=o.type, time_in_force=o.time_in_force,
                               qty=o.qty, limit_price=limit)  # fmt: skip
        self.submitting = True
        try:
            result = await engine.submit(request, source=SOURCE)
        except Exception as exc:
            # The engine refuses with a result; anything it raises is a fault of its own. Said
            # here, counted as not sent, and the script goes on with its next entry.
            why = f"script order {n} failed: submit raised {_why(exc)}; counted as not sent"
            log.error("%s; the script goes on", why)
            result = SubmitResult(None, OrderState.DENIED, None, why)
        self.submitting, self.handled = False, n
        log.log(logging.INFO if result.accepted else logging.WARNING,
                "script order %d: %s %s %s -> %s %s (%s)", n, o.side.value, o.qty, o.symbol,
                result.client_order_id, result.state.value, result.message)  # fmt: skip
        self.results.append(result)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _act_on_newest(
    engine: ExecutionEngine, results: list[SubmitResult], o: ScriptedOrder, n: int
) -> SubmitResult | None:
    """Replace or cancel the newest still-working limit order this script placed."""
    for earlier in reversed(results):
        cid = earlier.client_order_id
        rec = engine.store.find(client_order_id=cid) if cid else None
        meta = engine.store.meta(rec.client_order_id) if rec is not None else None
        if rec is None or not rec.state.is_open or meta is None or meta.type is not OrderType.LIMIT:
            continue
        if o.action == "cancel":
            sent = await engine.cancel(rec.client_order_id, source=SOURCE)
            log.info("script entry %d: cancel %s -> %s", n, rec.client_order_id,
                     "requested" if sent else "not sent")  # fmt: skip
            return None
        limit = o.limit_price
        if o.offset_pct is not None:
            last = engine.prices.last_price(rec.symbol)
            if last is None:
                log.error("script entry %d skipped: no price for %s", n, rec.symbol)
                return None
            limit = offset_limit(last, o.offset_pct)
            bad = _bad_offset_price(last, o.offset_pct, limit, rec.symbol)
            if bad is not None:
                log.error("script entry %d skipped: %s", n, bad)
                return None
        result = await engine.replace(
            rec.client_order_id, qty=o.replace_qty, limit_price=limit, source=SOURCE
        )
        log.log(logging.INFO if result.accepted else logging.WARNING,
                "script entry %d: replace %s (qty %s, limit %s) -> %s (%s)", n, rec.client_order_id,
                o.replace_qty, limit, result.state.value, result.message)  # fmt: skip
        return result
    log.info("script entry %d: no working limit order of this script to %s", n, o.action)
    return None
